"""Labeling over REST: a labeler's next task, their labels, skips, flags and undo, the label
spec, and progress. A labeler sees their own queue and labels only (blind labeling)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from mlcrew.api.deps import AppState, get_identity, get_state
from mlcrew.api.schemas import BAD_INPUT, NOT_FOUND, UNAVAILABLE, Message
from mlcrew.errors import NotFoundError
from mlcrew.labeling import queue
from mlcrew.labeling.access import labeler_of, task_json
from mlcrew.labeling.labelspec import LabelSpec, guidelines_html
from mlcrew.people.identity import Identity

router = APIRouter(prefix="/v1/labeling", tags=["labeling"], responses=UNAVAILABLE)

TASK_ID = Path(..., ge=1, le=2**62, description="The task's id.")
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Message, "description": "Labeled, skipped or full already"}
}


class TaskOut(BaseModel):
    id: int
    item: str
    payload: dict[str, Any] = Field(description="What the labeler is shown of the item.")
    state: str = Field(description="assigned, submitted, skipped, flagged or unassigned")
    suggestion: dict[str, Any] | None = Field(
        description="The pre-label {label, score}, when the label spec shows them."
    )
    label: Any = Field(description="The caller's own label (pre-selected after an undo).")
    note: str | None = Field(description="A reviewer's note on a rejected label.")


class ProgressOut(BaseModel):
    labeled: int
    skipped: int
    held: int


class NextOut(BaseModel):
    task: TaskOut | None = Field(description="The task to label now; null when none is left.")
    ahead: list[TaskOut] = Field(description="The following tasks, prefetched (?ahead=N).")
    progress: ProgressOut


class TaskDoc(BaseModel):
    task: TaskOut | None


class LabelIn(BaseModel):
    label: str | list[str] = Field(
        ..., description="A class name; a list of them for a multi-label task."
    )
    confirmed: StrictBool = Field(
        False, description="The labeler took the shown suggestion as it was (Enter)."
    )
    seconds: float | None = Field(None, ge=0, le=86_400, description="Time spent on the task.")

    model_config = ConfigDict(extra="forbid")


class LabelOut(BaseModel):
    task_id: int
    label: Any
    confirmed: bool
    duplicate: bool = Field(description="The same submission came before; nothing was added.")


class NoteIn(BaseModel):
    note: str | None = Field(None, max_length=2000)

    model_config = ConfigDict(extra="forbid")


class StateOut(BaseModel):
    task_id: int
    state: str


class ClassOut(BaseModel):
    name: str
    key: str | None
    description: str


class LabelSpecOut(BaseModel):
    digest: str
    task: str
    show: str
    classes: list[ClassOut]
    guidelines: str = Field(description="Markdown.")
    guidelines_html: str
    overlap: int
    suggestions: bool


class StatusOut(BaseModel):
    tasks: int
    gold: int
    labels: int
    labelled_items: int
    complete_items: int
    open_items: int
    held: int
    skipped: int
    flagged: int
    confirmed_suggestions: int
    labelers: int
    label_spec: str | None


def _spec(state: AppState) -> LabelSpec:
    return state.labels().current()


def _out(view: queue.TaskView, spec: LabelSpec, request: Request) -> dict[str, Any]:
    return task_json(view, spec, str(request.scope.get("root_path", "")))


@router.get("/next", response_model=NextOut, responses=NOT_FOUND)
def next_task(
    request: Request,
    ahead: int = Query(0, ge=0, le=queue.MAX_AHEAD, description="Also prefetch N more."),
    state: AppState = Depends(get_state),
    who: Identity = Depends(get_identity),
) -> dict[str, Any]:
    """The caller's next task: one they hold, else a new claim (never one with all the
    labelers the overlap asks for, never one they labeled or skipped)."""
    spec = _spec(state)
    me = labeler_of(who, spec)
    views, progress = queue.next_with_progress(state.store, spec, me, 1 + ahead)
    out = [_out(v, spec, request) for v in views]
    return {"task": out[0] if out else None, "ahead": out[1:], "progress": progress.to_json()}


@router.get("/tasks/{task_id}", response_model=TaskDoc, responses=NOT_FOUND)
def get_task(
    request: Request,
    task_id: int = TASK_ID,
    state: AppState = Depends(get_state),
    who: Identity = Depends(get_identity),
) -> dict[str, Any]:
    """One task as the caller sees it (their own label only)."""
    spec = _spec(state)
    view = queue.task_view(state.store, spec, labeler_of(who, spec), task_id)
    return {"task": _out(view, spec, request)}


@router.get(
    "/tasks/{task_id}/image",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"image/png": {}}, "description": "The image."}},
)
def get_image(
    task_id: int = TASK_ID,
    state: AppState = Depends(get_state),
    who: Identity = Depends(get_identity),
) -> Response:
    """The task's image (for a task the caller may see)."""
    spec = _spec(state)
    view = queue.task_view(state.store, spec, labeler_of(who, spec), task_id)
    return image_response(state, view.payload.get("image"), task_id)


