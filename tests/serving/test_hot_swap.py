"""A promotion reaches the running service while it answers: no failed request, new version."""

from __future__ import annotations

import threading
import time

import httpx

from mlcrew.api.app import create_app
from mlcrew.project import Project
from mlcrew.registry.versions import set_alias
from mlcrew.serving.loader import ALIAS_TTL
from mlcrew.serving.server import BackgroundServer
from tests.serving.conftest import GOOD_ROW


def test_promotion_under_load_fails_no_request(two_versions: Project) -> None:
    proj = two_versions
    name = proj.spec.name
    set_alias(proj.store, name, "champion", 1)
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    seen: list[list[tuple[int, int | None]]] = [[], []]
    stop = threading.Event()

    def load(out: list[tuple[int, int | None]]) -> None:
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            while not stop.is_set() and len(out) < 20_000:
                r = client.post(f"/v1/models/{name}/predict", json={"rows": [GOOD_ROW]})
                out.append((r.status_code, r.json()["model"]["version"] if r.is_success else None))

    with BackgroundServer(app) as srv:
        threads = [threading.Thread(target=load, args=(out,)) for out in seen]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while sum(len(s) for s in seen) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        set_alias(proj.store, name, "champion", 2)  # the promotion, while requests flow
        promoted = time.monotonic()
        while time.monotonic() < deadline:
            if all(s and s[-1][1] == 2 for s in seen):
                break
            time.sleep(0.01)
        swapped_after = time.monotonic() - promoted
        time.sleep(0.2)  # a few more answers after the swap
        stop.set()
        for t in threads:
            t.join(timeout=60)
    answers = [a for s in seen for a in s]
    assert [a for a in answers if a[0] != 200] == []  # 0 failed requests
    versions = {v for _, v in answers}
    assert versions == {1, 2}
    for s in seen:  # each client sees the switch once: 1 ... 1 2 ... 2
        flips = [i for i in range(1, len(s)) if s[i][1] != s[i - 1][1]]
        assert len(flips) == 1 and s[flips[0]][1] == 2
    print(f"swap seen by every client {swapped_after:.3f} s after the promotion")
    assert ALIAS_TTL <= 0.5  # what bounds that delay (a cached alias is re-read after this)
