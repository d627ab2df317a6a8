"""Label quality and review through real HTTP (and the CLI), on SQLite and PostgreSQL: the
report a manager reads, the reviewer queue and its three decisions, and who may do what."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from mlcrew.labeling.project_quality import read_labels
from mlcrew.labeling.quality import quality_report
from mlcrew.labeling.tables import LabelAssignment, LabelEvent, LabelTask
from tests.labeling.points import (
    GOLD,
    LabelProject,
    label_everything,
    serve_label_project,
    wrong,
)

CLASSES = ["a", "b", "c"]


@pytest.fixture()
def label_project(tmp_path: Path, db_url: str) -> Iterator[LabelProject]:
    with serve_label_project(tmp_path, db_url) as lp:
        yield lp


def events(lp: LabelProject, item: str) -> list[tuple[str, str, object, str | None]]:
    """(kind, actor, label, note) of every step on an item, in order."""
    with lp.project.store.session() as s:
        task_id = s.scalars(select(LabelTask.id).where(LabelTask.item == item)).one()
        rows = s.execute(
            select(LabelEvent.kind, LabelEvent.actor, LabelEvent.label, LabelEvent.note)
            .where(LabelEvent.task_id == task_id)
            .order_by(LabelEvent.id)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def task_id_of(lp: LabelProject, item: str) -> int:
    with lp.project.store.session() as s:
        return int(s.scalars(select(LabelTask.id).where(LabelTask.item == item)).one())


def test_quality_report_over_http_matches_the_labels_submitted(label_project: LabelProject) -> None:
    lp = label_project
    votes = label_everything(lp)
    with lp.client("max") as manager:
        got = manager.get("/v1/labeling/quality", params={"every": "10"})
    assert got.status_code == 200, got.text
    report = got.json()
    assert report["votes"] == len(votes)
    # The same figures as the library on the votes the labelers sent (gold from gold.csv).
    gold = {item: lp.truth[item] for item in GOLD}
    expected = quality_report(votes, CLASSES, gold=gold, every=10).to_dict()
    assert report["agreement"] == json.loads(json.dumps(expected["agreement"]))
    assert report["gold"] == expected["gold"]
    # What a manager reads off it: bob misses p000 (every fifth item is wrong), ann and cy none.
    accuracy = {g["labeler"]: (g["correct"], g["answered"]) for g in report["gold"]}
    assert accuracy["ann"] == (3, 3) and accuracy["cy"] == (3, 3)
    assert accuracy["bob"] == (2, 3)
    kappa = {(p["a"], p["b"]): p["kappa"]["value"] for p in report["agreement"]["pairs"]}
    assert kappa[("ann", "cy")] == 1.0
    assert kappa[("ann", "bob")] < 1.0 and kappa[("bob", "cy")] < 1.0
    # The items labelers disagree on are exactly bob's wrong ones that someone else labeled too.
    shared = Counter(v.item for v in votes)
    bob_wrong = {v.item for v in votes if v.labeler == "bob" and v.label != lp.truth[v.item]} & {
        item for item, n in shared.items() if n > 1
    }
    assert bob_wrong and {d["item"] for d in report["disagreements"]} == bob_wrong
    # With the points' coordinates as features, cleanlab runs and ranks bob below the others.
    assert report["consensus"]["method"] == "cleanlab", report["consensus"]["reason"]
    quality = {a["labeler"]: a["quality"] for a in report["consensus"]["annotators"]}
    assert quality["bob"] < min(quality["ann"], quality["cy"])
    assert "items" not in report["consensus"] and report["consensus"]["count"] == len(shared)
    # Periods of 10 submissions each, for each labeler.
    assert {p["period"] for p in report["over_time"] if p["labeler"] == "ann"} >= {"1-10"}


def test_label_quality_cli(label_project: LabelProject) -> None:
    lp = label_project
    label_everything(lp)
    cmd = [sys.executable, "-m", "mlcrew.cli.main", "label", "quality", "-p", str(lp.project.root)]
    doc = subprocess.run(
        [*cmd, "--json"], capture_output=True, text=True, env=lp.env, timeout=300
    )  # fmt: skip
    assert doc.returncode == 0, doc.stderr
    report = json.loads(doc.stdout)
    assert {g["labeler"]: g["correct"] for g in report["gold"]} == {"ann": 3, "bob": 2, "cy": 3}
    text = subprocess.run(cmd, capture_output=True, text=True, env=lp.env, timeout=300)
    assert text.returncode == 0, text.stderr
    assert "Krippendorff's alpha" in text.stdout and "bob" in text.stdout
    bad = subprocess.run(
        [*cmd, "--every", "weekly"], capture_output=True, text=True, env=lp.env, timeout=300
    )  # fmt: skip
    assert bad.returncode != 0 and "every must be 'day' or a positive number" in bad.stderr


def test_review_queue_serves_gold_misses_first_and_never_ones_own(
    label_project: LabelProject,
) -> None:
    lp = label_project
    label_everything(lp)
    with lp.client("rita") as rita:
        first = rita.get("/v1/labeling/review/next").json()["review"]
    # bob's wrong answer on gold item p000 is the one gold miss.
    assert (first["item"], first["labeler"], first["why"]) == ("p000", "bob", "gold miss")
    assert first["label"] == wrong(lp.truth["p000"]) and first["gold"] == lp.truth["p000"]
    assert {o["labeler"] for o in first["others"]} == {"ann", "cy"}
    # A reviewer who labels an item never gets labels on it to review.
    with lp.client("ann") as ann:
        mine = ann.get("/v1/labeling/review/next")
    assert mine.status_code == 403  # a labeler has no review_labels
    with lp.client("max") as manager:
        seen = manager.get("/v1/labeling/review/next").json()["review"]
        assert seen["labeler"] != "max"
        # One item picked from the report (a likely error): its labels one by one, then null.
        reviewed = set()
        while True:
            got = manager.get("/v1/labeling/review/next", params={"item": "p010"}).json()
            if got["review"] is None:
                break
            assert got["review"]["item"] == "p010"
            assert got["review"]["labeler"] not in reviewed
            reviewed.add(got["review"]["labeler"])
            manager.post(
                f"/v1/labeling/tasks/{got['review']['task_id']}/review",
                json={"labeler": got["review"]["labeler"], "decision": "accept"},
            )
    assert len(reviewed) == 2  # overlap 2: both labels on p010 were served, then none


def test_reject_sends_the_task_back_with_the_note(label_project: LabelProject) -> None:
    lp = label_project
    label_everything(lp)
    task_id = task_id_of(lp, "p000")
    body = {"labeler": "bob", "decision": "reject", "note": "the point sits in cluster a"}
    with lp.client("rita") as rita:
        no_note = rita.post(f"/v1/labeling/tasks/{task_id}/review", json={**body, "note": None})
        assert no_note.status_code == 422 and "needs a note" in no_note.text
        done = rita.post(f"/v1/labeling/tasks/{task_id}/review", json=body)
        assert done.status_code == 200, done.text
        assert done.json()["decision"] == "reject" and not done.json()["duplicate"]
        again = rita.post(f"/v1/labeling/tasks/{task_id}/review", json=body)
        assert again.status_code == 200 and again.json()["duplicate"]
    with lp.client("bob") as bob:
        task = bob.get("/v1/labeling/next").json()["task"]
        assert task["id"] == task_id and task["note"] == body["note"]
        assert task["state"] == "assigned"
        resent = bob.post(f"/v1/labeling/tasks/{task_id}/labels", json={"label": "a"})
        assert resent.status_code == 201, resent.text
    steps = [(kind, actor, label) for kind, actor, label, _ in events(lp, "p000")]
    assert ("submit", "bob", "b") in steps
    assert steps.index(("reject", "rita", "b")) < steps.index(("submit", "bob", "a"))
    assert [n for k, _, _, n in events(lp, "p000") if k == "reject"] == [body["note"]]
    with lp.client("max") as manager:
        report = manager.get("/v1/labeling/quality").json()
    assert {g["labeler"]: g["correct"] for g in report["gold"]}["bob"] == 3


def test_correct_stores_the_label_and_keeps_the_labelers_own(label_project: LabelProject) -> None:
    lp = label_project
    label_everything(lp)
    # p005: bob said wrong(truth); correct it to the truth.
    task_id = task_id_of(lp, "p005")
    truth = lp.truth["p005"]
    with lp.client("rita") as rita:
        url = f"/v1/labeling/tasks/{task_id}/review"
        missing = rita.post(url, json={"labeler": "bob", "decision": "correct"})
        assert missing.status_code == 422 and "needs the corrected label" in missing.text
        bad = rita.post(url, json={"labeler": "bob", "decision": "correct", "label": "zebra"})
        assert bad.status_code == 422 and "not a class" in bad.text
        done = rita.post(url, json={"labeler": "bob", "decision": "correct", "label": truth})
        assert done.status_code == 200 and done.json()["label"] == truth
        later = rita.post(url, json={"labeler": "bob", "decision": "accept"})
        assert later.status_code == 409 and "reviewed (corrected by rita)" in later.text
    with lp.project.store.session() as s:
        a = s.scalars(
            select(LabelAssignment).where(
                LabelAssignment.task_id == task_id, LabelAssignment.labeler == "bob"
            )
        ).one()
        assert (a.label, a.review, a.reviewer) == (truth, "corrected", "rita")
    steps = [(kind, actor, label) for kind, actor, label, _ in events(lp, "p005")]
    assert ("submit", "bob", wrong(truth)) in steps and steps[-1] == ("correct", "rita", truth)
    with lp.client("max") as manager:
        report = manager.get("/v1/labeling/quality", params={"items": "true"}).json()
    consensus = {c["item"]: c for c in report["consensus"]["items"]}
    assert consensus["p005"]["label"] == truth and consensus["p005"]["reviewed"]
    # Agreement still counts bob's own (wrong) label: the item stays a disagreement.
    assert "p005" in {d["item"] for d in report["disagreements"]}
    assert "p005" not in {i["item"] for i in report["label_issues"]["issues"]}


def test_nobody_reviews_their_own_work(label_project: LabelProject) -> None:
    lp = label_project
    # rita (a reviewer may label) labels one task first, then the labelers label the rest.
    with lp.client("rita") as rita:
        task = rita.get("/v1/labeling/next").json()["task"]
        sent = rita.post(f"/v1/labeling/tasks/{task['id']}/labels", json={"label": "a"})
        assert sent.status_code == 201, sent.text
    label_everything(lp)
    with lp.client("rita") as rita:
        url = f"/v1/labeling/tasks/{task['id']}/review"
        own = rita.post(url, json={"labeler": "rita", "decision": "accept"})
        assert own.status_code == 409 and "nobody reviews their own work" in own.text
        with lp.project.store.session() as s:
            others = s.scalars(
                select(LabelAssignment.labeler).where(
                    LabelAssignment.task_id == task["id"], LabelAssignment.labeler != "rita"
                )
            ).all()
        for other in others:
            on_hers = rita.post(url, json={"labeler": other, "decision": "accept"})
            assert on_hers.status_code == 409 and "you labeled task" in on_hers.text
        # Her queue never offers that item.
        for _ in range(3):
            nxt = rita.get("/v1/labeling/review/next").json()["review"]
            assert nxt["task_id"] != task["id"] and nxt["labeler"] != "rita"
            rita.post(
                f"/v1/labeling/tasks/{nxt['task_id']}/review",
                json={"labeler": nxt["labeler"], "decision": "accept"},
            )
    with lp.client("bob") as bob:
        refused = bob.post(url, json={"labeler": "rita", "decision": "accept"})
        assert refused.status_code == 403


@pytest.mark.parametrize("who", ["eve", "ann"])
def test_labelers_see_no_quality_report(label_project: LabelProject, who: str) -> None:
    with label_project.client(who) as c:
        assert c.get("/v1/labeling/quality").status_code == 403


def test_features_are_the_tables_numeric_columns_less_id_and_target(
    label_project: LabelProject,
) -> None:
    lp = label_project
    label_everything(lp)
    proj = lp.project
    # With the project folder: x, y and the hidden z (never the target `code`); x, y, z in the
    # table's column order.
    full = read_labels(proj.store, proj.spec, proj.root).features
    assert len(full) == 60 and {len(v) for v in full.values()} == {3}
    with proj.store.session() as s:
        payload = s.scalars(select(LabelTask.payload).where(LabelTask.item == "p007")).one()
    assert full["p007"][:2] == (payload["x"], payload["y"])
    # Without it (mlcrew server has no project folder): what the items show, x and y.
    shown = read_labels(proj.store).features
    assert shown["p007"] == (payload["x"], payload["y"])


def test_multi_label_quality_and_correction(tmp_path: Path, db_url: str) -> None:
    with serve_label_project(tmp_path, db_url, task="multi") as lp:
        votes = label_everything(lp)
        with lp.client("max") as manager:
            report = manager.get("/v1/labeling/quality").json()
        assert report["task"] == "multi"
        # Per class yes/no: bob adds the next class to every fifth item.
        expected = quality_report(
            votes, CLASSES, task="multi", gold={g: lp.truth[g] for g in GOLD}
        ).to_dict()
        assert report["agreement"] == json.loads(json.dumps(expected["agreement"]))
        assert {g["labeler"]: g["correct"] for g in report["gold"]} == {"ann": 3, "bob": 2, "cy": 3}
        assert report["consensus"]["method"] == "majority"
        assert report["consensus"]["reason"] == (
            "cleanlab's multi-annotator consensus is for single-label tasks"
        )
        assert report["label_issues"]["reason"] == "label-error search is for single-label tasks"
        # A correction is a list of classes.
        truth = lp.truth["p005"]
        with lp.client("rita") as rita:
            done = rita.post(
                f"/v1/labeling/tasks/{task_id_of(lp, 'p005')}/review",
                json={"labeler": "bob", "decision": "correct", "label": [truth]},
            )
            assert done.status_code == 200, done.text
            assert done.json()["label"] == [truth]
        with lp.client("max") as manager:
            after = manager.get("/v1/labeling/quality", params={"items": "true"}).json()
        consensus = {c["item"]: c for c in after["consensus"]["items"]}
        assert consensus["p005"]["label"] == [truth] and consensus["p005"]["reviewed"]
