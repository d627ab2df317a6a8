"""The Ray executor against a real Ray head on loopback (token auth, temp dirs, stopped by pid)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from mlcrew.errors import ExecutorError
from mlcrew.pipeline.runner import Runner
from mlcrew.project import EXAMPLES, Project
from mlcrew.store.models import Run, StageExecution
from tests.ray_head import RayHead, free_port, start_head

# Not imported here: Ray reads RAY_AUTH_MODE when it is first imported, which must happen
# after the fixture has set the client's environment.
if importlib.util.find_spec("ray") is None:
    pytest.skip("Ray is not installed: pip install 'mlcrew[ray]'", allow_module_level=True)

ALL = ["ingest", "check", "split", "train", "evaluate", "register"]


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    """One real head for the session; this process is its client (token via file path)."""
    head = start_head(cpus=2)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in head.client_env.items():
            mp.setenv(key, value)
        try:
            yield head
        finally:
            import ray

            if ray.is_initialized():
                ray.shutdown()
            head.stop()
    assert head.pids() == [], "the Ray head's processes outlived stop()"
    shutil.rmtree(head.root, ignore_errors=True)


def _example(tmp_path: Path, name: str, trials: int, params: str = "") -> Project:
    target = tmp_path / name
    shutil.copytree(EXAMPLES / "bikeshare", target, ignore=shutil.ignore_patterns(".mlcrew"))
    spec = target / "mlcrew.yaml"
    text = spec.read_text().replace("trials: 1,", f"trials: {trials},")
    if params:
        text = text.replace("  threads: 1\n", f"  threads: 1\n  params: {params}\n")
    spec.write_text(text)
    return Project.open(target, db_url=f"sqlite:///{tmp_path / name}.db")


def _run(proj: Project, executor: object | None = None) -> dict[str, object]:
    runner = Runner(proj.root, proj.store, proj.spec, proj.spec_text, executor=executor)  # type: ignore[arg-type]
    return runner.run().to_json()


def test_trials_on_ray_give_byte_identical_digests_to_local(
    ray_head: RayHead, tmp_path: Path
) -> None:
    from mlcrew.pipeline.ray_executor import RayExecutor

    local_proj = _example(tmp_path, "local", trials=4)
    ray_proj = _example(tmp_path, "onray", trials=4)
    local = _run(local_proj)
    on_ray = RayExecutor(ray_head.address)
    try:
        remote = _run(ray_proj, on_ray)
        assert on_ray.units_run == 4 * 5  # every trial's 5 folds really ran as Ray tasks
    finally:
        on_ray.close()
    for doc in (local, remote):
        assert [s["name"] for s in doc["stages"]] == ALL  # type: ignore[index,union-attr]
        assert {s["state"] for s in doc["stages"]} == {"executed"}  # type: ignore[union-attr]
    assert [s["outputs"] for s in remote["stages"]] == [s["outputs"] for s in local["stages"]]  # type: ignore[union-attr]
    records = []
    for proj in (local_proj, ray_proj):
        with proj.store.session() as s:
            train = s.scalars(select(StageExecution).where(StageExecution.stage == "train")).one()
            records.append(train.record)
            executor = s.scalars(select(Run)).one().summary["executor"]
        assert executor == ("local" if proj is local_proj else f"ray@{ray_head.address}")
    assert len(records[1]["trials"]) == 4
    assert records[1] == records[0]  # the same trial scores, the same choice
    local_proj.close()
    ray_proj.close()


def _slow_double(delays: dict[int, float], unit: int) -> tuple[int, int]:
    time.sleep(delays.get(unit, 0.0))
    return unit, os.getpid()


def _refuse_three(_: None, unit: int) -> int:
    if unit == 3:
        raise ValueError(f"unit {unit} refuses: the value is odd and above two")
    return unit


def test_results_come_back_in_unit_order_not_completion_order(ray_head: RayHead) -> None:
    from mlcrew.pipeline.ray_executor import RayExecutor

    executor = RayExecutor(ray_head.address)
    try:
        # Unit 0 finishes last, unit 3 first.
        out = executor.map(_slow_double, {0: 1.5, 1: 0.6, 2: 0.3}, [0, 1, 2, 3], label="test")
    finally:
        executor.close()
    assert [unit for unit, _ in out] == [0, 1, 2, 3]
    assert os.getpid() not in {pid for _, pid in out}  # they ran on Ray workers


def test_a_unit_raising_on_a_worker_names_the_unit_and_the_workers_message(
    ray_head: RayHead,
) -> None:
    from mlcrew.pipeline.ray_executor import RayExecutor

    executor = RayExecutor(ray_head.address)
    try:
        with pytest.raises(ExecutorError) as info:
            executor.map(_refuse_three, None, [0, 1, 2, 3, 4], label="train trials")
    finally:
        executor.close()
    message = str(info.value)
    assert "train trials: unit 3 failed on a Ray worker" in message
    assert "ValueError: unit 3 refuses: the value is odd and above two" in message


def test_a_trial_failing_on_a_worker_fails_the_run_and_is_recorded(
    ray_head: RayHead, tmp_path: Path
) -> None:
    from mlcrew.pipeline.ray_executor import RayExecutor

    proj = _example(tmp_path, "bad", trials=3, params="{num_leaves: 1}")
    executor = RayExecutor(ray_head.address)
    try:
        with pytest.raises(ExecutorError) as info:
            _run(proj, executor)
    finally:
        executor.close()
    message = str(info.value)
    assert "train: unit 0 failed on a Ray worker" in message
    assert "LightGBM refused to train" in message  # the worker's own message
    with proj.store.session() as s:
        run = s.scalars(select(Run)).one()
        assert run.status == "failed" and "LightGBM refused to train" in (run.error or "")
        train = s.scalars(select(StageExecution).where(StageExecution.stage == "train")).one()
        assert train.state == "failed"
        assert "failed on a Ray worker" in train.record["error"]
    proj.close()


def test_a_unit_bigger_than_any_node_is_refused_not_queued_forever(ray_head: RayHead) -> None:
    from mlcrew.pipeline.ray_executor import RayExecutor

    executor = RayExecutor(ray_head.address)
    try:
        with pytest.raises(ExecutorError, match=r"needs 3 CPUs .* largest node .* has 2"):
            executor.map(_refuse_three, None, [0], label="train", cpus=3)
    finally:
        executor.close()


def test_an_unreachable_cluster_is_a_clear_error_naming_the_address(tmp_path: Path) -> None:
    proj = _example(tmp_path, "nowhere", trials=2)
    proj.close()
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    proc = subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", "run", "-p", str(proj.root),
         "--executor", "ray", "--address", address],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert f"cannot reach the Ray cluster at {address}" in proc.stderr
    assert "Traceback" not in proc.stderr
