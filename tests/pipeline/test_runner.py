"""The runner on SQLite and PostgreSQL: cache hits, downstream re-runs, status, reproduce."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from mlcrew.errors import CheckFailed
from mlcrew.pipeline.reproduce import reproduce
from mlcrew.project import Project
from mlcrew.store.models import LineageEdge, ModelVersion
from tests.conftest import current_status, edit_spec, run_pipeline

ALL = ["ingest", "check", "split", "train", "evaluate", "register"]


def states(doc: dict[str, object]) -> dict[str, str]:
    return {s["name"]: s["state"] for s in doc["stages"]}  # type: ignore[index,union-attr]


def test_first_run_executes_all_then_everything_is_cached(project: Project) -> None:
    assert {r["state"] for r in current_status(project).values()} == {"never"}
    first = run_pipeline(project)
    assert states(first) == dict.fromkeys(ALL, "executed")
    assert first["verdict"]["passed"] is True  # type: ignore[index]
    assert first["champion"] == {"name": "bike-demand", "version": 1}
    second = run_pipeline(project)
    assert states(second) == dict.fromkeys(ALL, "cached")
    assert [s["outputs"] for s in second["stages"]] == [s["outputs"] for s in first["stages"]]  # type: ignore[union-attr]
    assert {r["state"] for r in current_status(project).values()} == {"fresh"}
    with project.store.session() as s:
        assert s.scalar(select(func.count()).select_from(ModelVersion)) == 1
        assert s.scalar(select(func.count()).select_from(LineageEdge)) > 0


def test_config_change_reruns_exactly_downstream(project: Project) -> None:
    run_pipeline(project)
    edit_spec(project, "rounds: 300", "rounds: 200")
    st = current_status(project)
    assert st["train"]["state"] == "stale"
    assert "training.budget.rounds: 300 -> 200" in st["train"]["why"]
    assert st["split"]["state"] == "fresh" and st["check"]["state"] == "fresh"
    assert st["evaluate"]["state"] == "stale"
    doc = run_pipeline(project)
    assert states(doc) == {
        "ingest": "cached",
        "check": "cached",
        "split": "cached",
        "train": "executed",
        "evaluate": "executed",
        "register": "executed",
    }
    assert doc["champion"] == {"name": "bike-demand", "version": 2}


def test_check_change_reruns_only_the_check(project: Project) -> None:
    run_pipeline(project)
    edit_spec(project, "{column: hum, between: [0, 1]}", "{column: hum, between: [0, 1.5]}")
    doc = run_pipeline(project)
    assert [n for n, s in states(doc).items() if s == "executed"] == ["check"]


def test_source_change_reruns_from_ingest_and_status_names_the_file(project: Project) -> None:
    run_pipeline(project)
    csv = project.root / "data" / "bikeshare-jan-jun.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(lines[:-24]) + "\n")  # the last day of June is dropped
    st = current_status(project)
    assert st["ingest"]["state"] == "stale"
    assert "source file source.rides (data/bikeshare-jan-jun.csv) changed" in st["ingest"]["why"]
    assert st["train"]["state"] == "stale" and "upstream" in st["train"]["why"]
    doc = run_pipeline(project)
    assert states(doc) == dict.fromkeys(ALL, "executed")


def test_failing_check_stops_with_counts_and_sample_rows(project: Project) -> None:
    run_pipeline(project)
    edit_spec(project, "{column: hum, between: [0, 1]}", "{column: hum, between: [0, 0.9]}")
    with pytest.raises(CheckFailed) as info:
        run_pipeline(project)
    msg = str(info.value)
    assert "checks[2]" in msg and "hum" in msg and "rows fail, e.g. row" in msg
    failing = info.value.report["checks"][2]
    assert failing["failing"] > 0 and failing["samples"][0]["hum"] > 0.9
    # Nothing downstream ran, and the champion is untouched.
    with project.store.session() as s:
        assert s.scalar(select(func.count()).select_from(ModelVersion)) == 1


def test_reproduce_gives_identical_digests(project: Project) -> None:
    doc = run_pipeline(project)
    report = reproduce(project.store, doc["run_id"])  # type: ignore[arg-type]
    assert report["identical"] is True, report["differences"]
    assert [s["name"] for s in report["stages"]] == ALL
    for stage, original in zip(report["stages"], doc["stages"], strict=True):  # type: ignore[arg-type]
        assert stage["outputs"] == original["outputs"]


def test_reproduce_names_a_difference(project: Project, tmp_path: Path) -> None:
    doc = run_pipeline(project)
    # Corrupt the recorded model digest so the reproduction must disagree with it.
    from mlcrew.store.models import StageExecution

    with project.store.session() as s:
        ex = s.scalars(
            select(StageExecution).where(
                StageExecution.run_id == doc["run_id"], StageExecution.stage == "train"
            )
        ).one()
        ex.outputs = {"model": "0" * 64}
    report = reproduce(project.store, doc["run_id"])  # type: ignore[arg-type]
    assert report["identical"] is False
    assert {"stage": "train", "output": "model"}.items() <= report["differences"][0].items()


def test_failed_gate_registers_but_keeps_the_champion(project: Project) -> None:
    run_pipeline(project)
    edit_spec(project, "{metric: mae, max: 60}", "{metric: mae, max: 1}")
    edit_spec(project, "rounds: 300", "rounds: 250")
    doc = run_pipeline(project)
    assert doc["verdict"]["passed"] is False  # type: ignore[index]
    assert "FAILED: mae <= 1" in doc["verdict"]["reasons"][0]  # type: ignore[index]
    assert doc["champion"] == {"name": "bike-demand", "version": 1}
    with project.store.session() as s:
        versions = s.scalars(select(ModelVersion).order_by(ModelVersion.version)).all()
    assert [(v.version, v.verdict["passed"]) for v in versions] == [(1, True), (2, False)]
    assert versions[1].data_digests.keys() == {"split.train", "split.test"}
    assert versions[1].run_id == doc["run_id"]


def test_latency_gate_is_measured_and_enforced(project: Project) -> None:
    edit_spec(project, "- {metric: r2, min: 0.7}", "- {latency_p99_ms: 0.000001}")
    doc = run_pipeline(project)
    assert "FAILED: latency_p99_ms <= 1e-06" in doc["verdict"]["reasons"]  # type: ignore[index]
    assert doc["champion"] is None
    evaluate = next(s for s in doc["stages"] if s["name"] == "evaluate")  # type: ignore[union-attr]
    assert evaluate["state"] == "executed"


def test_stage_contract_checker() -> None:
    from mlcrew.pipeline.stage import StageDef, check_stage
    from mlcrew.pipeline.stages import STAGES

    for stage in STAGES:
        check_stage(stage)
    from pydantic import BaseModel

    spec, _ = _reload_example()
    for stage in STAGES:
        check_stage(stage, spec)
    broken = StageDef(
        name="my stage",
        version="",
        config_model=BaseModel,
        build_config=lambda spec: BaseModel(),
        inputs=("x",),
        outputs=(),
        impl="nowhere:fn",
        libraries=("no-such-distribution",),
    )
    with pytest.raises(TypeError) as info:
        check_stage(broken)
    msg = str(info.value)
    assert "must be an identifier" in msg and "version must be set" in msg
    assert "'stage.output'" in msg and "cannot be imported" in msg
    assert "'no-such-distribution' is not an installed distribution" in msg


def _reload_example() -> tuple[object, str]:
    from mlcrew.project import EXAMPLES
    from mlcrew.spec import load_spec

    return load_spec(EXAMPLES / "bikeshare"), ""


def test_reverting_the_spec_moves_no_alias(project: Project) -> None:
    run_pipeline(project)
    edit_spec(project, "rounds: 300", "rounds: 200")
    assert run_pipeline(project)["champion"] == {"name": "bike-demand", "version": 2}
    edit_spec(project, "rounds: 200", "rounds: 300")
    doc = run_pipeline(project)
    assert set(states(doc).values()) == {"cached"}
    # A run computes; it does not decide. v1 comes back only through promotion.
    assert doc["champion"] == {"name": "bike-demand", "version": 2}


def test_champion_never_shows_a_stale_failed_verdict(project: Project) -> None:
    edit_spec(project, "{metric: mae, max: 60}", "{metric: mae, max: 30}")
    assert run_pipeline(project)["champion"] is None
    edit_spec(project, "{metric: mae, max: 30}", "{metric: mae, max: 60}")
    doc = run_pipeline(project)
    assert doc["champion"] == {"name": "bike-demand", "version": 1}
    from mlcrew.registry import get_version

    champion = get_version(project.store, "bike-demand")
    assert champion.verdict["passed"] is True
    assert champion.verdict == doc["verdict"]


def test_python_api_as_the_readme_shows(example_dir: Path) -> None:
    import mlcrew

    project = mlcrew.Project.open(example_dir)
    result = project.run()
    assert result.verdict is not None and result.verdict["passed"] is True
    assert result.champion == {"name": "bike-demand", "version": 1}
    assert {row["state"] for row in project.status()} == {"fresh"}
    assert project.reproduce(result.run_id)["identical"] is True
    champion = mlcrew.get_version(project.store, project.spec.name)
    assert champion.run_id == result.run_id and champion.data_digests
    project.close()
