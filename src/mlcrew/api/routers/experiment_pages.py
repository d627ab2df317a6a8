"""The ML scientist's pages: tracked runs in a table to filter, sort and pick from, one run's
metric curves, and runs side by side with their curves overlaid. Charts are Plotly, served by
this service from the plotly package (no CDN)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse

from mlcrew.api.deps import AppState, get_state
from mlcrew.api.routers.pages import TEMPLATES, root_path
from mlcrew.errors import MlcrewError
from mlcrew.experiments import list_runs, show_run
from mlcrew.experiments.read import FILTER_RULE, compare_docs
from mlcrew.webassets import plotly_js

router = APIRouter(tags=["pages"], include_in_schema=False)
PLOTLY_ROUTE = "/vendor/plotly.min.js"
MAX_POINTS = 5_000  # per curve on a page: longer series are thinned evenly (last point kept)


@router.get(PLOTLY_ROUTE)
def plotly_bundle() -> FileResponse:
    return FileResponse(
        plotly_js(),
        media_type="text/javascript",
        headers={"cache-control": "public, max-age=86400"},
    )


@router.get("/experiments", response_class=HTMLResponse)
def experiments_page(
    request: Request,
    state: AppState = Depends(get_state),
    filter: Annotated[list[str], Query()] = [],  # noqa: B006
    sort: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> HTMLResponse:
    error = None
    filters = [f for f in filter if f.strip()]
    try:
        runs = list_runs(state.store, filters=filters, sort=sort, limit=limit)
    except MlcrewError as exc:  # a filter or sort the user mistyped: say so on the page
        error, runs = str(exc), []
    metric_keys = sorted({k for r in runs for k in r.metrics})
    param_keys = sorted({k for r in runs for k in r.params})
    varying = [k for k in param_keys if len({r.params.get(k) for r in runs}) > 1]
    context = {
        "name": state.spec.name,
        "root": root_path(request),
        "runs": runs,
        "metric_keys": metric_keys[:12],
        "param_keys": (varying or param_keys)[:12],
        "filters": filters,
        "sort": sort or "",
        "error": error,
        "filter_rule": FILTER_RULE,
    }
    return TEMPLATES.TemplateResponse(request, "experiments.html", context)


def _thin(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(points) <= MAX_POINTS:
        return points
    every = len(points) / MAX_POINTS
    kept = [points[int(i * every)] for i in range(MAX_POINTS - 1)]
    return [*kept, points[-1]]


def _curves(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per metric, one trace per run: steps and values (NaN and infinities left out)."""
    charts: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        for key, points in doc["metrics"].items():
            kept = [p for p in _thin(points) if isinstance(p["value"], (int, float))]
            charts.setdefault(key, []).append(
                {
                    "name": f"{doc['name']} ({doc['id'][:8]})",
                    "x": [p["step"] for p in kept],
                    "y": [p["value"] for p in kept],
                    "points": len(points),
                }
            )
    return dict(sorted(charts.items()))


@router.get("/experiments/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, state: AppState = Depends(get_state)) -> HTMLResponse:
    doc = show_run(state.store, run_id)
    context = {
        "name": state.spec.name,
        "root": root_path(request),
        "run": doc,
        "charts": _curves([doc]),
    }
    return TEMPLATES.TemplateResponse(request, "experiment_run.html", context)


@router.get("/experiments/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    runs: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006
    state: AppState = Depends(get_state),
) -> HTMLResponse:
    error, doc, charts = None, None, {}
    try:
        docs = [show_run(state.store, r) for r in runs]
        doc = compare_docs(docs)
        charts = _curves(docs)
    except MlcrewError as exc:
        error = str(exc)
    context = {
        "name": state.spec.name,
        "root": root_path(request),
        "doc": doc,
        "error": error,
        "charts": charts,
    }
    return TEMPLATES.TemplateResponse(request, "experiment_compare.html", context)
