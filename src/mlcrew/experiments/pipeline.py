"""The pipeline's model search, tracked through the same API as any training code: one run for
the search (its budget, seed and the best score) with one child run per trial (its parameters,
seed and validation score), so `mlcrew experiments` and the pages show them beside the runs
people log themselves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlcrew.experiments.tracking import ActiveRun
from mlcrew.store import Store


def log_search(
    store: Store,
    *,
    pipeline_run: str,
    stage: str,
    seed: int,
    metric: str,
    budget: dict[str, Any],
    trials: Sequence[dict[str, Any]],
    scores: Sequence[float],
    chosen: Sequence[int],
    ensemble_score: float | None = None,
    validation: dict[str, Any] | None = None,
) -> str:
    """Record a finished search; returns the search run's id. Trials are numbered in the order
    the search considered them; `chosen` are those in the final model (one, or an ensemble's)."""
    with ActiveRun(
        store, f"{stage} search", source="pipeline", pipeline_run=pipeline_run, seed=seed
    ) as search:
        search.log_params({f"budget.{k}": v for k, v in budget.items()})
        search.log_params({f"validation.{k}": v for k, v in (validation or {}).items()})
        search.log_params(
            {
                "metric": metric,
                "trials": len(trials),
                "chosen_trials": ",".join(str(i) for i in chosen),
            }
        )
        for i, (params, score) in enumerate(zip(trials, scores, strict=True)):
            with ActiveRun(
                store,
                f"{stage} trial {i}",
                source="pipeline",
                parent=search.id,
                pipeline_run=pipeline_run,
                seed=seed,
            ) as trial:
                trial.log_params(params)
                trial.log_metric(f"valid_{metric}", score, step=0)
                trial.set_tag("chosen", str(i in chosen).lower())
            search.log_metric(f"valid_{metric}", score, step=i)
        if ensemble_score is None:
            ensemble_score = scores[chosen[0]]
        search.log_metric(f"best_valid_{metric}", ensemble_score, step=0)
    return search.id
