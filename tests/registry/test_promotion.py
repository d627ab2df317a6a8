"""Promotion, rollback and the audit log, on SQLite and PostgreSQL: what an MLOps engineer does."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from mlcrew.errors import MlcrewError, PromotionRefused
from mlcrew.project import Project
from mlcrew.registry import aliases, history, promote, rollback
from mlcrew.store.models import Alias, AliasEvent
from tests.conftest import edit_spec, run_pipeline

NAME = "bike-demand"


def two_versions(proj: Project) -> None:
    """v1 (300 rounds), then v2 (200 rounds, slightly better on mae): v2 is champion."""
    run_pipeline(proj)
    edit_spec(proj, "rounds: 300", "rounds: 200")
    doc = run_pipeline(proj)
    assert doc["champion"] == {"name": NAME, "version": 2}


def test_rollback_survives_a_cached_run_and_a_fresh_run(project: Project) -> None:
    two_versions(project)
    move = rollback(project.store, NAME, reason="v2 misbehaves in production")
    assert (move.from_version, move.to_version, move.action) == (2, 1, "rollback")
    cached = run_pipeline(project)
    assert {s["state"] for s in cached["stages"]} == {"cached"}  # type: ignore[union-attr]
    assert cached["champion"] == {"name": NAME, "version": 1}
    fresh = run_pipeline(project, force=True)
    assert {s["state"] for s in fresh["stages"]} == {"executed"}  # type: ignore[union-attr]
    assert fresh["champion"] == {"name": NAME, "version": 1}
    assert aliases(project.store, NAME) == {"champion": 1}
    # The log tells the whole story, newest first.
    moves = [(e.from_version, e.to_version, e.action) for e in history(project.store, NAME)]
    assert moves == [(2, 1, "rollback"), (1, 2, "promote"), (None, 1, "promote")]


def test_after_a_rollback_a_cached_run_says_why_the_champion_stays(project: Project) -> None:
    from mlcrew.pipeline.runner import Runner
    from tests.conftest import _reload

    two_versions(project)
    rollback(project.store, NAME)
    spec, text = _reload(project)
    result = Runner(project.root, project.store, spec, text).run()  # type: ignore[arg-type]
    story = result.champion_story()
    assert "v2 (a known version: a run never moves an alias for one)" in story
    assert "champion stays bike-demand v1" in story and "mlcrew promote bike-demand 2" in story


def test_a_holder_that_cannot_read_the_new_data_refuses_with_a_reason(project: Project) -> None:
    run_pipeline(project)
    # The new model's data renames a column the champion reads.
    edit_spec(project, "temp, atemp", "temp as temperature, atemp")
    edit_spec(project, "{column: temp, not_null", "{column: temperature, not_null")
    doc = run_pipeline(project)
    assert doc["verdict"]["passed"] is True  # type: ignore[index]
    promotion = doc["promotion"]
    assert promotion["promoted"] is False  # type: ignore[index]
    (reason,) = promotion["reasons"]  # type: ignore[index]
    assert "champion v1 cannot be scored on v2's test split" in reason and "'temp'" in reason
    assert doc["champion"] == {"name": NAME, "version": 1}
    move = promote(project.store, NAME, 2, reason="new feature names, checked by hand", force=True)
    assert move is not None and move.forced


def test_promotion_is_gated_and_a_forced_one_needs_a_reason(project: Project) -> None:
    two_versions(project)
    with pytest.raises(PromotionRefused) as info:
        promote(project.store, NAME, 1, reason="I prefer it")
    (reason,) = info.value.reasons
    # Scored on v1's own test split: both models on the same rows.
    assert "v1 is worse than champion v2 on mae" in reason and "registry.margin 0" in reason
    assert aliases(project.store, NAME) == {"champion": 2}
    with pytest.raises(MlcrewError, match="needs a reason"):
        promote(project.store, NAME, 1, reason="  ", force=True)
    move = promote(project.store, NAME, 1, reason="rollback drill", force=True, actor="ana")
    assert move is not None and move.forced and move.actor == "ana"
    assert move.verdict["passed"] is True  # the verdict at that moment is kept
    latest = history(project.store, NAME)[0].to_json()
    assert set(latest) >= {"at", "actor", "alias", "from", "to", "reason", "forced"}
    assert (latest["from"], latest["to"], latest["forced"]) == (2, 1, True)
    # Within the margin the worse model may take the alias.
    assert promote(project.store, NAME, 2, reason="back", alias="champion") is not None
    assert promote(project.store, NAME, 1, reason="close enough", margin=5.0) is not None


def test_a_failed_verdict_is_refused_and_any_alias_name_works(project: Project) -> None:
    run_pipeline(project)
    edit_spec(project, "{metric: mae, max: 60}", "{metric: mae, max: 1}")
    edit_spec(project, "rounds: 300", "rounds: 250")
    doc = run_pipeline(project)
    assert doc["verdict"]["passed"] is False  # type: ignore[index]
    with pytest.raises(PromotionRefused, match="v2's verdict did not pass"):
        promote(project.store, NAME, 2, reason="try", alias="challenger")
    assert promote(project.store, NAME, 1, reason="shadow it", alias="challenger") is not None
    assert aliases(project.store, NAME) == {"champion": 1, "challenger": 1}
    with pytest.raises(MlcrewError, match="alias 'Not Valid' is not valid"):
        promote(project.store, NAME, 1, reason="x", alias="Not Valid")


def test_manual_policy_registers_without_promoting(project: Project) -> None:
    manual = "serving: {port: 8000}\nregistry: {promotion: manual}"
    edit_spec(project, "serving: {port: 8000}", manual)
    doc = run_pipeline(project)
    assert doc["verdict"]["passed"] is True and doc["champion"] is None  # type: ignore[index]
    assert promote(project.store, NAME, 1, reason="reviewed by ana") is not None
    assert aliases(project.store, NAME) == {"champion": 1}


def test_rollback_without_a_previous_holder_says_what_to_do(project: Project) -> None:
    run_pipeline(project)
    with pytest.raises(MlcrewError, match="no previous holder"):
        rollback(project.store, NAME)


LOOP = """
import sys
from mlcrew.store import Store
from mlcrew.errors import PromotionRefused
from mlcrew.registry import promote
store = Store(sys.argv[1], sys.argv[2], name="bike-demand")
print("ready", flush=True)
i = 0
while True:
    i += 1
    try:
        promote(store, "bike-demand", 1 + i % 2, reason=f"drill {i}", force=True)
    except PromotionRefused:  # another process moved the alias after this one looked: fine
        pass
