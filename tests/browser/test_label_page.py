"""The labeling page in a real Chromium, keys really pressed: a pick and Enter store the label
and bring the next item, S skips, U brings the last one back with its label chosen, F flags, a
pre-label is confirmed with Enter; an image shows crisp, an empty queue says so; an external
labeler sees this page and nothing else; the page works under `mlcrew server`'s prefix."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mlcrew.api.app import create_app
from mlcrew.labeling.importer import import_tasks
from mlcrew.labeling.suggest import write_suggestions
from mlcrew.labeling.tables import LabelAssignment, LabelEvent, LabelTask
from mlcrew.people.users import add_user
from mlcrew.project import Project
from mlcrew.serving.server import BackgroundServer
from mlcrew.store import Store

PASSWORD = "a long labeling passphrase"
DOCS_IMAGES = Path(__file__).parents[2] / "docs" / "images"
DIGITS = 40
TRUTH: dict[str, str] = {}  # item -> the digit it shows

DIGITS_SPEC = """\
name: digits
description: Handwritten digits, 8x8 pixels.
sources:
  digits: {path: digits.csv}
dataset: {from: digits}
target: digit
labeling:
  from: digits
  id: id
  show: image
  column: image
  classes:
%s
  prelabel: labels
  labelers: [labeler, admin]
  guidelines: |
    Pick the digit the image shows.

    - A **7** may have a bar through its stem.
    - Unreadable? Skip it (S), or flag it (F) when the image is broken.
