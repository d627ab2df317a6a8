"""Label quality and review over REST: the quality report (agreement, gold accuracy, consensus,
likely label errors), the reviewer queue, and a reviewer's decision on a label."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from mlcrew.api.deps import AppState, get_identity, get_state
from mlcrew.api.schemas import BAD_INPUT, NOT_FOUND, UNAVAILABLE, Message
from mlcrew.errors import ConflictError, DataError
from mlcrew.people.identity import Identity

router = APIRouter(prefix="/v1/labeling", tags=["labeling"], responses=UNAVAILABLE)

TASK_ID = Path(..., ge=1, le=2**62, description="The task's id.")
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Message, "description": "One's own work, or reviewed already"}
}


class QualityOut(BaseModel):
    """Every figure is null with a `reason` when it is undefined (one labeler, no shared items,
    one class in use); see docs/spec.md, 'labeling quality'."""

    task: str
    classes: list[str]
    items: int = Field(description="Items with at least one submitted label.")
    votes: int = Field(description="Submitted labels.")
    labelers: list[str]
    agreement: dict[str, Any] = Field(
        description="alpha (Krippendorff, nominal), fleiss (with raters and items_left_out), "
        "pairs (Cohen's kappa per pair of labelers), labelers (mean pairwise kappa and observed "
        "agreement of each), classes (one-vs-rest alpha and Fleiss' kappa)."
    )
    gold: list[dict[str, Any]] = Field(description="Per labeler: correct, answered, accuracy.")
    over_time: list[dict[str, Any]] = Field(
        description="Per labeler and period: labels, confirmed suggestions, gold accuracy, "
        "agreement with the others."
    )
    consensus: dict[str, Any] = Field(
        description="method (cleanlab or majority, with the reason), annotators (cleanlab's "
        "quality of each labeler), counts; items with ?items=true."
    )
    disagreements: list[dict[str, Any]] = Field(description="The items labelers agree on least.")
    out_of_fold: dict[str, Any] = Field(description="The model behind consensus and errors.")
    label_issues: dict[str, Any] = Field(
        description="Likely label errors, most likely first (cleanlab find_label_issues)."
    )


class ReviewDoc(BaseModel):
    review: dict[str, Any] | None = Field(
        description="The next label to review: task_id, item, payload, labeler, label, "
        "confirmed, submitted_at, why (gold miss | disagreement | unreviewed), others (the "
        "other labels on the item), gold; null when there is nothing to review."
    )


class ReviewIn(BaseModel):
    labeler: str = Field(..., min_length=1, max_length=64, description="Whose label.")
    decision: Literal["accept", "reject", "correct"]
    label: str | list[str] | None = Field(None, description="The corrected label (correct).")
    note: str | None = Field(
        None, max_length=2000, description="Shown to the labeler; a reject needs one."
    )

    model_config = ConfigDict(extra="forbid")


class ReviewedOut(BaseModel):
    task_id: int
    labeler: str
    decision: str
    label: Any = Field(description="The label as it stands after the review.")
    reviewer: str
    note: str | None
    duplicate: bool = Field(description="The same review came before; nothing changed.")


@router.get("/quality", response_model=QualityOut, responses={**NOT_FOUND, **BAD_INPUT})
def get_quality(
    every: str = Query(
        "day", pattern=r"^(day|[1-9][0-9]{0,5})$", description="Periods: 'day' or N submissions."
    ),
    items: bool = Query(False, description="Include the consensus label of every item."),
    issues: int = Query(100, ge=0, le=100_000, description="Label issues to list."),
    state: AppState = Depends(get_state),
) -> dict[str, Any]:
    """The quality of the project's labels as they stand."""
    from mlcrew.labeling.project_quality import project_quality
    from mlcrew.labeling.quality import parse_every

    try:
        report = project_quality(
            state.store, spec=state.spec, project=state.project, every=parse_every(every)
        )
    except DataError as exc:  # stored labels that the label spec in force no longer allows
        raise ConflictError(
            f"{exc}; re-import the label spec that matches, or review them"
        ) from None
    return report.to_dict(items=items, issues=issues)


@router.get("/review/next", response_model=ReviewDoc, responses=NOT_FOUND)
def get_next_review(
    request: Request,
    item: str | None = Query(
        None, max_length=128, description="Only labels on this item (e.g. a likely error)."
    ),
    state: AppState = Depends(get_state),
    who: Identity = Depends(get_identity),
) -> dict[str, Any]:
    """The caller's next label to review: gold misses first, then disagreements, then the rest;
    never the caller's own, nor on an item the caller labeled."""
    from mlcrew.labeling.review import next_reviews

    state.labels().current()  # 404 with what to do when nothing was imported
    found = next_reviews(state.store, who.name, item=item)
    if not found:
        return {"review": None}
    doc = found[0].to_json()
    image = doc["payload"].get("image")
    if isinstance(image, dict):
        root = str(request.scope.get("root_path", "")).rstrip("/")
        url = image.get("uri") or f"{root}/v1/labeling/review/tasks/{doc['task_id']}/image"
        doc["payload"] = {**doc["payload"], "image": {"url": url, "type": image.get("type")}}
    return {"review": doc}


@router.get(
    "/review/tasks/{task_id}/image",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"image/png": {}}, "description": "The image."}},
)
def get_review_image(task_id: int = TASK_ID, state: AppState = Depends(get_state)) -> Response:
    """A task's stored image, for a reviewer."""
    from mlcrew.api.routers.labeling import image_response
    from mlcrew.labeling.tables import LabelTask

    with state.store.session() as s:
        task = s.get(LabelTask, task_id)
        value = task.payload.get("image") if task is not None else None
    return image_response(state, value, task_id)


@router.post(
    "/tasks/{task_id}/review",
    response_model=ReviewedOut,
    responses={**NOT_FOUND, **CONFLICT, **BAD_INPUT},
)
def post_review(
    body: ReviewIn,
    task_id: int = TASK_ID,
    state: AppState = Depends(get_state),
    who: Identity = Depends(get_identity),
) -> dict[str, Any]:
    """Accept, reject (back to the labeler with the note) or correct a labeler's label."""
    from mlcrew.labeling.review import review

    done = review(
        state.store,
        state.labels().current(),
        task_id,
        body.labeler,
        who.name,
        body.decision,
        label=body.label,
        note=body.note,
        actor=who.actor,
    )
    return done.to_json()
