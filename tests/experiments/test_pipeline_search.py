"""The pipeline's search is tracked like any training code: a run for the search, one child
run per trial with its parameters, seed and validation score, and only when it executes."""

from __future__ import annotations

from pathlib import Path

from mlcrew.experiments import list_runs, show_run
from mlcrew.pipeline.reproduce import reproduce
from mlcrew.pipeline.runner import Runner
from mlcrew.project import Project, init_project


def test_trials_are_tracked_once_with_their_parameters(tmp_path: Path, db_url: str) -> None:
    root = init_project(tmp_path / "bikes")
    spec = root / "mlcrew.yaml"
    spec.write_text(spec.read_text().replace("{trials: 1, rounds: 300}", "{trials: 3, rounds: 40}"))
    proj = Project.open(root, db_url=db_url)
    try:
        result = Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
        record = next(s for s in result.stages if s.name == "train").record
        runs = list_runs(proj.store, source="pipeline")
        (search,) = [r for r in runs if r.parent is None]
        trials = sorted((r for r in runs if r.parent == search.id), key=lambda r: r.name)
        assert [t.name for t in trials] == ["train trial 0", "train trial 1", "train trial 2"]
        assert {t.seed for t in [search, *trials]} == {0}
        assert [t["kind"] for t in record["trials"]] == ["lightgbm", "linear", "lightgbm"]
        for t, stage_trial in zip(trials, record["trials"], strict=True):
            assert t.metrics["valid_mae"] == stage_trial["mae"]
            logged = {k: str(v) for k, v in stage_trial.items() if k not in ("trial", "mae")}
            assert t.params == logged  # kind, origin, rounds and each tuned parameter
        chosen = sorted(int(t.name.rsplit(" ", 1)[1]) for t in trials if t.tags["chosen"] == "true")
        assert chosen == [m["trial"] for m in record["ensemble"]]
        doc = show_run(proj.store, search.id)
        assert doc["params"]["budget.trials"] == "3" and doc["params"]["metric"] == "mae"
        assert doc["params"]["validation.folds"] == "5"
        assert doc["metrics"]["best_valid_mae"][0]["value"] == record["valid_score"]
        assert [p["value"] for p in doc["metrics"]["valid_mae"]] == [
            t["mae"] for t in record["trials"]
        ]
        # A cached re-run and a reproduction add no tracked runs.
        Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
        assert reproduce(proj.store, result.run_id)["identical"]
        assert len(list_runs(proj.store, source="pipeline")) == 4
    finally:
        proj.close()