"""


@dataclass
class Site:
    project: Project
    server: BackgroundServer

    @property
    def url(self) -> str:
        return self.server.url


def digits_project(root: Path) -> Project:
    """A project of 8x8 digit images (sklearn's digits as PNGs), its tasks imported and a
    pre-label (the true digit, or a wrong one for every fifth) on each."""
    from PIL import Image
    from sklearn.datasets import load_digits

    (root / "images").mkdir(parents=True)
    data = load_digits()
    with (root / "digits.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "image", "digit"])
        for i in range(DIGITS):
            pixels = (255 - data.images[i] * 16).clip(0, 255).astype("uint8")
            Image.fromarray(pixels, "L").save(root / "images" / f"{i}.png")
            out.writerow([f"digit-{i}", f"images/{i}.png", int(data.target[i])])
            TRUTH[f"digit-{i}"] = str(int(data.target[i]))
    classes = "\n".join(f'    - {{name: "{d}", key: "{d}"}}' for d in range(10))
    (root / "mlcrew.yaml").write_text(DIGITS_SPEC % classes)
    proj = Project.open(root, db_url=f"sqlite:///{root.parent / 'meta.db'}")
    import_tasks(proj.store, proj.spec, proj.root, actor="test")
    prelabels: dict[str, tuple[Any, float]] = {}
    for n, (item, digit) in enumerate(TRUTH.items()):
        wrong = n % 5 == 4
        prelabels[item] = (str((int(digit) + 1) % 10) if wrong else digit, 0.62 if wrong else 0.97)
    write_suggestions(proj.store, prelabels)
    return proj


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    proj = digits_project(tmp_path_factory.mktemp("label") / "digits")
    name = proj.spec.name
    for user in ("lena", "leo", "lou"):
        add_user(proj.store, name, user, "labeler", actor="test", password=PASSWORD)
    add_user(proj.store, name, "olga", "labeler", actor="test", password=PASSWORD, external=True)
    add_user(proj.store, name, "ann", "admin", actor="test", password=PASSWORD)
    add_user(proj.store, name, "rita", "reviewer", actor="test", password=PASSWORD)
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    with BackgroundServer(app) as srv:
        yield Site(proj, srv)
    proj.close()


def sign_in(browser: Any, site: Site, user: str, start: str = "/label") -> Any:
    """A new browser context signed in as `user` through the sign-in form, on the page the
    form sent them to."""
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    page = context.new_page()
    page.goto(site.url + start)
    page.get_by_label("User").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(site.url + "/label")
    return page


def shown_item(page: Any) -> str:
    page.wait_for_selector("#task:not([hidden])")
    return str(page.get_by_test_id("item-id").inner_text())


def next_item(page: Any, after: str) -> str:
    page.wait_for_function(
        "(before) => !document.getElementById('task').hidden && "
        "document.getElementById('item-id').textContent !== before",
        arg=after,
    )
    return shown_item(page)


def wait_labeled(page: Any, count: int) -> None:
    page.wait_for_function(
        "(n) => document.getElementById('progress').dataset.labeled === String(n)", arg=count
    )


def assignment(store: Store, labeler: str, item: str) -> LabelAssignment | None:
    with store.session() as s:
        return s.scalars(
            select(LabelAssignment)
            .join(LabelTask, LabelTask.id == LabelAssignment.task_id)
            .where(LabelAssignment.labeler == labeler, LabelTask.item == item)
        ).first()


def idle(page: Any) -> None:
    """Wait until no request of the page is in flight (it ignores keys meanwhile)."""
    page.wait_for_function("!document.body.classList.contains('busy')")


def pressed(page: Any, name: str) -> bool:
    return page.locator(f'#classes button[data-class="{name}"]').get_attribute("aria-pressed") == (
        "true"
    )


def not_suggested(item: str) -> str:
    """A digit other than the item's pre-label and its true digit."""
    return str((int(TRUTH[item]) + 3) % 10)


# ------------------------------------------------------------------------------ the keys


def test_pick_enter_submits_s_skips_u_undoes(browser: Any, digits: Site) -> None:
    store = digits.project.store
    page = sign_in(browser, digits, "lena")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    first = shown_item(page)
    wait_labeled(page, 0)
    # The image: 8x8 pixels, scaled up by a whole factor, drawn with hard pixel edges.
    image = page.locator("#item img")
    page.wait_for_function("document.querySelector('#item img').naturalWidth > 0")
    assert image.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [8, 8]
    assert image.evaluate("i => i.getBoundingClientRect().width") >= 8 * 20
    assert image.evaluate("i => getComputedStyle(i).imageRendering") == "pixelated"
    # A key picks its class (overriding the pre-label), Enter stores it, the next item shows.
    choice = not_suggested(first)
    page.keyboard.press(choice)
    assert pressed(page, choice)
    page.wait_for_function("document.querySelectorAll('#item img').length === 1")
    # Everything the page fetched so far (the prefetch may be older than our listener).
    before = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    page.keyboard.press("Enter")
    second = next_item(page, first)
    wait_labeled(page, 1)
    # The next item was fetched ahead, its image too, before Enter was pressed.
    assert image.get_attribute("src") in [u.removeprefix(digits.url) for u in before]
    done = assignment(store, "lena", first)
    assert done is not None and done.state == "submitted" and done.label == choice
    assert done.confirmed is False and done.seconds is not None
    # S skips: the item goes, the store says skipped.
    page.keyboard.press("s")
    third = next_item(page, second)
    skipped = assignment(store, "lena", second)
    assert skipped is not None and skipped.state == "skipped"
    assert third not in (first, second)
    # U: the last label comes back, its class chosen, and is held again.
    page.keyboard.press("u")
    assert next_item(page, third) == first
    assert pressed(page, choice)
    assert "taken back" in page.get_by_test_id("message").inner_text()
    wait_labeled(page, 0)
    back = assignment(store, "lena", first)
    assert back is not None and back.state == "assigned"
    # Enter keeps it; the item that was showing before the undo comes next.
    page.keyboard.press("Enter")
    assert next_item(page, first) == third
    wait_labeled(page, 1)
    again = assignment(store, "lena", first)
    assert again is not None and again.state == "submitted" and again.label == choice
    assert errors == []
    page.context.close()


def test_a_pre_label_is_confirmed_with_enter(browser: Any, digits: Site, tmp_path: Path) -> None:
    store = digits.project.store
    page = sign_in(browser, digits, "leo")
    item = shown_item(page)
    suggestion = page.get_by_test_id("suggestion")
    suggested = suggestion.get_attribute("data-label") or ""
    assert suggested and pressed(page, suggested)  # shown pre-selected
    assert "score 0.97" in suggestion.inner_text() or "score 0.62" in suggestion.inner_text()
    page.set_viewport_size({"width": 1200, "height": 760})
    page.wait_for_function("document.querySelector('#item img').naturalWidth > 0")
    # The README's picture is refreshed on request only (MLCREW_SCREENSHOTS=1): a test run
    # must not change files of the checkout.
    shots = DOCS_IMAGES if os.environ.get("MLCREW_SCREENSHOTS") else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "labeling.png"))
    page.keyboard.down("Enter")
    following = next_item(page, item)
    done = assignment(store, "leo", item)
    assert done is not None and done.label == suggested and done.confirmed is True
    # Enter held down repeats: the repeat does not confirm the next item's suggestion.
    page.keyboard.down("Enter")
    assert not page.evaluate("document.body.classList.contains('busy')")
    page.keyboard.up("Enter")
    assert shown_item(page) == following
    held = assignment(store, "leo", following)
    assert held is not None and held.state == "assigned"
    # Another class overrides the suggestion: stored as the labeler's own, not confirmed.
    other = not_suggested(following)
    page.keyboard.press(other)
    assert pressed(page, other)
    assert not pressed(page, page.get_by_test_id("suggestion").get_attribute("data-label") or "")
    page.keyboard.press("Enter")
    next_item(page, following)
    overridden = assignment(store, "leo", following)
    assert overridden is not None and overridden.label == other
    assert overridden.confirmed is False
    page.context.close()


