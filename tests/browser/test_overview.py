"""The overview page in a real Chromium: what a person opening `/` sees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlcrew.api.app import create_app
from mlcrew.project import Project
from mlcrew.registry.versions import get_version
from mlcrew.serving.server import BackgroundServer


@pytest.fixture(scope="module")
def server(trained_project: Project) -> Iterator[BackgroundServer]:
    app = create_app(trained_project.root, trained_project.spec, trained_project.store)
    with BackgroundServer(app) as srv:
        yield srv


def test_overview_shows_champion_metric_and_stages(
    browser: Any, server: BackgroundServer, trained_project: Project, tmp_path: Path
) -> None:
    champion = get_version(trained_project.store, "bike-demand")
    page = browser.new_page()
    page.goto(server.url + "/")
    assert page.title() == "bike-demand · mlcrew"
    assert page.get_by_test_id("champion-version").inner_text() == str(champion.version)
    mae_cell = page.locator('#champion td[data-metric="mae"]')
    assert mae_cell.inner_text() == f"{champion.metrics['mae']:.4g}"
    assert page.locator("#champion ul.reasons li.ok").count() == len(champion.verdict["reasons"])
    stage_rows = page.locator("#stages tbody tr")
    assert stage_rows.count() == 6
    assert "fresh" in stage_rows.nth(3).inner_text()  # train
    # The page is styled, not a bare document: the stylesheet loaded and applied.
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(244, 246, 248)"
    page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
    page.close()


def test_try_it_button_sends_a_real_prediction(browser: Any, server: BackgroundServer) -> None:
    page = browser.new_page()
    page.goto(server.url + "/")
    assert f"{server.url}/v1/models/bike-demand/predict" in page.locator("#try").inner_text()
    page.get_by_role("button", name="Send this request").click()
    answer = page.locator("#answer")
    answer.wait_for(state="visible")
    page.wait_for_function("document.getElementById('answer').textContent.length > 0")
    text = answer.inner_text()
    assert text.startswith("200 ") and '"predictions":[' in text and '"version":1' in text
    page.close()


def test_api_reference_renders_offline(browser: Any, server: BackgroundServer) -> None:
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server.url + "/docs")
    predict = page.locator("#post--v1-models-name-predict")
    assert "POST" in predict.locator("h2").inner_text()
    assert "rows" in predict.locator("table").last.inner_text()
    assert all(url.startswith(server.url) for url in requests)  # nothing from a CDN
    page.close()


def test_page_fits_1280_and_try_it_sends_values_of_the_schema_types(
    browser: Any, server: BackgroundServer, trained_project: Project, tmp_path: Path
) -> None:
    import json

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.post_data or "") if r.method == "POST" else None)
    page.goto(server.url + "/")
    page.get_by_role("button", name="Send this request").click()
    page.wait_for_function("document.getElementById('answer').textContent.length > 0")
    assert page.locator("#answer").inner_text().startswith("200 ")
    # No sideways scrolling at a common laptop width, with the answer shown: not the page, and
    # not the example request either (the whole curl command is readable).
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    assert page.evaluate("(e => e.scrollWidth <= e.clientWidth)(document.getElementById('try'))")
    card = page.locator("#try").evaluate("e => e.closest('.card').getBoundingClientRect().right")
    assert page.locator("#answer").evaluate("e => e.getBoundingClientRect().right") <= card
    page.screenshot(path=str(tmp_path / "overview-1280.png"), full_page=True)
    page.close()

    row = json.loads(sent[0])["rows"][0]
    shown = json.loads(
        page_text := server_get(server.url + "/").split("-d '", 1)[1].split("'</pre>", 1)[0]
    )
    assert shown["rows"][0] == row, page_text  # the curl shown is the request sent
    # weekday is a category over an integer column: it is sent as the integer a client has.
    assert row["weekday"] in range(7) and isinstance(row["weekday"], int)
    assert isinstance(row["weathersit"], str)
    assert all(isinstance(row[f], float) for f in ("temp", "atemp", "hum", "windspeed"))
    assert isinstance(row["hr"], int)


def server_get(url: str) -> str:
    import html

    import httpx

    return html.unescape(httpx.get(url).text)
