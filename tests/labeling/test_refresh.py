"""`mlcrew label refresh` through the CLI and what labelers then get from a real `mlcrew serve`:
the most uncertain items first, and the model's suggestion in the task JSON."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlcrew.labeling.queue import CANDIDATES
from mlcrew.project import Project

LABELLED = 60


@dataclass
class Served:
    root: Path
    env: dict[str, str]
    url: str
    tokens: dict[str, str]
    truth: dict[str, str]
    gold: set[str]


def cli(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", *args],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == code, proc.stderr
    return proc


def read_csv(path: Path) -> dict[str, str]:
    with path.open() as f:
        return {r["item"]: r["label"] for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from mlcrew.serving.server import free_port

    tmp = tmp_path_factory.mktemp("refresh")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCREW_")}
    env["MLCREW_DB_URL"] = f"sqlite:///{tmp / 'meta.db'}"
    root = tmp / "digits"
    cli(env, "init", "--example", "digits-labeling", str(root))
    spec = root / "mlcrew.yaml"
    # One label per item: a labelled item is done, so what comes next is the order's choice.
    spec.write_text(spec.read_text().replace("overlap: 2", "overlap: 1"))
    p = ("-p", str(root))
    cli(env, "label", "import", *p)
    proc = subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", "user", "add", "ada", "--role", "admin",
         "--password-stdin", *p],
        input="a long password\n", capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    tokens = {}
    for name in ("ann", "cy"):
        cli(env, "user", "add", name, "--role", "labeler", *p)
        tokens[name] = cli(env, "token", "create", name, *p).stdout.strip()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlcrew.cli.main", "serve", *p, "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"mlcrew serve exited: {server.stderr.read()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("mlcrew serve did not answer /healthz") from None
                time.sleep(0.1)
        data = root / "data"
        yield Served(root, env, url, tokens, read_csv(data / "truth.csv"),
                     set(read_csv(data / "gold.csv")))  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)


def next_task(s: Served, who: str) -> dict[str, Any]:
    """The labeler's next task that is not a gold item (gold is served unannounced: skip it)."""
    auth = {"Authorization": f"Bearer {s.tokens[who]}"}
    while True:
        got = httpx.get(f"{s.url}/v1/labeling/next", headers=auth)
        assert got.status_code == 200, got.text
        task: dict[str, Any] = got.json()["task"]
        if task["item"] not in s.gold:
            return task
        skipped = httpx.post(f"{s.url}/v1/labeling/tasks/{task['id']}/skip", headers=auth, json={})
        assert skipped.status_code == 200, skipped.text


def label(s: Served, who: str, task: dict[str, Any], value: str, **extra: Any) -> dict[str, Any]:
    posted = httpx.post(
        f"{s.url}/v1/labeling/tasks/{task['id']}/labels",
        headers={"Authorization": f"Bearer {s.tokens[who]}"},
        json={"label": value, **extra},
    )
    assert posted.status_code == 201, posted.text
    return posted.json()  # type: ignore[no-any-return]


def refresh(s: Served) -> dict[str, Any]:
    return json.loads(cli(s.env, "label", "refresh", "--json", "-p", str(s.root)).stdout)  # type: ignore[no-any-return]


def open_tasks(root: Path, db_url: str) -> list[tuple[str, float, dict[str, Any] | None]]:
    """(item, priority, prelabel) of the open tasks, in the order the queue serves them."""
    from sqlalchemy import select

    from mlcrew.labeling.tables import LabelTask

    proj = Project.open(root, db_url=db_url)
    try:
        with proj.store.session() as session:
            rows = session.execute(
                select(LabelTask.item, LabelTask.priority, LabelTask.prelabel)
                .where(LabelTask.open.is_(True))
                .order_by(LabelTask.priority, LabelTask.id)
            ).all()
    finally:
        proj.close()
    return [(item, priority, prelabel) for item, priority, prelabel in rows]


def test_refresh_orders_by_uncertainty_and_serves_suggestions(served: Served) -> None:
    s = served
    # No labels yet: no model, no suggestions (gold answers never train it).
    first = refresh(s)
    assert first["model"] is None and first["labelled"] == 0 and first["prelabels"] == 0
    assert first["items"] == 1797 and first["priorities"] == 1797 - len(s.gold)
    assert next_task(s, "ann")["suggestion"] is None

    for _ in range(LABELLED):
        task = next_task(s, "ann")
        label(s, "ann", task, s.truth[task["item"]])
    second = refresh(s)
    assert second["model"] == "logistic" and second["labelled"] == LABELLED
    assert second["prelabels"] == 1797

    # The suggestions are mostly right on items nobody has labelled.
    waiting = open_tasks(s.root, s.env["MLCREW_DB_URL"])
    assert all(p is not None for _, _, p in waiting)
    right = [p["label"] == s.truth[item] for item, _, p in waiting if p is not None]
    assert sum(right) / len(right) > 0.8

    # The order puts the items the model is least sure of first: the first candidates' top
    # probabilities are well below those of the items served last.
    scores = [p["score"] for _, _, p in waiting if p is not None]
    head, tail = scores[:CANDIDATES], scores[-200:]
    assert max(head) < sorted(scores)[len(scores) // 2]
    assert sum(head) / len(head) < sum(tail) / len(tail) - 0.2

    # A labeler's next task is one of those first candidates, with the suggestion shown.
    task = next_task(s, "cy")
    assert task["item"] in [item for item, _, _ in waiting[:CANDIDATES]]
    shown = next(p for item, _, p in waiting if item == task["item"])
    assert task["suggestion"] == {"label": shown["label"], "score": shown["score"]}
    # Confirming the suggestion (Enter on the page) is logged as a confirmed suggestion.
    done = label(s, "cy", task, task["suggestion"]["label"], confirmed=True)
    assert done["confirmed"] is True
    status = json.loads(cli(s.env, "label", "status", "--json", "-p", str(s.root)).stdout)
    assert status["confirmed_suggestions"] == 1 and status["labels"] == LABELLED + 1


def test_refresh_errors_say_what_to_do(served: Served) -> None:
    spec = served.root / "mlcrew.yaml"
    text = spec.read_text()
    p = ("-p", str(served.root))
    try:
        spec.write_text(text.replace("prelabel: labels", "prelabel: champion"))
        proc = cli(served.env, "label", "refresh", *p, code=1)
        assert "no champion model yet: run 'mlcrew run'" in proc.stderr
        start, end = text.index("\nlabeling:"), text.index("\nchecks:")
        spec.write_text(text[:start] + text[end:])
        proc = cli(served.env, "label", "refresh", *p, code=2)
        assert "has no labeling: section in mlcrew.yaml" in proc.stderr
        assert "Traceback" not in proc.stderr
    finally:
        spec.write_text(text)