"""


def test_audit_log_agrees_with_the_alias_after_kill_9_mid_promotion(
    project: Project, tmp_path: Path
) -> None:
    two_versions(project)
    script = tmp_path / "loop.py"
    script.write_text(LOOP)
    rng = random.Random(7)
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, str(script), project.store.db_url, project.store.artifacts.root],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.3, 1.0))
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.kill()
        proc.wait()
        with project.store.session() as s:
            holder = s.get(Alias, (project.store.project_name, NAME, "champion"))
            last = s.scalars(
                select(AliasEvent).where(AliasEvent.name == NAME).order_by(AliasEvent.id.desc())
            ).first()
            count = len(list(s.scalars(select(AliasEvent.id))))
        assert holder is not None and last is not None
        assert holder.version == last.to_version
    assert count > 10  # the loop really moved the alias many times before each kill
    assert_history_is_a_chain(project)


def assert_history_is_a_chain(project: Project) -> None:
    """Each move starts where the one before it ended: no two movers saw the same holder."""
    events = list(reversed(history(project.store, NAME, "champion", limit=10_000)))
    for before, after in itertools.pairwise(events):
        assert after.from_version == before.to_version, (before, after)


def test_two_processes_promoting_at_once_keep_one_chain(project: Project, tmp_path: Path) -> None:
    two_versions(project)
    script = tmp_path / "loop.py"
    script.write_text(LOOP)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), project.store.db_url, project.store.artifacts.root],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(2.0)
    for proc in procs:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.kill()
        proc.wait()
    assert len(history(project.store, NAME, "champion", limit=10_000)) > 10
    assert_history_is_a_chain(project)
