"""`mlcrew serve --workers N`: forked workers on one socket, replaced when one dies, stopped
gracefully by Ctrl-C with nothing of the prediction log lost."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx

from mlcrew.project import Project
from mlcrew.registry.versions import set_alias
from mlcrew.serving.predlog import read_predictions
from mlcrew.serving.server import free_port
from tests.serving.conftest import GOOD_ROW
from tests.serving.test_prediction_log import _serve


def _children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return {int(p) for p in out.stdout.split()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_dead_worker_is_replaced_and_ctrl_c_flushes_the_log(two_versions: Project) -> None:
    proj = two_versions
    name = proj.spec.name
    set_alias(proj.store, name, "champion", 1)
    port = free_port()
    proc = _serve(proj.root, port, workers=2)
    url = f"http://127.0.0.1:{port}/v1/models/{name}/predict"
    try:
        workers = _children(proc.pid)
        assert len(workers) == 2
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = _children(proc.pid)
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.1)
        assert len(now) == 2 and victim not in now  # a new worker took its place
        ids = set()
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as client:
            for _ in range(20):
                r = client.post(url, json={"rows": [GOOD_ROW]}, timeout=30)
                assert r.status_code == 200
                ids.add(r.headers["x-request-id"])
        proc.send_signal(signal.SIGINT)  # Ctrl-C, right after the last answers
        assert proc.wait(timeout=60) == 0
        for pid in now:  # the parent waited for its workers: none is left running
            assert not _alive(pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    logged = {r["request_id"] for r in read_predictions(proj.store, name).to_pylist()}
    assert ids <= logged  # the workers wrote what was pending before they stopped
