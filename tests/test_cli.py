"""The CLI as a user runs it: real processes, --json documents, one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

MLCREW = [sys.executable, "-m", "mlcrew.cli.main"]


def mlcrew(
    *args: str, cwd: Path | None = None, ok: bool = True, columns: int | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLCREW_DB_URL", "COLUMNS")}
    if columns:
        env["COLUMNS"] = str(columns)  # the terminal width Rich lays tables out for
    proc = subprocess.run(
        [*MLCREW, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture()
def cli_project(tmp_path: Path) -> Path:
    mlcrew("init", "--example", "bikeshare", str(tmp_path / "p"))
    return tmp_path / "p"


def test_run_status_reproduce_json(cli_project: Path) -> None:
    status = json.loads(mlcrew("status", "--json", "-p", str(cli_project)).stdout)
    assert [s["state"] for s in status["stages"]] == ["never"] * 6

    first = json.loads(mlcrew("run", "--json", "-p", str(cli_project)).stdout)
    assert set(first) >= {"run_id", "stages", "verdict", "champion"}
    assert [s["state"] for s in first["stages"]] == ["executed"] * 6
    assert all(len(d) == 64 for s in first["stages"] for d in s["outputs"].values())
    assert first["verdict"]["passed"] is True and first["verdict"]["reasons"]
    assert first["champion"] == {"name": "bike-demand", "version": 1}

    again = json.loads(mlcrew("run", "--json", "-p", str(cli_project)).stdout)
    assert [s["state"] for s in again["stages"]] == ["cached"] * 6

    status = json.loads(mlcrew("status", "--json", "-p", str(cli_project)).stdout)
    assert [s["state"] for s in status["stages"]] == ["fresh"] * 6

    spec = cli_project / "mlcrew.yaml"
    spec.write_text(spec.read_text().replace("metric: mae, max: 60", "metric: mae, max: 50"))
    status = json.loads(mlcrew("status", "--json", "-p", str(cli_project)).stdout)
    by_name = {s["name"]: s for s in status["stages"]}
    assert by_name["evaluate"]["state"] == "stale"
    assert "objective.deal_breakers" in by_name["evaluate"]["why"]
    assert by_name["train"]["state"] == "fresh"  # the gates' bounds do not touch training

    rep = json.loads(mlcrew("reproduce", first["run_id"], "--json", "-p", str(cli_project)).stdout)
    assert rep == {**rep, "run_id": first["run_id"], "identical": True, "differences": []}

    human = mlcrew("reproduce", first["run_id"], "-p", str(cli_project)).stdout
    assert "identical" in human


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    proc = mlcrew("run", "-p", str(tmp_path), ok=False)
    assert proc.returncode == 2
    assert "no mlcrew.yaml here" in proc.stderr and "mlcrew init" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""

    (tmp_path / "mlcrew.yaml").write_text("name: x\nsorces: {}\n")
    proc = mlcrew("status", "-p", str(tmp_path), ok=False)
    assert proc.returncode == 2
    assert "mlcrew.yaml:2: unknown key 'sorces'; did you mean 'sources'?" in proc.stderr
    assert "Traceback" not in proc.stderr

    proc = mlcrew("--debug", "status", "-p", str(tmp_path), ok=False)
    assert "Traceback" in proc.stderr


def test_init_refuses_to_overwrite(cli_project: Path) -> None:
    proc = mlcrew("init", str(cli_project), ok=False)
    assert proc.returncode == 2 and "--force" in proc.stderr


def test_failed_check_exits_nonzero_with_report(cli_project: Path) -> None:
    spec = cli_project / "mlcrew.yaml"
    spec.write_text(spec.read_text().replace("between: [0, 23]", "between: [0, 20]"))
    proc = mlcrew("run", "--json", "-p", str(cli_project), ok=False)
    assert proc.returncode == 1
    assert "data check failed: checks[1] (hr: type integer, between 0 and 20)" in proc.stderr
    assert "fix the data, or the check (checks[1] in mlcrew.yaml" in proc.stderr
    assert "e.g. row" in proc.stderr
    doc = json.loads(proc.stdout)  # the failed run is still reported, as one JSON document
    assert doc["status"] == "failed" and doc["champion"] is None
    assert [s["name"] for s in doc["stages"]] == ["ingest"]
    assert doc["report"]["checks"][1]["failing"] > 0 and doc["error"].startswith("data check")


def test_reproduce_unknown_run(cli_project: Path) -> None:
    proc = mlcrew("reproduce", "nope", "-p", str(cli_project), ok=False)
    assert proc.returncode == 1 and "run 'nope' not found; no runs yet" in proc.stderr


def test_serve_command_answers_predictions(cli_project: Path) -> None:
    import httpx

    from mlcrew.serving.server import free_port

    mlcrew("run", "-p", str(cli_project))
    port = free_port()
    proc = subprocess.Popen(
        [*MLCREW, "serve", "-p", str(cli_project), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                import time

                time.sleep(0.1)
        row = {
            "hr": 8,
            "holiday": 0,
            "weekday": 2,
            "workingday": 1,
            "weathersit": "clear",
            "temp": 0.2,
            "atemp": 0.2,
            "hum": 0.5,
            "windspeed": 0.1,
        }
        body = httpx.post(f"{url}/v1/models/bike-demand/predict", json={"rows": [row]}).json()
        assert body["model"] == {"name": "bike-demand", "version": 1}
        assert body["predictions"][0] > 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_version_and_usage_errors() -> None:
    from mlcrew import __version__

    assert mlcrew("--version").stdout.strip() == f"mlcrew {__version__}"
    proc = mlcrew("run", "--bogus", ok=False)
    assert proc.returncode == 2 and "No such option: --bogus" in proc.stderr
    assert "internal error" not in proc.stderr


def test_models_lists_versions_and_aliases(cli_project: Path) -> None:
    assert "no model versions yet" in mlcrew("models", "-p", str(cli_project)).stdout
    mlcrew("run", "-p", str(cli_project))
    doc = json.loads(mlcrew("models", "--json", "-p", str(cli_project)).stdout)
    assert doc["aliases"] == {"champion": 1}
    assert [v["version"] for v in doc["versions"]] == [1]
    assert doc["versions"][0]["verdict"]["passed"] is True
    human = mlcrew("models", "-p", str(cli_project)).stdout
    assert "champion" in human and "passed" in human


def test_runs_lists_what_happened(cli_project: Path) -> None:
    assert "no runs yet" in mlcrew("runs", "-p", str(cli_project)).stdout
    first = json.loads(mlcrew("run", "--json", "-p", str(cli_project)).stdout)
    mlcrew("run", "-p", str(cli_project))
    runs = json.loads(mlcrew("runs", "--json", "-p", str(cli_project)).stdout)["runs"]
    assert [r["status"] for r in runs] == ["ok", "ok"]
    assert runs[1]["run_id"] == first["run_id"] and len(runs[1]["executed"]) == 6
    assert runs[0]["executed"] == [] and runs[0]["champion"]["version"] == 1
    assert first["run_id"] in mlcrew("runs", "-p", str(cli_project)).stdout
    # In an 80-column terminal every run id and start time is whole, on one line.
    narrow = mlcrew("runs", "-p", str(cli_project), columns=80).stdout
    assert max(len(line) for line in narrow.splitlines()) <= 80 and "…" not in narrow
    for r in runs:
        started = r["started_at"][:16].replace("T", " ")
        assert any(r["run_id"] in line and started in line for line in narrow.splitlines())


def test_serve_on_a_busy_port_is_a_one_line_error(cli_project: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = mlcrew("serve", "-p", str(cli_project), "--port", str(port), ok=False)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr and "--port N" in proc.stderr
    assert "Traceback" not in proc.stderr and "serving" not in proc.stdout
    proc = mlcrew("serve", "-p", str(cli_project), "--port", "99999", ok=False)
    assert proc.returncode == 2 and "less than or equal to 65535" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_against_postgresql(cli_project: Path) -> None:
    """A team's shared store: the same commands with MLCREW_DB_URL naming PostgreSQL."""
    from tests.conftest import _pg_database

    url = _pg_database()
    env = {**os.environ, "MLCREW_DB_URL": url}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*MLCREW, *args, "-p", str(cli_project)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        return proc

    first = json.loads(run("run", "--json").stdout)
    assert first["champion"] == {"name": "bike-demand", "version": 1}
    assert not (cli_project / ".mlcrew" / "mlcrew.db").exists()  # nothing went to SQLite
    assert {s["state"] for s in json.loads(run("status", "--json").stdout)["stages"]} == {"fresh"}
    assert json.loads(run("reproduce", first["run_id"], "--json").stdout)["identical"] is True


