"""Next task and submit answered by the service's outer layer (api/labeling_fast.py): the same
answers as the documented router, before the web framework is even built, and everything out
of the ordinary handed on to the router's documented errors."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from mlcrew.api.app import create_app
from mlcrew.api.routers.labeling import LabelOut, NextOut
from mlcrew.labeling.tables import LabelAssignment
from mlcrew.project import Project
from tests.asgi import in_thread
from tests.labeling.conftest import add_labelers


def _run(app: Any, calls: list[tuple[str, str, dict[str, Any]]]) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return [await http.request(method, url, **kw) for method, url, kw in calls]

    return in_thread(go)


def test_next_and_submit_skip_the_framework_and_answer_as_the_router(pets: Project) -> None:
    token = add_labelers(pets, ["ann"])["ann"]
    auth = {"authorization": f"Bearer {token}"}
    app = create_app(pets.root, pets.spec, pets.store, access_log=False)
    try:
        (first,) = _run(app, [("GET", "/v1/labeling/next?ahead=2", {"headers": auth})])
        assert first.status_code == 200, first.text
        doc = first.json()
        # Exactly the router's documented shape, field for field.
        assert NextOut.model_validate(doc).model_dump(mode="json") == doc
        assert doc["task"]["state"] == "assigned" and len(doc["ahead"]) == 2
        task = doc["task"]["id"]
        url = f"/v1/labeling/tasks/{task}/labels"
        body = {"label": "dog", "confirmed": False, "seconds": 2}
        labeled, again, unknown, held = _run(
            app,
            [
                ("POST", url, {"headers": auth, "json": body}),
                ("POST", url, {"headers": auth, "json": body}),
                ("POST", "/v1/labeling/tasks/999999/labels", {"headers": auth, "json": body}),
                ("GET", "/v1/labeling/next", {"headers": auth}),
            ],
        )
        assert labeled.status_code == 201, labeled.text
        assert LabelOut.model_validate(labeled.json()).model_dump() == labeled.json()
        assert labeled.json() == {"task_id": task, "label": "dog", "confirmed": False,
                                  "duplicate": False}  # fmt: skip
        assert again.status_code == 201 and again.json()["duplicate"] is True
        assert unknown.status_code == 404 and isinstance(unknown.json()["detail"], str)
        assert held.json()["task"]["id"] == doc["ahead"][0]["id"]  # prefetched: held already
        assert held.headers["x-request-id"]
        # None of that needed the web framework: a labeler is served before it is built.
        assert app._api is None
    finally:
        app.shutdown()
    with pets.store.session() as s:
        labels = s.scalar(
            select(func.count())
            .select_from(LabelAssignment)
            .where(LabelAssignment.label.is_not(None))
        )
    assert labels == 1


def test_what_the_fast_path_does_not_take_gets_the_routers_answers(pets: Project) -> None:
    token = add_labelers(pets, ["bob"])["bob"]
    auth = {"authorization": f"Bearer {token}"}
    app = create_app(pets.root, pets.spec, pets.store, access_log=False)
    try:
        (first,) = _run(app, [("GET", "/v1/labeling/next", {"headers": auth})])
        url = f"/v1/labeling/tasks/{first.json()['task']['id']}/labels"
        replies = _run(
            app,
            [
                ("GET", "/v1/labeling/next?ahead=9", {"headers": auth}),
                ("POST", url, {"headers": auth, "json": {"label": 3}}),
                ("POST", url, {"headers": auth, "json": {"label": "dog", "colour": "red"}}),
                ("POST", url, {"headers": auth, "json": {"label": "dog", "seconds": -1}}),
                ("POST", url, {"headers": auth, "content": b"{not json"}),
                ("POST", "/v1/labeling/tasks/0/labels", {"headers": auth, "json": {"label": "x"}}),
                ("GET", "/v1/labeling/next", {}),
                ("POST", url, {"headers": auth, "json": {"label": "unicorn"}}),
            ],
        )
        statuses = [r.status_code for r in replies]
        assert statuses == [422, 422, 422, 422, 422, 422, 401, 422], [r.text for r in replies]
        fields = [[p["field"] for p in r.json()["detail"]] for r in replies[:6]]
        assert fields[0] == ["ahead"] and fields[2] == ["colour"] and fields[3] == ["seconds"]
        assert fields[1] and all(f.startswith("label") for f in fields[1])
        assert fields[4] == ["body"] and fields[5] == ["task_id"]
        assert replies[6].headers["www-authenticate"].startswith("Bearer")
        assert "unicorn" in replies[7].json()["detail"]  # the queue's own check: not a class
        (label,) = _run(app, [("POST", url, {"headers": auth, "json": {"label": "cat"}})])
        assert label.status_code == 201 and label.json()["duplicate"] is False
    finally:
        app.shutdown()
