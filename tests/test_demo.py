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
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        page = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                response = httpx.get(url + "/")
                # The page is up for good once the demo has finished its monitor step.
                if response.status_code == 200 and "report 1" in response.text:
                    page = response.text
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert page is not None, proc.stderr.read() if proc.stderr else "no output"
        assert "all gates passed" in page
        time.sleep(1)
        assert proc.poll() is None  # still serving after the summary
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
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