def test_flag_asks_a_note_and_errors_show(browser: Any, digits: Site) -> None:
    store = digits.project.store
    page = sign_in(browser, digits, "lou")
    item = shown_item(page)
    # F asks what is wrong; Enter in the note sends the flag.
    page.keyboard.press("f")
    note = page.get_by_label("What is wrong with it?")
    note.fill("the stroke is cut off")
    note.press("Enter")
    flagged_item, item = item, next_item(page, item)
    flagged = assignment(store, "lou", flagged_item)
    assert flagged is not None and flagged.state == "flagged"
    assert flagged.note == "the stroke is cut off"
    assert "Flagged" in page.get_by_test_id("message").inner_text()
    # Enter with nothing chosen (no pre-label kept) asks for a class, stores nothing.
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    assert "Pick a class first" in page.get_by_test_id("message").inner_text()
    assert assignment(store, "lou", item).state == "assigned"  # type: ignore[union-attr]

    # The answer is lost on the way back (the server stored the label): the message says so,
    # the item stays; Enter again is answered as the same label, stored once.
    def lose_answer(route: Any) -> None:
        route.fetch()
        route.abort("failed")

    page.route("**/v1/labeling/tasks/*/labels", lose_answer)
    idle(page)  # keys wait while a request is in flight: press when the page listens
    page.keyboard.press("7")
    page.wait_for_function(
        "document.querySelector('#classes button[data-class=\"7\"]')"
        ".getAttribute('aria-pressed') === 'true'"
    )
    page.keyboard.press("Enter")
    message = page.get_by_test_id("message")
    message.get_by_text("Could not reach the server").wait_for()
    assert "press Enter to send it again" in message.inner_text()
    assert shown_item(page) == item
    page.unroute("**/v1/labeling/tasks/*/labels")
    page.keyboard.press("Enter")
    after = next_item(page, item)
    stored = assignment(store, "lou", item)
    assert stored is not None and stored.label == "7" and stored.state == "submitted"
    assert _submits(store, stored.task_id) == (1, 1)
    # 409: the same task was labeled otherwise meanwhile (another tab): shown, then moved on.
    task_id = page.evaluate(
        "fetch(location.pathname.replace(/label$/, 'v1/labeling/next')).then(r => r.json())"
        ".then(d => d.task.id)"
    )
    csrf = page.evaluate("JSON.parse(document.getElementById('label-config').textContent).csrf")
    answer = page.request.post(
        f"{digits.url}/v1/labeling/tasks/{task_id}/labels",
        data={"label": "1"},
        headers={"x-csrf-token": csrf},
    )
    assert answer.status == 201
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    next_item(page, after)
    text = page.get_by_test_id("message").inner_text()
    assert "labeled task" in text and "already" in text and "undo it (U)" in text
    kept = assignment(store, "lou", after)
    assert kept is not None and kept.label == "1"  # the first label stands, stored once
    page.context.close()


