"""Each labeler's queue over real HTTP: overlap and blindness, gold mixed in unannounced, a
double submit stored once, skip, flag, undo, external labelers and leases."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from mlcrew.api.app import create_app
from mlcrew.labeling.status import label_status
from mlcrew.labeling.tables import LabelAssignment, LabelEvent, LabelTask
from mlcrew.project import Project
from mlcrew.serving.server import BackgroundServer
from mlcrew.store import now
from tests.labeling.conftest import add_labelers


class Labeler:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=30
        )

    def next(self, ahead: int = 0) -> dict[str, Any] | None:
        r = self.http.get("/v1/labeling/next", params={"ahead": ahead})
        assert r.status_code == 200, r.text
        task: dict[str, Any] | None = r.json()["task"]
        return task

    def label(self, task_id: int, label: Any, **extra: Any) -> httpx.Response:
        return self.http.post(
            f"/v1/labeling/tasks/{task_id}/labels", json={"label": label, **extra}
        )


@pytest.fixture()
def served(pets: Project) -> Iterator[tuple[Project, str]]:
    app = create_app(pets.root, pets.spec, pets.store, access_log=False)
    with BackgroundServer(app) as srv:
        yield pets, srv.url


def _assignments(proj: Project) -> list[LabelAssignment]:
    with proj.store.session() as s:
        return list(s.scalars(select(LabelAssignment)))


def test_overlap_is_never_exceeded_and_labelers_are_blind(served: tuple[Project, str]) -> None:
    proj, url = served
    names = ["ann", "bob", "cy"]
    crew = {n: Labeler(url, t) for n, t in add_labelers(proj, names).items()}
    seen: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    active = set(names)
    while active:  # the three take turns until every queue is dry
        for name in sorted(active):
            task = crew[name].next()
            if task is None:
                active.discard(name)
                continue
            seen[name].append(task)
            # Blind: what a labeler is shown never holds anyone's label but their own.
            assert task["label"] is None and "truth" not in task["payload"]
            assert set(task) == {"id", "item", "payload", "state", "suggestion", "label", "note"}
            assert crew[name].label(task["id"], "cat").status_code == 201
    regular = Counter(a.task_id for a in _assignments(proj) if not a.gold)
    assert set(regular.values()) == {2}  # every item: exactly the overlap, never more
    assert len(regular) == 54
    # Another labeler's label stays invisible even on a task both labeled.
    both = next(t for t, n in regular.items() if n == 2)
    for name in names:
        r = crew[name].http.get(f"/v1/labeling/tasks/{both}")
        if r.status_code == 200:
            assert r.json()["task"]["label"] in (None, "cat")
    status = label_status(proj.store)
    assert status.complete_items == 54 and status.open_items == 0


def test_gold_items_come_unannounced_to_everyone(served: tuple[Project, str]) -> None:
    proj, url = served
    crew = {n: Labeler(url, t) for n, t in add_labelers(proj, ["ann", "bob"]).items()}
    for lab in crew.values():
        for _ in range(30):
            task = lab.next()
            assert task is not None and "gold" not in task and "gold" not in task["payload"]
            assert lab.label(task["id"], "dog").status_code == 201
    for name in crew:
        gold = [a for a in _assignments(proj) if a.labeler == name and a.gold]
        # About one in ten (the share), at each labeler's own places.
        assert 2 <= len(gold) <= 4, (name, len(gold))
    with proj.store.session() as s:
        gold_ids = set(s.scalars(select(LabelTask.id).where(LabelTask.gold.is_not(None))))
    by_task = Counter(a.task_id for a in _assignments(proj) if a.gold)
    assert set(by_task) <= gold_ids


def test_a_double_submit_is_stored_once(served: tuple[Project, str]) -> None:
    proj, url = served
    ann = Labeler(url, add_labelers(proj, ["ann"])["ann"])
    task = ann.next()
    assert task is not None
    first, again = ann.label(task["id"], "bird"), ann.label(task["id"], "bird")
    assert first.status_code == again.status_code == 201
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    assert label_status(proj.store).labels == 1
    other = ann.label(task["id"], "cat")
    assert other.status_code == 409 and "undo" in other.json()["detail"]
    bad = ann.label(task["id"], "horse")
    assert bad.status_code == 422 and "valid: cat, dog, bird" in bad.json()["detail"]
    with proj.store.session() as s:
        submits = s.scalars(select(LabelEvent).where(LabelEvent.kind == "submit")).all()
    assert len(submits) == 1


def test_skip_flag_and_undo(served: tuple[Project, str]) -> None:
    proj, url = served
    crew = add_labelers(proj, ["ann", "bob"])
    ann, bob = Labeler(url, crew["ann"]), Labeler(url, crew["bob"])
    skipped = ann.next()
    assert skipped is not None
    r = ann.http.post(f"/v1/labeling/tasks/{skipped['id']}/skip", json={})
    assert r.status_code == 200 and r.json()["state"] == "skipped"
    flagged = ann.next()
    assert flagged is not None and flagged["id"] != skipped["id"]
    r = ann.http.post(f"/v1/labeling/tasks/{flagged['id']}/flag", json={"note": "unreadable"})
    assert r.status_code == 200
    # Skipped and flagged tasks never come back to ann; others may take them.
    ids = []
    for _ in range(20):
        task = ann.next()
        assert task is not None
        ids.append(task["id"])
        assert ann.label(task["id"], "cat").status_code == 201
    assert skipped["id"] not in ids and flagged["id"] not in ids
    # Undo: the last label comes back, first in the queue, with the label pre-selected.
    undone = ann.http.post("/v1/labeling/undo").json()["task"]
    assert undone["id"] == ids[-1] and undone["label"] == "cat" and undone["state"] == "assigned"
    assert ann.next()["id"] == ids[-1]  # type: ignore[index]
    assert ann.label(ids[-1], "dog").status_code == 201
    status = label_status(proj.store)
    assert (status.labels, status.skipped, status.flagged) == (20, 1, 1)
    # bob can still be given the tasks ann put down.
    got = {bob.next()["id"] for _ in range(1)}  # type: ignore[index]
    assert got


def test_external_labelers_see_only_their_own_queue(served: tuple[Project, str]) -> None:
    proj, url = served
    inside = Labeler(url, add_labelers(proj, ["ann"])["ann"])
    outside = Labeler(url, add_labelers(proj, ["vendor"], external=True)["vendor"])
    mine = outside.next()
    assert mine is not None
    theirs = inside.next()
    assert theirs is not None
    # The outsider cannot open or label a task outside their queue, nor any other page.
    assert outside.http.get(f"/v1/labeling/tasks/{theirs['id']}").status_code == 404
    assert outside.label(theirs["id"], "cat").status_code == 404
    assert outside.http.get("/v1/labeling/status").status_code == 403
    assert outside.http.get("/v1/models").status_code == 403
    assert outside.http.get(f"/v1/labeling/tasks/{mine['id']}").status_code == 200
    # An in-house labeler (action `label`) may open and label any task not full yet.
    with proj.store.session() as s:
        free = s.scalars(
            select(LabelTask.id).where(LabelTask.open.is_(True)).order_by(LabelTask.id.desc())
        ).first()
    assert inside.http.get(f"/v1/labeling/tasks/{free}").status_code == 200
    assert inside.label(free, "cat").status_code == 201  # type: ignore[arg-type]


def test_only_the_labelers_the_spec_names_may_label(pets: Project) -> None:
    spec = pets.root / "mlcrew.yaml"
    spec.write_text(spec.read_text().replace("  overlap: 2\n", "  overlap: 2\n  labelers: [ann]\n"))
    proj = Project.open(pets.root, db_url=pets.store.db_url)
    from mlcrew.labeling.importer import import_tasks

    import_tasks(proj.store, proj.spec, proj.root, actor="test")
    crew = add_labelers(proj, ["ann", "bob"])
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    with BackgroundServer(app) as srv:
        assert Labeler(srv.url, crew["ann"]).next() is not None
        r = Labeler(srv.url, crew["bob"]).http.get("/v1/labeling/next")
        assert r.status_code == 403 and "labeling.labelers: ann" in r.json()["detail"]
    proj.close()


def test_a_task_held_past_its_lease_goes_to_someone_else(served: tuple[Project, str]) -> None:
    proj, url = served
    crew = add_labelers(proj, ["ann", "bob", "cy", "dee"])
    ann, bob, cy, dee = (Labeler(url, crew[n]) for n in ("ann", "bob", "cy", "dee"))
    held = ann.next()  # ann takes a task and walks away
    assert held is not None
    for lab in (bob, cy):  # the others label everything they are given
        while (task := lab.next()) is not None:
            assert lab.label(task["id"], "cat").status_code == 201
    assert label_status(proj.store).open_items == 0
    with proj.store.session() as s:  # two hours later: past the 30-minute lease
        s.execute(
            update(LabelAssignment)
            .where(LabelAssignment.labeler == "ann")
            .values(assigned_at=now() - timedelta(hours=2))
        )
    given = []
    while (task := dee.next()) is not None:
        given.append(task["id"])
        assert dee.label(task["id"], "cat").status_code == 201
    assert held["id"] in given
    late = ann.label(held["id"], "cat")
    assert late.status_code == 409 and "expired" in late.json()["detail"]


def test_the_overview_shows_labeling_progress(pets: Project) -> None:
    app = create_app(pets.root, pets.spec, pets.store, access_log=False)
    with BackgroundServer(app) as srv:  # no people yet: the local owner labels and looks
        owner = httpx.Client(base_url=srv.url, timeout=30)
        with pets.store.session() as s:  # an ordinary item (the local owner may label any)
            free = s.scalars(select(LabelTask.id).where(LabelTask.open.is_(True))).first()
        done = owner.post(f"/v1/labeling/tasks/{free}/labels", json={"label": "cat"})
        assert done.status_code == 201
        page = owner.get("/", headers={"accept": "text/html"}).text
    assert 'data-testid="labelled-items">1</strong> of 54 items labeled' in page
    assert "1 label by 1 labeler" in page and 'href="/label"' in page


def test_a_manager_fills_an_outsourced_labelers_queue(served: tuple[Project, str]) -> None:
    import json
    import subprocess
    import sys

    proj, url = served
    vendor = Labeler(url, add_labelers(proj, ["vendor"], external=True)["vendor"])

    def assign(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "mlcrew.cli.main", "label", "assign", *args]
        return subprocess.run(
            [*cmd, "-p", str(proj.root), "--json"], capture_output=True, text=True, timeout=120,
            env={**__import__("os").environ, "MLCREW_DB_URL": proj.store.db_url},
        )  # fmt: skip

    done = assign("vendor", "--count", "5")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"labeler": "vendor", "assigned": 5}
    r = vendor.http.get("/v1/labeling/next", params={"ahead": 3}).json()
    assert r["progress"]["held"] == 5 and r["task"] is not None and len(r["ahead"]) == 3
    missing = assign("nobody", "--count", "1")
    assert missing.returncode == 1 and "mlcrew user add nobody --role labeler" in missing.stderr
