"""The managers' labeling pages in a real Chromium: a reviewer signs in, reads the labeling
overview (progress, agreement, gold accuracy per labeler, disagreements) and works the review
queue with the mouse: reject with a note, correct, accept."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mlcrew.labeling.tables import LabelAssignment, LabelTask
from tests.labeling.points import PASSWORD, LabelProject, label_everything, serve_label_project


@pytest.fixture()
def lp(tmp_path: Path) -> Iterator[LabelProject]:
    with serve_label_project(tmp_path, f"sqlite:///{tmp_path / 'meta.db'}") as project:
        label_everything(project)
        yield project


def assignment(lp: LabelProject, item: str, labeler: str) -> LabelAssignment:
    with lp.project.store.session() as s:
        return s.scalars(
            select(LabelAssignment)
            .join(LabelTask, LabelTask.id == LabelAssignment.task_id)
            .where(LabelTask.item == item, LabelAssignment.labeler == labeler)
        ).one()


def test_overview_and_review_queue(browser: Any, lp: LabelProject, tmp_path: Path) -> None:
    page = browser.new_context().new_page()
    page.goto(lp.url + "/labeling")
    assert "/login" in page.url  # pages need a signed-in person
    page.get_by_label("User").fill("rita")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lp.url + "/labeling")
    assert page.title() == "Labeling · points · mlcrew"
    assert page.get_by_test_id("labels").inner_text() != "0"
    alpha = page.get_by_test_id("alpha").inner_text()
    assert alpha[0] in "0123456789-" and "on" in alpha  # a figure, not a reason
    gold = {
        name: page.locator(f'#labelers tr[data-labeler="{name}"] [data-testid="gold"]').inner_text()
        for name in ("ann", "bob", "cy")
    }
    assert gold == {"ann": "3/3 (100%)", "bob": "2/3 (67%)", "cy": "3/3 (100%)"}
    assert page.locator("#disagreements tr[data-item]").count() > 0
    assert page.locator("#throughput svg rect").count() == 1  # everything was labeled today
    # An item in the disagreement list opens the review of its labels.
    row = page.locator("#disagreements tr[data-item]").first
    disputed = str(row.get_attribute("data-item"))
    row.get_by_role("link").click()
    page.wait_for_url(f"**/labeling/review?item={disputed}")
    assert page.locator("#review h2 code").inner_text() == disputed
    page.goto(lp.url + "/labeling")
    page.screenshot(path=str(tmp_path / "labeling.png"), full_page=True)

    # The review queue opens on bob's miss of gold item p000.
    page.goto(lp.url + "/labeling/review")
    review = page.locator("#review")
    assert review.get_attribute("data-labeler") == "bob"
    assert page.get_by_test_id("why").inner_text() == "gold miss"
    assert page.get_by_test_id("gold").inner_text() == lp.truth["p000"]
    first_task = review.get_attribute("data-task")
    # Reject without a note: the page says what is missing and nothing changes.
    page.get_by_role("button", name="Reject (back to bob)").click()
    page.wait_for_function("document.getElementById('answer').textContent.length > 0")
    assert "needs a note" in page.locator("#answer").inner_text()
    page.get_by_label("Note to bob").fill("p000 sits in cluster a")
    with page.expect_navigation():  # the page reloads on the next label once the API answered
        page.get_by_role("button", name="Reject (back to bob)").click()
    assert review.get_attribute("data-task") != first_task
    rejected = assignment(lp, "p000", "bob")
    assert (rejected.state, rejected.review, rejected.note) == (
        "assigned", "rejected", "p000 sits in cluster a"
    )  # fmt: skip

    # The next one is a disagreement; correct it to the true class.
    item = page.locator("#review h2 code").inner_text()
    labeler = review.get_attribute("data-labeler")
    truth = lp.truth[item]
    page.get_by_label("Correct to").select_option(truth)
    with page.expect_navigation():
        page.get_by_role("button", name="Correct").click()
    corrected = assignment(lp, item, str(labeler))
    assert (corrected.label, corrected.review, corrected.reviewer) == (truth, "corrected", "rita")

    # Accept the next one.
    nxt_item = page.locator("#review h2 code").inner_text()
    nxt_labeler = str(review.get_attribute("data-labeler"))
    with page.expect_navigation():
        page.get_by_role("button", name="Accept").click()
    assert assignment(lp, nxt_item, nxt_labeler).review == "accepted"
    page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
