"""The executor seam without a cluster: spec and CLI selection, the local executor, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlcrew.errors import SpecError
from mlcrew.pipeline.executors import LocalExecutor, make_executor
from mlcrew.pipeline.stage import dump_config
from mlcrew.pipeline.stages import STAGES
from mlcrew.project import EXAMPLES
from mlcrew.spec import Execution, parse_spec

EXAMPLE = (EXAMPLES / "bikeshare" / "mlcrew.yaml").read_text()


def _error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "proj/mlcrew.yaml")
    return str(info.value)


def test_the_execution_section_is_in_no_stage_config() -> None:
    local = parse_spec(EXAMPLE)
    on_ray = parse_spec(EXAMPLE + "execution: {engine: ray, address: '127.0.0.1:6379'}\n")
    assert local.execution == Execution()  # local by default
    assert on_ray.execution.engine == "ray" and on_ray.execution.address == "127.0.0.1:6379"
    for stage in STAGES:  # so no cache key can see it
        assert dump_config(stage.config(on_ray)) == dump_config(stage.config(local))


def test_a_bad_execution_section_names_line_and_key() -> None:
    lines = EXAMPLE.count("\n")
    msg = _error(EXAMPLE + "execution:\n  engine: local\n  address: 127.0.0.1:6379\n")
    assert msg.startswith(f"proj/mlcrew.yaml:{lines + 3}:")
    assert "execution.address" in msg and "ray engine only" in msg
    msg = _error(EXAMPLE + "execution: {engine: spark}\n")
    assert "execution.engine" in msg and "'local'" in msg and "'ray'" in msg


def test_the_command_line_wins_over_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert isinstance(make_executor(Execution()), LocalExecutor)
    on_ray = Execution(engine="ray", address="127.0.0.1:6379")
    assert isinstance(make_executor(on_ray, "local"), LocalExecutor)
    assert make_executor(on_ray).description == "ray@127.0.0.1:6379"
    assert make_executor(on_ray, address="10.0.0.5:7000").description == "ray@10.0.0.5:7000"
    assert make_executor(Execution(), "ray", "127.0.0.1:1").description == "ray@127.0.0.1:1"
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:4242")
    assert make_executor(Execution(), "ray").description == "ray@127.0.0.1:4242"


def test_missing_or_misplaced_addresses_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(SpecError, match=r"execution\.address.*--address HOST:PORT.*RAY_ADDRESS"):
        make_executor(Execution(), "ray")
    with pytest.raises(SpecError, match="add --executor ray"):
        make_executor(Execution(), None, "127.0.0.1:6379")
    with pytest.raises(SpecError, match="valid: local, ray"):
        make_executor(Execution(), "dask")
    from mlcrew.errors import ExecutorError

    with pytest.raises(ExecutorError, match="is not HOST:PORT"):
        make_executor(Execution(), "ray", "headnode")


def test_the_local_executor_runs_units_in_order_here() -> None:
    out = LocalExecutor().map(lambda shared, u: (shared, u, os.getpid()), "s", [3, 1, 2], label="t")
    assert out == [("s", 3, os.getpid()), ("s", 1, os.getpid()), ("s", 2, os.getpid())]


def test_ray_not_installed_says_how_to_install_it() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"  # what Python does for a missing package
        "from mlcrew.pipeline.ray_executor import RayExecutor\n"
        "from mlcrew.errors import ExecutorError\n"
        "try:\n"
        "    RayExecutor('127.0.0.1:6379').map(divmod, 7, [2], label='train')\n"
        "except ExecutorError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "pip install 'mlcrew[ray]'" in proc.stdout


def test_cli_refuses_an_unknown_executor_before_running(tmp_path: Path) -> None:
    import shutil

    skip = shutil.ignore_patterns(".mlcrew")
    shutil.copytree(EXAMPLES / "bikeshare", tmp_path / "p", ignore=skip)
    env = {k: v for k, v in os.environ.items() if k != "MLCREW_DB_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", "run", "-p", str(tmp_path / "p"),
         "--executor", "dask"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--executor 'dask' is not an executor; valid: local, ray" in proc.stderr
    assert not (tmp_path / "p" / ".mlcrew" / "artifacts" / "sha256").exists()  # nothing ran
