"""The prediction log: what a burst of requests leaves, the shadow challenger beside the
champion, and segments that survive a server killed with kill -9."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlcrew.api.app import create_app
from mlcrew.errors import StoreError
from mlcrew.project import Project
from mlcrew.registry.versions import set_alias
from mlcrew.serving.loader import ModelCache
from mlcrew.serving.predlog import LogEntry, PredictionLog, read_predictions, segments
from mlcrew.serving.server import BackgroundServer, free_port
from mlcrew.store.logs import log_folder
from tests.serving.conftest import GOOD_ROW

MLCREW = [sys.executable, "-m", "mlcrew.cli.main"]


def _rows(i: int) -> list[dict[str, Any]]:
    """1 to 3 rows; every fifth request has a category the model never saw."""
    weather = "volcanic ash" if i % 5 == 0 else ("clear", "cloudy/misty")[i % 2]
    return [
        {
            **GOOD_ROW,
            "hr": (i + k) % 24,
            "temp": round(0.1 + (i % 9) / 10, 2),
            "weathersit": weather,
        }
        for k in range(1 + i % 3)
    ]


def test_a_burst_of_requests_is_logged_whole(two_versions: Project) -> None:
    proj = two_versions
    name = proj.spec.name
    set_alias(proj.store, name, "champion", 1)
    before = len(segments(proj.store, name))
    sent: dict[str, tuple[list[dict[str, Any]], list[Any], int]] = {}
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url) as client:
        for i in range(300):
            query = "?version=2" if i % 10 == 3 else ""
            r = client.post(f"/v1/models/{name}/predict{query}", json={"rows": _rows(i)})
            assert r.status_code == 200
            sent[r.headers["x-request-id"]] = (_rows(i), r.json()["predictions"], i)
        bad = client.post(f"/v1/models/{name}/predict", json={"rows": [{"hr": "x"}]})
        assert bad.status_code == 422  # refused: not a prediction, not logged
    # Stopping the server wrote what was pending.
    log = read_predictions(proj.store, name).to_pylist()
    assert len(segments(proj.store, name)) > before
    mine = [r for r in log if r["request_id"] in sent]
    assert len(mine) == sum(len(rows) for rows, _, _ in sent.values())
    assert len({r["request_id"] for r in mine}) == 300
    for rec in mine:
        rows, predictions, i = sent[rec["request_id"]]
        row = rows[rec["row"]]
        assert rec["prediction"] == predictions[rec["row"]]
        assert rec["model"] == name
        assert (rec["version"], rec["alias"]) == ((2, None) if i % 10 == 3 else (1, "champion"))
        categories = ("weathersit", "weekday")  # logged as the text of the category
        assert rec["inputs"] == {k: str(v) if k in categories else float(v) for k, v in row.items()}
        assert rec["latency_ms"] > 0 and rec["at"].tzinfo is not None
        assert rec["challenger_version"] is None and rec["consumer"] is None


def test_the_shadow_challenger_scores_the_same_rows(two_versions: Project) -> None:
    proj = two_versions
    name = proj.spec.name
    set_alias(proj.store, name, "champion", 1)
    set_alias(proj.store, name, "challenger", 2)
    challenger = ModelCache(proj.store).get(name, 2).model
    sent: dict[str, list[dict[str, Any]]] = {}
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    try:
        with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url) as client:
            for i in range(40):
                r = client.post(f"/v1/models/{name}/predict", json={"rows": _rows(i)})
                assert r.json()["model"]["version"] == 1  # the champion answers
                sent[r.headers["x-request-id"]] = _rows(i)
    finally:
        set_alias(proj.store, name, "challenger", 1)  # leave no live challenger behind
    mine = [r for r in read_predictions(proj.store, name).to_pylist() if r["request_id"] in sent]
    assert len(mine) == sum(len(rows) for rows in sent.values())
    for rec in mine:
        row = sent[rec["request_id"]][rec["row"]]
        assert rec["version"] == 1 and rec["challenger_version"] == 2
        assert rec["challenger_prediction"] == challenger.predict_rows([row])[0]
        assert rec["challenger_prediction"] != rec["prediction"]  # 60 vs 300 rounds
        assert rec["challenger_error"] is None


def _serve(root: Path, port: int, workers: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*MLCREW, "serve", "-p", str(root), "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read() if proc.stderr else "serve exited")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("mlcrew serve did not become ready")


def test_segments_survive_kill_9_of_the_server(two_versions: Project) -> None:
    proj = two_versions
    name = proj.spec.name
    set_alias(proj.store, name, "champion", 1)
    port = free_port()
    proc = _serve(proj.root, port, workers=2)
    url = f"http://127.0.0.1:{port}/v1/models/{name}/predict"
    early: set[str] = set()
    try:
        # A connection per request, so that both workers answer some.
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as client:
            for i in range(60):
                r = client.post(url, json={"rows": _rows(i)})
                assert r.status_code == 200
                early.add(r.headers["x-request-id"])
            assert client.post(url, json={"rows": [{"hr": 1}]}).status_code == 422
            # Two workers, one /metrics: it counts the requests of both.
            text = client.get(f"http://127.0.0.1:{port}/metrics").text
        counted = {
            s.labels["status"]: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "mlcrew_http_requests_total"
            and s.labels["route"] == "/v1/models/{name}/predict"
        }
        assert counted == {"200": 60, "422": 1}
        # Wait until the workers have written these (they write every second).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            logged = {r["request_id"] for r in read_predictions(proj.store, name).to_pylist()}
            if early <= logged:
                break
            time.sleep(0.2)
        assert early <= logged
        written = segments(proj.store, name)
        # Now kill -9 in the middle of a stream of requests.
        stop = threading.Event()

        def stream() -> None:
            with httpx.Client() as client:
                i = 0
                while not stop.is_set():
                    try:
                        client.post(url, json={"rows": _rows(i)}, timeout=5)
                    except httpx.TransportError:
                        return
                    i += 1

        streamer = threading.Thread(target=stream)
        streamer.start()
        time.sleep(1.5)
        _kill_tree(proc)
        stop.set()
        streamer.join(timeout=30)
    finally:
        if proc.poll() is None:
            _kill_tree(proc)
    # Every segment written before the kill is still there and reads whole; so does the log.
    after = segments(proj.store, name)
    assert set(written) <= set(after)
    root = Path(proj.store.artifacts.root)
    for rel in after:
        pq.read_table(root / rel)
    logged = {r["request_id"] for r in read_predictions(proj.store, name).to_pylist()}
    assert early <= logged
    # `serve` logged one line per request, the refused one included.
    _, err = proc.communicate(timeout=30)
    lines = [line for line in err.splitlines() if '"POST /v1/models/' in line]
    assert len([line for line in lines if '" 200 ' in line]) >= 60
    assert any('" 422 ' in line for line in lines)


def _kill_tree(proc: subprocess.Popen[str]) -> None:
    """kill -9 the server and its worker processes (children of the one we started)."""
    children = subprocess.run(
        ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    proc.send_signal(signal.SIGKILL)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    proc.wait(timeout=30)


def test_a_failed_segment_is_retried_and_the_other_groups_are_written_once(
    trained_project: Project,
) -> None:
    """One group's segment cannot be written (its folder is blocked by a file): the other
    group is written at once, the failed rows wait in memory, and once the folder can be made
    they are written exactly once."""
    store = trained_project.store
    loaded = ModelCache(store).get(trained_project.spec.name)
    encoded = loaded.inputs.matrix([GOOD_ROW])
    names = ("logtest-blocked", "logtest-open")

    def entry(name: str, i: int) -> LogEntry:
        return LogEntry(
            at=time.time(), request_id=f"{name}-{i}", name=name, version=1, alias="champion",
            inputs=loaded.inputs, X=encoded.X, unseen=None, predictions=(float(i),),
            latency_ms=1.0,
        )  # fmt: skip

    blocker = Path(store.artifacts.root) / log_folder(store.project_name, names[0])
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder")
    plog = PredictionLog(store, interval=3600)  # its thread waits: this test flushes
    for i in range(3):
        for name in names:
            plog.append(entry(name, i))
    try:
        # The store names what could not be written, on a disk or an object store alike.
        blocked = re.escape(f"cannot write {log_folder(store.project_name, names[0])}/")
        with pytest.raises(StoreError, match=blocked):
            plog.flush()
        assert plog.pending_rows == 3  # the blocked model's rows wait; the other's are written
        assert len(read_predictions(store, names[1])) == 3
        blocker.unlink()
        written = plog.flush()
        assert len(written) == 1 and plog.pending_rows == 0
    finally:
        plog.close()
        if blocker.is_file():
            blocker.unlink()
    for name in names:
        rows = read_predictions(store, name).to_pylist()
        assert sorted(r["request_id"] for r in rows) == [f"{name}-{i}" for i in range(3)]