def _submits(store: Store, task_id: int) -> tuple[int, int]:
    """The task's submit events and its label count."""
    with store.session() as s:
        events = s.scalars(
            select(LabelEvent).where(LabelEvent.task_id == task_id, LabelEvent.kind == "submit")
        ).all()
        return len(events), s.scalars(select(LabelTask.labels).where(LabelTask.id == task_id)).one()


def _mine(store: Store, labeler: str) -> list[LabelAssignment]:
    with store.session() as s:
        return list(s.scalars(select(LabelAssignment).where(LabelAssignment.labeler == labeler)))


def test_external_labeler_sees_only_the_labeling_page(browser: Any, digits: Site) -> None:
    # Signing in without ?next= lands a labeler who may not see the overview on /label.
    page = sign_in(browser, digits, "olga", start="/login")
    item = shown_item(page)
    assert page.get_by_test_id("user").inner_text() == "olga"
    hrefs = page.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert "/" not in hrefs and all(not h.startswith("/v1") for h in hrefs), hrefs
    assert page.get_by_role("link", name="project overview").count() == 0
    page.keyboard.press("4")
    page.keyboard.press("Enter")
    next_item(page, item)
    done = assignment(digits.project.store, "olga", item)
    assert done is not None and done.label == "4"
    # The guidelines fold away, and stay folded on the next visit.
    guidelines = page.get_by_test_id("guidelines")
    assert guidelines.is_visible()
    page.locator("#guidelines summary").click()
    assert not guidelines.is_visible()
    page.reload()
    shown_item(page)
    assert not guidelines.is_visible()
    answer = page.goto(digits.url + "/")
    assert answer is not None and answer.status == 403
    page.context.close()
    # Someone who may read the project gets the link back to the overview.
    admin = sign_in(browser, digits, "ann")
    assert admin.get_by_role("link", name="project overview").get_attribute("href") == "/"
    admin.context.close()
    # A reviewer may label, but this label spec names its labelers: the page says so.
    reviewer = sign_in(browser, digits, "rita")
    problem = reviewer.get_by_test_id("problem").inner_text()
    assert "labeling.labelers: labeler, admin" in problem and "rita is not among them" in problem
    assert reviewer.locator("#classes").count() == 0
    reviewer.context.close()


# ------------------------------------------------------------------------------ text, empty queue

REVIEWS_SPEC = """\
name: reviews
sources:
  reviews: {path: reviews.csv}
dataset: {from: reviews}
target: stars
labeling:
  from: reviews
  id: id
  show: text
  column: text
  columns: [stars]
  task: multi
  classes:
    - {name: praise, description: says something good}
    - {name: complaint, description: says something bad}
    - {name: spam, key: x, description: an advert or gibberish}
"""


def test_text_multi_label_then_an_empty_queue(browser: Any, tmp_path: Path) -> None:
    root = tmp_path / "reviews"
    root.mkdir()
    rows = [("r1", "Great bikes, but the app crashed twice.", 4), ("r2", "BUY CHEAP PILLS", 1)]
    _write_reviews(root, rows)
    (root / "mlcrew.yaml").write_text(REVIEWS_SPEC)
    proj = Project.open(root, db_url=f"sqlite:///{tmp_path / 'meta.db'}")
    try:
        # Before `mlcrew label import` the page says what to do.
        with BackgroundServer(create_app(proj.root, proj.spec, proj.store)) as srv:
            page = browser.new_page()
            answer = page.goto(srv.url + "/label")
            assert answer is not None and answer.status == 404
            assert "mlcrew label import" in page.get_by_test_id("problem").inner_text()
            page.close()
        import_tasks(proj.store, proj.spec, proj.root, actor="test")
        with BackgroundServer(create_app(proj.root, proj.spec, proj.store)) as srv:
            page = browser.new_page()  # the local owner: no people, loopback
            page.goto(srv.url + "/label")
            item = shown_item(page)
            assert "1" in page.locator('#classes button[data-class="praise"] kbd').inner_text()
            assert page.locator('#classes button[data-class="spam"] kbd').inner_text() == "x"
            text = page.get_by_test_id("item").inner_text()
            if item == "r1":
                assert "app crashed twice" in text and "stars" in text
                keys = ["1", "2"]
            else:
                assert "BUY CHEAP PILLS" in text
                keys = ["x", "1", "1"]  # a second press toggles praise off again
            for key in keys:
                page.keyboard.press(key)
            page.keyboard.press("Enter")
            other = next_item(page, item)
            page.keyboard.press("x")
            page.keyboard.press("Enter")
            idle = page.get_by_test_id("idle")
            idle.wait_for(state="visible")
            assert idle.inner_text() == "Nothing left to label; thank you."
            stored = {
                item: ["complaint", "praise"] if item == "r1" else ["spam"],
                other: ["spam"],
            }
            assert _labels_by_item(proj.store) == stored
            # New items arrive; "Check again" (Enter) shows one.
            _write_reviews(root, [*rows, ("r3", "Docks were empty all week.", 2)])
            import_tasks(proj.store, proj.spec, proj.root, actor="test")
            page.keyboard.press("Enter")
            assert next_item(page, other) == "r3"
            page.close()
    finally:
        proj.close()


