"""The managers' labeling pages: /labeling (progress, throughput, agreement and gold accuracy
per labeler over time, disagreements, likely label errors) and /labeling/review (the reviewer
queue, one label at a time). Server-rendered; the review page's buttons call the REST API."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from mlcrew.api.deps import AppState, get_identity, get_state
from mlcrew.api.routers.pages import TEMPLATES, root_path

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/labeling", response_class=HTMLResponse)
def labeling_overview(request: Request, state: AppState = Depends(get_state)) -> HTMLResponse:
    from mlcrew.labeling.quality_page import manager_view

    state.labels().current()  # 404 saying how to import when there are no tasks yet
    view = manager_view(state.store, state.spec, state.project)
    context = {**view.context(), "name": state.spec.name, "root": root_path(request)}
    return TEMPLATES.TemplateResponse(request, "labeling.html", context)


@router.get("/labeling/review", response_class=HTMLResponse)
def labeling_review(
    request: Request,
    item: str | None = Query(None, max_length=128),
    state: AppState = Depends(get_state),
) -> HTMLResponse:
    from mlcrew.labeling.review import next_reviews

    spec = state.labels().current()
    who = get_identity(request)
    found = next_reviews(state.store, who.name, item=item)
    review = found[0] if found else None
    image = review.payload.get("image") if review else None
    image_url = None
    if review is not None and isinstance(image, dict):
        image_url = image.get("uri") or (
            f"{root_path(request)}/v1/labeling/review/tasks/{review.task_id}/image"
        )
    context = {
        "name": state.spec.name,
        "root": root_path(request),
        "review": review.to_json() if review else None,
        "image_url": image_url,
        "classes": spec.labeling.class_names(),
        "multi": spec.labeling.task == "multi",
        "reviewer": who.name,
        "item": item,
        "csrf": who.csrf or "",
    }
    return TEMPLATES.TemplateResponse(request, "labeling_review.html", context)
