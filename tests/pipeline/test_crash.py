"""A `mlcrew run` killed mid-pipeline loses nothing stored and resumes from the cache."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

MAIN = [sys.executable, "-m", "mlcrew.cli.main"]


def finished_stages(db: Path) -> set[str]:
    if not db.exists():
        return set()
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return {r[0] for r in conn.execute(text("select stage from stage_executions"))}
    except Exception:  # the schema is not created yet
        return set()
    finally:
        engine.dispose()


def test_killed_run_resumes_from_cache(example_dir: Path) -> None:
    db = example_dir / ".mlcrew" / "mlcrew.db"
    spec = example_dir / "mlcrew.yaml"  # longer training: a wide window to kill it in
    spec.write_text(spec.read_text().replace("rounds: 300", "rounds: 1000"))
    log = example_dir.parent / "killed-run.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [*MAIN, "run", "--json", "-p", str(example_dir)], stdout=subprocess.DEVNULL, stderr=err
        )
        deadline = time.monotonic() + 120
        done: set[str] = set()
        while time.monotonic() < deadline and "split" not in done and proc.poll() is None:
            time.sleep(0.05)
            done = finished_stages(db)
        assert proc.poll() is None, f"the run ended before it could be killed: {log.read_text()}"
        proc.send_signal(signal.SIGKILL)  # during or right after training: no chance to clean up
        proc.wait()
    assert "split" in done, f"split never finished: {log.read_text()}"
    # At once, before any other run: the killed run shows as interrupted, with what it did.
    runs = subprocess.run(
        [*MAIN, "runs", "--json", "-p", str(example_dir)], capture_output=True, text=True
    )
    assert runs.returncode == 0, runs.stderr
    (killed,) = json.loads(runs.stdout)["runs"]
    assert killed["status"] == "interrupted"
    assert killed["executed"][:3] == ["ingest", "check", "split"]
    resumed = subprocess.run(
        [*MAIN, "run", "--json", "-p", str(example_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    states = {s["name"]: s["state"] for s in json.loads(resumed.stdout)["stages"]}
    assert states["ingest"] == states["check"] == states["split"] == "cached"
    assert json.loads(resumed.stdout)["champion"] == {"name": "bike-demand", "version": 1}
    # The killed run is not left looking as if it were still running.
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = conn.execute(text("select status, error from runs order by started_at")).all()
    engine.dispose()
    assert rows[0][0] == "interrupted" and "ended before the run finished" in rows[0][1]
    assert rows[1][0] == "ok"