def _write_reviews(root: Path, rows: list[tuple[str, str, int]]) -> None:
    with (root / "reviews.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "text", "stars"])
        out.writerows(rows)


def _labels_by_item(store: Store) -> dict[str, Any]:
    with store.session() as s:
        rows = s.execute(
            select(LabelTask.item, LabelAssignment.label)
            .join(LabelAssignment, LabelAssignment.task_id == LabelTask.id)
            .where(LabelAssignment.state == "submitted")
        ).all()
    return {item: label for item, label in rows}


# ------------------------------------------------------------------------------ mlcrew server


def test_the_page_under_mlcrew_server(browser: Any, tmp_path: Path) -> None:
    from mlcrew.api.host import HostApp, open_host_store
    from tests.serving.test_server import run_project

    url, artifacts = f"sqlite:///{tmp_path / 'meta.db'}", tmp_path / "artifacts"
    root = tmp_path / "gamma"
    run_project(root, "gamma", url, artifacts)
    spec = root / "mlcrew.yaml"
    spec.write_text(
        spec.read_text()
        + "labeling:\n  from: hourly\n  id: row\n  columns: [hr, weathersit, temp]\n"
        "  classes: [{name: busy, key: b}, {name: quiet, key: q}]\n"
        "  guidelines: Busy means a rush hour.\n"
    )
    spec.write_text(
        spec.read_text().replace(
            "    select season,", "    select row_number() over () as row, season,", 1
        )
    )
    proj = Project.open(root)
    try:
        import_tasks(proj.store, proj.spec, proj.root, actor="test")
        add_user(proj.store, "gamma", "ann", "admin", actor="test", password=PASSWORD)
        add_user(
            proj.store, "gamma", "lena", "labeler", actor="test", password=PASSWORD, external=True
        )
    finally:
        proj.close()
    with BackgroundServer(HostApp(open_host_store(url, str(artifacts)))) as host:
        page = browser.new_page()
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        # Sent to the project's sign-in first, then back to its labeling page.
        page.goto(host.url + "/p/gamma/label")
        assert page.url == host.url + "/p/gamma/login?next=/p/gamma/label"
        page.get_by_label("User").fill("lena")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(host.url + "/p/gamma/label")
        item = shown_item(page)
        assert page.title() == "Label · gamma · mlcrew"
        assert "weathersit" in page.get_by_test_id("item").inner_text()
        assert "rush hour" in page.get_by_test_id("guidelines").inner_text()
        page.keyboard.press("b")
        page.keyboard.press("Enter")
        next_item(page, item)
        assert all(u.startswith(host.url + "/p/gamma/") for u in requests), requests
        page.get_by_role("button", name="sign out").click()
        page.wait_for_url(host.url + "/p/gamma/login")
        page.close()
    store = open_host_store(url, str(artifacts)).for_project("gamma")
    try:
        assert _labels_by_item(store) == {item: "busy"}
    finally:
        store.close()