def image_response(state: AppState, value: Any, task_id: int) -> Response:
    """A task's stored image (its payload's `{digest, type}`), cached by the browser."""
    if not isinstance(value, dict) or "digest" not in value:
        raise NotFoundError(f"task {task_id} has no stored image")
    data = state.store.artifacts.read_bytes(str(value["digest"]))
    return Response(
        data,
        media_type=str(value.get("type") or "application/octet-stream"),
        headers={"cache-control": "private, max-age=86400, immutable"},
    )


@router.post(
    "/tasks/{task_id}/labels",
    response_model=LabelOut,
    status_code=201,
    responses={**NOT_FOUND, **CONFLICT, **BAD_INPUT},
)
def post_label(
    body: LabelIn,
    task_id: int = TASK_ID,
    state: AppState = Depends(get_state),
    who: Identity = Depends(get_identity),
) -> dict[str, Any]:
    """Store the caller's label for a task in their queue. Sending the same label again (a
    retry, a double click) is answered the same way and adds nothing."""
    spec = _spec(state)
    done = queue.submit(
        state.store,
        spec,
        labeler_of(who, spec),
        task_id,
        body.label,
        confirmed=body.confirmed,
        seconds=body.seconds,
        actor=who.actor,
    )
    return done.to_json()


def _put_down(
    state: AppState, who: Identity, task_id: int, kind: str, note: str | None
) -> dict[str, Any]:
    spec = _spec(state)
    queue.skip(
        state.store,
        labeler_of(who, spec),
        task_id,
        kind="flagged" if kind == "flagged" else "skipped",
        note=note,
    )
    return {"task_id": task_id, "state": kind}


@router.post("/tasks/{task_id}/skip", response_model=StateOut, responses={**NOT_FOUND, **CONFLICT})
def post_skip(
    body: NoteIn | None = None,
    task_id: int = TASK_ID,
    state: AppState = Depends(get_state),
    who: Identity = Depends(get_identity),
) -> dict[str, Any]:
    """Put a task down: it goes to another labeler, never back to the caller."""
    return _put_down(state, who, task_id, "skipped", body.note if body else None)


@router.post("/tasks/{task_id}/flag", response_model=StateOut, responses={**NOT_FOUND, **CONFLICT})
def post_flag(
    body: NoteIn | None = None,
    task_id: int = TASK_ID,
    state: AppState = Depends(get_state),
    who: Identity = Depends(get_identity),
) -> dict[str, Any]:
    """Report a problem with a task (unreadable, ambiguous): managers see the flags."""
    return _put_down(state, who, task_id, "flagged", body.note if body else None)


@router.post("/undo", response_model=TaskDoc, responses={**NOT_FOUND, **CONFLICT})
def post_undo(
    request: Request,
    state: AppState = Depends(get_state),
    who: Identity = Depends(get_identity),
) -> dict[str, Any]:
    """Take back the caller's latest label (not yet reviewed): the task is theirs to label
    again. `{"task": null}` when there is nothing to undo."""
    spec = _spec(state)
    view = queue.undo(state.store, spec, labeler_of(who, spec))
    return {"task": _out(view, spec, request) if view else None}


@router.get("/spec", response_model=LabelSpecOut, responses=NOT_FOUND)
def get_label_spec(state: AppState = Depends(get_state)) -> dict[str, Any]:
    """What labelers work from: classes with their keys, the guidelines, the overlap."""
    spec = _spec(state)
    labeling = spec.labeling
    return {
        "digest": spec.digest,
        "task": labeling.task,
        "show": labeling.show,
        "classes": [c.model_dump() for c in labeling.classes],
        "guidelines": spec.guidelines,
        "guidelines_html": guidelines_html(spec.guidelines),
        "overlap": labeling.overlap,
        "suggestions": labeling.prelabel != "none",
    }


@router.get("/me", response_model=ProgressOut)
def get_my_progress(
    state: AppState = Depends(get_state), who: Identity = Depends(get_identity)
) -> dict[str, Any]:
    """The caller's own counts: labeled, skipped or flagged, held."""
    return queue.progress(state.store, queue.Labeler(who.name)).to_json()


@router.get("/status", response_model=StatusOut)
def get_status(state: AppState = Depends(get_state)) -> dict[str, Any]:
    """The project's labeling progress: tasks, labels, labeled and complete items."""
    from mlcrew.labeling.status import label_status

    return label_status(state.store).to_json()
