"""The honest stage contract: keys cover what a stage reads, the store protects what it holds,
runs of one project never interleave, and every failure is recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel
from sqlalchemy import select

from mlcrew.errors import StoreError
from mlcrew.pipeline.reproduce import reproduce
from mlcrew.pipeline.runner import Runner
from mlcrew.pipeline.stage import StageContext, StageDef, StageResult
from mlcrew.pipeline.stages import stage_by_name
from mlcrew.project import Project
from mlcrew.registry import get_version
from mlcrew.serving.loader import ModelCache
from mlcrew.store.models import StageExecution
from tests.conftest import current_status, edit_spec, run_pipeline

MAIN = [sys.executable, "-m", "mlcrew.cli.main"]


def test_a_seed_change_leaves_a_time_split_fresh(project: Project) -> None:
    run_pipeline(project)
    edit_spec(project, "  seed: 0\n", "  seed: 5\n")  # training.seed
    st = current_status(project)
    assert st["split"]["state"] == "fresh"  # a time split has no seed to change
    assert st["train"]["state"] == "stale"
    assert "config training.seed (default: seed): 0 -> 5" in st["train"]["why"]
    doc = run_pipeline(project)
    executed = [s["name"] for s in doc["stages"] if s["state"] == "executed"]  # type: ignore[union-attr,index]
    assert executed == ["train", "evaluate", "register"]


def test_split_and_training_seeds_are_separate(project: Project) -> None:
    edit_spec(project, "split: {by: time, order: [day, hr], test: 0.2}", "split: {by: random}")
    first = run_pipeline(project)
    edit_spec(project, "split: {by: random}", "split: {by: random, seed: 3}")
    st = current_status(project)
    assert st["split"]["state"] == "stale"
    assert "config dataset.split.seed (default: seed): 0 -> 3" in st["split"]["why"]
    assert st["train"]["state"] == "stale" and "upstream split not fresh" in st["train"]["why"]
    second = run_pipeline(project)
    outputs = {s["name"]: s["outputs"] for s in second["stages"]}  # type: ignore[union-attr,index]
    before = {s["name"]: s["outputs"] for s in first["stages"]}  # type: ignore[union-attr,index]
    assert outputs["split"]["test"] != before["split"]["test"]
    # A new model seed alone keeps the test set: the split does not read it.
    edit_spec(project, "  seed: 0\n", "  seed: 9\n")
    third = run_pipeline(project)
    states = {s["name"]: s["state"] for s in third["stages"]}  # type: ignore[union-attr,index]
    assert states["split"] == "cached" and states["train"] == "executed"


def test_status_names_a_library_upgrade(example_dir: Path, tmp_path: Path) -> None:
    done = subprocess.run([*MAIN, "run", "-p", str(example_dir)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # An environment where LightGBM reports another version (its metadata comes first on the
    # path): what an upgrade looks like to the cache.
    fake = tmp_path / "site" / "lightgbm-99.0.0.dist-info"
    fake.mkdir(parents=True)
    (fake / "METADATA").write_text("Metadata-Version: 2.1\nName: lightgbm\nVersion: 99.0.0\n")
    path = f"{fake.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    env = {**os.environ, "PYTHONPATH": path}
    out = subprocess.run(
        [*MAIN, "status", "--json", "-p", str(example_dir)], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)["stages"]}
    assert rows["split"]["state"] == "fresh"
    assert rows["train"]["state"] == "stale"
    assert "library lightgbm" in rows["train"]["why"] and "-> 99.0.0" in rows["train"]["why"]
    assert rows["evaluate"]["state"] == "stale"


def test_a_tampered_blob_is_caught_on_load_reproduce_and_verify(project: Project) -> None:
    doc = run_pipeline(project)
    info = get_version(project.store, "bike-demand")
    blob = Path(project.store.artifacts.location(info.model_digest))
    text = blob.read_text()
    blob.write_text(text.replace('"rounds": 300', '"rounds": 301'))
    with pytest.raises(StoreError, match="is corrupt"):
        ModelCache(project.store).get("bike-demand")
    with pytest.raises(StoreError, match=info.model_digest[:12]):
        reproduce(project.store, doc["run_id"])  # type: ignore[arg-type]
    out = subprocess.run(
        [*MAIN, "store", "verify", "--json", "-p", str(project.root)],
        capture_output=True,
        text=True,
        env={**os.environ, "MLCREW_DB_URL": project.store.db_url},
    )
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert report["healthy"] is False and report["missing"] == []
    assert [c["digest"] for c in report["corrupt"]] == [info.model_digest]


class NoConfig(BaseModel):
    pass


def _boom(ctx: StageContext[NoConfig]) -> StageResult:
    raise ValueError("a bug in a stage")


def test_a_stage_failing_with_any_exception_is_recorded_failed(project: Project) -> None:
    boom = StageDef(
        name="boom",
        version="1",
        config_model=NoConfig,
        build_config=lambda spec: NoConfig(),
        inputs=("ingest.dataset",),
        outputs=("x",),
        impl=f"{__name__}:_boom",
    )
    runner = Runner(
        project.root,
        project.store,
        project.spec,
        project.spec_text,
        stages=(stage_by_name("ingest"), boom),
    )
    with pytest.raises(ValueError, match="a bug in a stage"):
        runner.run()
    with project.store.session() as s:
        rows = s.scalars(select(StageExecution).where(StageExecution.stage == "boom")).all()
    assert [(r.state, r.record["type"]) for r in rows] == [("failed", "ValueError")]


def test_two_runs_started_together_both_succeed(example_dir: Path, db_url: str) -> None:
    spec = example_dir / "mlcrew.yaml"  # longer training: the two runs surely overlap
    spec.write_text(spec.read_text().replace("rounds: 300", "rounds: 1500"))
    env = {**os.environ}
    if db_url.startswith("postgresql"):
        env["MLCREW_DB_URL"] = db_url  # else the embedded default under .mlcrew/, created now
    procs = [
        subprocess.Popen(
            [*MAIN, "run", "--json", "-p", str(example_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert "internal error" not in err
        assert json.loads(out)["champion"] == {"name": "bike-demand", "version": 1}
    docs = [json.loads(out) for out, _ in results]
    states = sorted(tuple(sorted({s["state"] for s in d["stages"]})) for d in docs)
    # One executed the pipeline; the other waited for it and found everything cached.
    assert states == [("cached",), ("executed",)]
    assert any("waiting" in err for _, err in results)
    models = subprocess.run(
        [*MAIN, "models", "--json", "-p", str(example_dir)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert [v["version"] for v in json.loads(models.stdout)["versions"]] == [1]
