"""The data engineer's pages: the datasets with their lineage graph, one dataset (schema,
profile with small histograms, checks and their history, lineage up and down, its versions),
and a query console over the datasets (it calls POST /v1/query)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse

from mlcrew.api.deps import AppState, get_identity, get_state
from mlcrew.api.routers.pages import TEMPLATES, root_path
from mlcrew.data.catalog import lineage, list_datasets, show_dataset
from mlcrew.errors import MlcrewError
from mlcrew.people.identity import Identity

router = APIRouter(tags=["pages"], include_in_schema=False)

Ref = Annotated[str, Path(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(@[0-9]+)?$", max_length=80)]


def _layers(graph: dict[str, Any]) -> dict[str, Any]:
    """Each dataset's depth (sources at 0), for the graph's left-to-right layout."""
    parents: dict[str, list[str]] = {}
    for edge in graph["edges"]:
        parents.setdefault(edge["to"], []).append(edge["from"])
    depth: dict[str, int] = {}

    def of(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in depth:
            ups = [
                p for p in parents.get(name, []) if p not in seen and not p.startswith("source:")
            ]
            depth[name] = 1 + max((of(p, seen | {name}) for p in ups), default=-1)
        return depth[name]

    names = [n["name"] for n in graph["nodes"]]
    for name in names:
        of(name)
    edges = [e for e in graph["edges"] if e["from"] in depth and e["to"] in depth]
    return {"nodes": [{**n, "depth": depth[n["name"]]} for n in graph["nodes"]], "edges": edges}


@router.get("/data", response_class=HTMLResponse)
def datasets_page(request: Request, state: AppState = Depends(get_state)) -> HTMLResponse:
    context = {
        "name": state.spec.name,
        "root": root_path(request),
        "datasets": list_datasets(state.store),
        "graph": _layers(lineage(state.store)),
        "dataset_table": state.spec.dataset.from_ if state.spec.dataset else None,
    }
    return TEMPLATES.TemplateResponse(request, "datasets.html", context)


@router.get("/data/{ref}", response_class=HTMLResponse)
def dataset_page(ref: Ref, request: Request, state: AppState = Depends(get_state)) -> HTMLResponse:
    try:
        doc = show_dataset(state.store, ref)
    except MlcrewError as exc:
        missing = {"name": state.spec.name, "root": root_path(request), "error": str(exc)}
        return TEMPLATES.TemplateResponse(request, "dataset.html", missing, status_code=404)
    charts = {c["name"]: c["histogram"] for c in doc["profile"]["columns"] if c.get("histogram")}
    runs: list[str] = []
    for c in doc["checks"]:
        if c["run_id"] not in runs:
            runs.append(c["run_id"])
    context: dict[str, Any] = {
        "name": state.spec.name,
        "root": root_path(request),
        "d": doc,
        "charts": charts,
        "latest_checks": [c for c in doc["checks"] if runs and c["run_id"] == runs[0]],
        "history": _history(doc["checks"], runs[:10]),
        "error": None,
    }
    return TEMPLATES.TemplateResponse(request, "dataset.html", context)


def _history(checks: list[dict[str, Any]], runs: list[str]) -> list[dict[str, Any]]:
    """One row per check, one cell per run (newest first): passed, or the failing count."""
    rows: dict[int, dict[str, Any]] = {}
    for c in checks:
        if c["run_id"] not in runs:
            continue
        row = rows.setdefault(c["check"], {"check": c["check"], "rule": c["rule"], "cells": {}})
        row["cells"][c["run_id"]] = c
    return [
        {**row, "cells": [row["cells"].get(r) for r in runs], "runs": runs}
        for _, row in sorted(rows.items())
    ]


@router.get("/query", response_class=HTMLResponse)
def query_page(
    request: Request,
    state: AppState = Depends(get_state),
    who: Identity = Depends(get_identity),
    table: Annotated[str | None, Query(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)] = None,
) -> HTMLResponse:
    datasets = list_datasets(state.store)
    first = table or (datasets[0]["name"] if datasets else "my_table")
    context = {
        "name": state.spec.name,
        "root": root_path(request),
        "datasets": datasets,
        "example": f"SELECT * FROM {first} LIMIT 20",
        "config": {"root": root_path(request), "csrf": who.csrf or ""},
        "limits": state.spec.serving.query,
    }
    return TEMPLATES.TemplateResponse(request, "query.html", context)
