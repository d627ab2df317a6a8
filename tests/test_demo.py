"""The whole demo path, end to end, as `make demo` runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_end_to_end(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "verdict   passed" in out
    assert "champion  bike-demand v1" in out
    assert "predicted" in out and "bikers (actual" in out
    assert "July-December, 4395 rows" in out
    assert "temp: PSI" in out or "atemp: PSI" in out
    # The project it leaves behind is a real one: reports on disk, status fresh.
    reports = list((tmp_path / "demo" / ".mlcrew" / "reports").glob("monitor-*.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert "temp" in report["drifted"]
    status = subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", "status", "--json", "-p", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert {s["state"] for s in json.loads(status.stdout)["stages"]} == {"fresh"}
