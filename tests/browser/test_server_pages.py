"""A project's pages under `mlcrew server`'s prefix, in a real Chromium: styled, and the
"send this request" button reaches that project's model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlcrew.api.host import HostApp, open_host_store
from mlcrew.serving.server import BackgroundServer
from tests.serving.test_server import run_project


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    tmp = tmp_path_factory.mktemp("host")
    url, artifacts = f"sqlite:///{tmp / 'meta.db'}", tmp / "artifacts"
    for name in ("alpha", "beta"):
        run_project(tmp / name, name, url, artifacts)
    with BackgroundServer(HostApp(open_host_store(url, str(artifacts)))) as srv:
        yield srv


def test_overview_under_the_prefix_is_styled_and_predicts(
    browser: Any, host: BackgroundServer, tmp_path: Path
) -> None:
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(host.url + "/")
    page.get_by_role("link", name="beta").click()
    page.wait_for_url(host.url + "/p/beta/")
    assert page.title() == "beta · mlcrew"
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(244, 246, 248)"  # the stylesheet came from /p/beta/static/
    assert f"{host.url}/p/beta/v1/models/beta/predict" in page.locator("#try").inner_text()
    page.get_by_role("button", name="Send this request").click()
    page.wait_for_function("document.getElementById('answer').textContent.length > 0")
    text = page.locator("#answer").inner_text()
    assert text.startswith("200 ") and '"name":"beta"' in text
    page.get_by_role("link", name="API docs").click()
    page.wait_for_url(host.url + "/p/beta/docs")
    assert "POST" in page.locator("#post--v1-models-name-predict h2").inner_text()
    page.screenshot(path=str(tmp_path / "docs.png"))
    from_beta = requests[requests.index(host.url + "/p/beta/") :]
    assert all(u.startswith(host.url + "/p/beta/") for u in from_beta), from_beta
    page.close()