def test_exit_codes_say_what_happened(cli_project: Path) -> None:
    spec = cli_project / "mlcrew.yaml"
    spec.write_text(spec.read_text().replace("metric: mae, max: 60", "metric: mae, max: 5"))
    proc = mlcrew("run", "-p", str(cli_project), ok=False)
    assert proc.returncode == 3  # a gate failed: CI can stop on it
    assert "registered bike-demand v1, not promoted: a gate failed" in proc.stdout
    doc = json.loads(mlcrew("run", "--json", "-p", str(cli_project), ok=False).stdout)
    assert doc["verdict"]["passed"] is False
    # A reproduction that disagrees exits non-zero too.
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{cli_project / '.mlcrew' / 'mlcrew.db'}")
    with engine.begin() as conn:
        conn.execute(
            text("update stage_executions set outputs = :o where stage = 'train' and run_id = :r"),
            {"o": json.dumps({"model": "0" * 64}), "r": doc["run_id"]},
        )
    engine.dispose()
    proc = mlcrew("reproduce", doc["run_id"], "-p", str(cli_project), ok=False)
    assert proc.returncode == 1 and "did not reproduce" in proc.stdout


def test_markup_like_text_is_printed_verbatim(tmp_path: Path) -> None:
    odd = tmp_path / "x[/]y[bold]"
    proc = mlcrew("init", str(odd))
    assert str(odd) in proc.stdout
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "mlcrew.yaml").write_text("name: Bike [red]Demand\n")
    proc = mlcrew("status", "-p", str(tmp_path / "bad"), ok=False)
    assert proc.returncode == 2 and "found 'Bike [red]Demand'" in proc.stderr


