"""Models: list versions and describe one. Predict is declared in routers/predict.py and answered
by api/fastpath.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from mlcrew.api.deps import AppState, get_state
from mlcrew.api.fastpath import MAX_NAME
from mlcrew.api.schemas import BAD_INPUT, NOT_FOUND, UNAVAILABLE
from mlcrew.registry.versions import ALIAS_PATTERN as ALIAS
from mlcrew.registry.versions import MAX_VERSION, aliases, list_versions

router = APIRouter(prefix="/v1/models", tags=["models"], responses=UNAVAILABLE)

Name = Annotated[str, Path(max_length=MAX_NAME)]
AliasQuery = Annotated[
    str | None,
    Query(pattern=f"^{ALIAS.pattern}$", description="An alias (default: champion)."),
]
VersionQuery = Annotated[
    int | None, Query(ge=1, le=MAX_VERSION, description="A version number instead of an alias.")
]


@router.get("")
def list_models(state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Every registered model with its versions and aliases."""
    versions = list_versions(state.store)
    names = sorted({v.name for v in versions})
    return {
        "models": [
            {
                "name": n,
                "aliases": aliases(state.store, n),
                "versions": [v.version for v in versions if v.name == n],
            }
            for n in names
        ]
    }


@router.get("/{name}", responses={**NOT_FOUND, **BAD_INPUT})
def describe(
    name: Name,
    alias: AliasQuery = None,
    version: VersionQuery = None,
    state: AppState = Depends(get_state),
) -> dict[str, Any]:
    """A version (champion by default): task, target, input schema, metrics, verdict."""
    info, _ = state.service.resolve(name, alias, version)
    loaded = state.models.load(info)
    return {
        "name": name,
        "version": info.version,
        "task": loaded.model.task,
        "target": loaded.model.target_,
        "input_schema": loaded.model.input_schema(),
        "metrics": info.metrics,
        "verdict": info.verdict,
    }


@router.get("/{name}/evaluation", responses={**NOT_FOUND, **BAD_INPUT})
def evaluation(
    name: Name,
    alias: AliasQuery = None,
    version: VersionQuery = None,
    state: AppState = Depends(get_state),
) -> dict[str, Any]:
    """A version's evaluation (champion by default): metrics and gates on the test split, value
    in money beside the dummy baseline's and the champion's, slices, confusion matrix, curves
    and calibration."""
    from mlcrew.training.report import evaluation as evaluate_version

    info, _ = state.service.resolve(name, alias, version)
    return evaluate_version(state.store, name, info.version)
