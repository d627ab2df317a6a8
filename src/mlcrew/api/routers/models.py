"""Models: list versions, describe one, and predict with the champion (or any alias/version)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from mlcrew.api.deps import AppState, get_state
from mlcrew.registry.versions import CHAMPION, aliases, list_versions

router = APIRouter(prefix="/v1/models", tags=["models"])


class PredictRequest(BaseModel):
    rows: list[dict[str, Any]] = Field(..., description="Input rows, one object per row.")


class ModelRef(BaseModel):
    name: str
    version: int


class InputWarning(BaseModel):
    row: int
    field: str
    warning: str


class PredictResponse(BaseModel):
    predictions: list[Any]
    model: ModelRef
    warnings: list[InputWarning] = Field(
        default_factory=list,
        description="Values unlike anything in training (unseen categories, out-of-range "
        "numbers, unexpected missing values): the prediction is made, but is less reliable.",
    )


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


@router.get("/{name}")
def describe(name: str, alias: str = CHAMPION, state: AppState = Depends(get_state)) -> Any:
    """A version (champion by default): task, target, input schema, metrics, verdict."""
    loaded = state.models.get(name, alias)
    return {
        "name": name,
        "version": loaded.info.version,
        "task": loaded.model.task,
        "target": loaded.model.target_,
        "input_schema": loaded.model.input_schema(),
        "metrics": loaded.info.metrics,
        "verdict": loaded.info.verdict,
    }


@router.post("/{name}/predict", response_model=PredictResponse)
def predict(
    name: str, body: PredictRequest, alias: str = CHAMPION, state: AppState = Depends(get_state)
) -> PredictResponse:
    """Predict for each row with the model behind `alias` (default: champion)."""
    loaded = state.models.get(name, alias)
    if not body.rows:
        raise HTTPException(422, [{"row": None, "field": "rows", "error": "no rows given"}])
    if len(body.rows) > state.spec.serving.max_rows:
        raise HTTPException(
            413, f"{len(body.rows)} rows exceed serving.max_rows={state.spec.serving.max_rows}"
        )
    predictions = loaded.model.predict_rows(body.rows)
    return PredictResponse(
        predictions=predictions,
        model=ModelRef(name=name, version=loaded.info.version),
        warnings=[InputWarning(**w) for w in loaded.model.unfamiliar(body.rows)],
    )
