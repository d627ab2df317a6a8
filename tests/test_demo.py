"""The whole demo path, end to end, as `make demo` runs it."""

from __future__ import annotations

import json
import os
import re
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
    # Temperature is what changes most between seasons: judged by its Wasserstein distance.
    assert re.search(r"^│ +a?temp: Wasserstein/sd [\d.]+, PSI [\d.]+ \(alert\)", out, re.M), out
    # "N of M features drifted" is followed by exactly N drifted features.
    found = re.search(r"\((\d+) of 9 features drifted\)", out)
    assert found, out
    listed = re.findall(
        r"^│ +(\w+): (?:Wasserstein/sd|Jensen-Shannon|ks|chi2|missing)", out, flags=re.MULTILINE
    )
    assert int(found.group(1)) > 0 and len(listed) == int(found.group(1)), out
    # The loop: six months served, each judged in a round; labels a day late; drift alerts;
    # a retrain promoted once two labelled months exist, and its error below the first
    # champion's on the months it served.
    months = re.findall(
        r"^│ +(Jul|Aug|Sep|Oct|Nov|Dec) +v(\d+) +([\d.]+) +([\d.]+)  (.*?) *│$", out, re.M
    )
    assert [m[0] for m in months] == ["Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], out
    assert "waiting" in months[0][4] and months[0][1] == "1"
    assert "promoted v2" in months[1][4], out
    later = [m for m in months if m[1] != "1"]
    assert later and sum(float(m[2]) for m in later) < sum(float(m[3]) for m in later)
    history = subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", "models", "history", "bike-demand", "--json",
         "-p", str(tmp_path / "demo")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    moves = json.loads(history.stdout)["events"]
    retrains = [e for e in moves if e["reason"].startswith("retrain (drift alert)")]
    assert retrains and retrains[-1]["from"] == 1 and retrains[-1]["to"] == 2
    assert all(e["actor"] == "monitor" for e in retrains)
    # The project it leaves behind is a real one: reports on disk, status fresh.
    reports = [
        json.loads(p.read_text())
        for p in (tmp_path / "demo" / ".mlcrew" / "reports").glob("monitor-*.json")
    ]
    assert len(reports) == 7  # the July-December file, and one per month's window
    report = next(r for r in reports if r["data"]["prepared"] == "through the transforms")
    assert "temp" in report["drifted"]
    status = subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", "status", "--json", "-p", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert {s["state"] for s in json.loads(status.stdout)["stages"]} == {"fresh"}


def test_demo_serve_keeps_the_page_up(tmp_path: Path) -> None:
    import signal
    import time

    import httpx

    from mlcrew.serving.server import free_port

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlcrew.cli.main",
            "demo",
            "--serve",
            "--port",
            str(port),
            "--dir",
            str(tmp_path / "demo"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    import threading

    lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))
    reader.start()
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        # The demo says where its page is once everything ran (the loop's six months too).
        while time.monotonic() < deadline and proc.poll() is None:
            if any("overview page: http://127.0.0.1:" in line for line in lines):
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "no output"
        page = httpx.get(url + "/").text
        assert "all gates passed" in page and "report 7" in page
        time.sleep(1)
        assert proc.poll() is None  # still serving after the summary
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(timeout=30)
    out = "".join(lines)
    assert "overview page: http://127.0.0.1:" in out


def test_demo_without_a_folder_leaves_nothing_behind(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", "demo"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "champion  bike-demand v1" in proc.stdout
    assert "temporary project removed; keep one with --dir DIR" in proc.stdout
    assert list(temp.iterdir()) == []


def test_make_demo_installs_only_what_the_demo_needs(tmp_path: Path) -> None:
    """`make demo` on a fresh checkout: a venv with mlcrew itself, not the dev tools."""
    repo = Path(__file__).parents[1]
    venv = tmp_path / "v"
    dry = subprocess.run(
        ["make", "--dry-run", "--always-make", "-C", str(repo), "demo", f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    installs = [line for line in dry.splitlines() if "pip install" in line]
    assert installs and all("[dev]" not in line for line in installs), dry
    assert any(line.rstrip().endswith("pip install -e .") for line in installs), dry
    assert f"{venv}/bin/mlcrew demo" in dry
