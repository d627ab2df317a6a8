"""Twenty labelers at once over real HTTP, on SQLite and PostgreSQL: every submit is stored
exactly once, no task gets more labelers than the overlap, and double-sent forms add nothing."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import func, select

from mlcrew.api.app import create_app
from mlcrew.labeling.importer import import_tasks
from mlcrew.labeling.status import label_status
from mlcrew.labeling.tables import LabelAssignment, LabelEvent
from mlcrew.project import Project
from mlcrew.serving.server import BackgroundServer
from tests.labeling.conftest import add_labelers, write_project

LABELERS = 20
SUBMITS = 100  # per labeler (bench/labeling.py runs 20 x 1,000)


def test_twenty_labelers_at_once_lose_and_double_nothing(tmp_path: Path, db_url: str) -> None:
    root = write_project(tmp_path / "pets", items=LABELERS * SUBMITS + 300, overlap=1, gold=0.0)
    proj = Project.open(root, db_url=db_url)
    import_tasks(proj.store, proj.spec, proj.root, actor="test")
    crew = add_labelers(proj, [f"l{i:02d}" for i in range(LABELERS)])
    errors: list[str] = []
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)

    def work(token: str) -> None:
        auth = {"authorization": f"Bearer {token}"}
        # Idle connections are dropped before the server's 5-second keep-alive ends, so a POST
        # never goes out on a connection the server is closing.
        limits = httpx.Limits(keepalive_expiry=2.0)
        with httpx.Client(base_url=srv.url, headers=auth, timeout=60, limits=limits) as http:
            for n in range(SUBMITS):
                r = http.get("/v1/labeling/next")
                task = r.json().get("task") if r.status_code == 200 else None
                if task is None:
                    errors.append(f"next: {r.status_code} {r.text[:200]}")
                    return
                path = f"/v1/labeling/tasks/{task['id']}/labels"
                sends = 2 if n % 10 == 0 else 1  # every tenth form is sent twice at once
                replies: list[int] = []

                def send(path: str = path, replies: list[int] = replies) -> None:
                    replies.append(http.post(path, json={"label": "dog"}).status_code)

                twins = [threading.Thread(target=send) for _ in range(sends)]
                for t in twins:
                    t.start()
                for t in twins:
                    t.join()
                if replies != [201] * sends:
                    errors.append(f"submit: {replies}")

    with BackgroundServer(app) as srv:
        threads = [threading.Thread(target=work, args=(t,)) for t in crew.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[:5]
    status = label_status(proj.store)
    assert status.labels == LABELERS * SUBMITS
    with proj.store.session() as s:
        per_task = Counter(
            s.scalars(select(LabelAssignment.task_id).where(LabelAssignment.state == "submitted"))
        )
        submits = s.scalar(select(func.count()).where(LabelEvent.kind == "submit"))
    assert max(per_task.values()) == 1  # overlap 1: never a second labeler on a task
    assert len(per_task) == LABELERS * SUBMITS
    assert submits == LABELERS * SUBMITS  # the double-sent forms left one event each
    proj.close()