def test_stricter_gates_keep_but_flag_the_champion(cli_project: Path) -> None:
    mlcrew("run", "-p", str(cli_project))
    spec = cli_project / "mlcrew.yaml"
    spec.write_text(spec.read_text().replace("metric: mae, max: 60", "metric: mae, max: 5"))
    proc = mlcrew("run", "-p", str(cli_project), ok=False)
    assert proc.returncode == 3
    assert "champion bike-demand v1 fails the current gates; it stays champion" in " ".join(
        proc.stdout.split()
    )


def test_help_shows_flags_as_flags_and_every_exit_code() -> None:
    from mlcrew.cli.main import EXIT_CODES

    top = mlcrew("--help", columns=100).stdout
    assert "--debug " in top and "<bool>" not in top
    assert "<bool>" not in mlcrew("run", "--help", columns=100).stdout
    assert "<path>" in mlcrew("run", "--help", columns=100).stdout  # options with values keep it
    codes = re.findall(r"^  (\d+) ", EXIT_CODES, flags=re.MULTILINE)
    assert codes == ["0", "1", "2", "3", "70", "130"]
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for code in codes:
        assert re.search(rf"^\| {code} \|", section, flags=re.MULTILINE), code
        assert re.search(rf"^ +{code} ", top, flags=re.MULTILINE), code


def test_counts_read_as_english(tmp_path: Path) -> None:
    """One row is "1 row": in a failed check and in a split that has too little data."""
    (tmp_path / "data.csv").write_text("x,y\n5,1\n")
    spec = tmp_path / "mlcrew.yaml"
    spec.write_text(
        "name: one\nsources: {rows: {path: data.csv}}\ndataset: {from: rows}\ntarget: y\n"
        "checks: [{column: x, between: [0, 1]}]\n"
    )
    proc = mlcrew("run", "-p", str(tmp_path), ok=False)
    assert proc.returncode == 1
    assert "1 of 1 row fails, e.g. row 1: x=5" in proc.stderr, proc.stderr
    spec.write_text(spec.read_text().replace("between: [0, 1]", "between: [0, 10]"))
    proc = mlcrew("run", "-p", str(tmp_path), ok=False)
    assert "split: 1 row cannot be cut into train and test" in proc.stderr, proc.stderr
