"""The domain expert's evaluation page and report in a real Chromium: value in money, gates,
slices and charts drawn by the locally served Plotly; the HTML report draws them offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlcrew.api.app import create_app
from mlcrew.pipeline.runner import Runner
from mlcrew.project import Project, init_project
from mlcrew.serving.server import BackgroundServer


def test_evaluation_page_and_offline_report(browser: Any, tmp_path: Path) -> None:
    root = init_project(tmp_path / "credit", example="credit-default")
    proj = Project.open(root, db_url=f"sqlite:///{tmp_path / 'meta.db'}")
    Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    fetched: list[str] = []
    try:
        with BackgroundServer(app) as srv:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.on("request", lambda r: fetched.append(r.url))
            page.goto(srv.url + "/")  # from the overview, one click
            page.get_by_test_id("evaluation-link").click()
            page.wait_for_url("**/models/credit-default/evaluation")
            assert page.get_by_test_id("verdict").inner_text() == "passed"
            value = page.get_by_test_id("value").inner_text()
            assert "this model" in value and "dummy baseline" in value and "-$" in value
            threshold = float(page.get_by_test_id("threshold").inner_text())
            assert 0 < threshold < 0.5
            slices = page.get_by_test_id("slices").locator("tbody tr")
            assert [slices.nth(i).locator("td").first.inner_text() for i in range(4)] == [
                "all test rows",
                "students",
                "non-students",
                "high balance",
            ]
            drawn = page.locator('.chart[data-drawn="true"]')
            page.wait_for_function("document.querySelectorAll('.chart[data-drawn]').length == 5")
            assert drawn.count() == 5  # confusion, ROC, PR, reliability, value by threshold
            assert page.locator('.chart[data-chart="value"] .shapelayer path').count() >= 1
            page.screenshot(path=str(tmp_path / "evaluation.png"), full_page=True)
            report = page.request.get(srv.url + "/models/credit-default/evaluation/report.html")
            assert report.ok
            html = report.text()
            page.close()
        # The report stands alone: no request leaves the page, and the charts still draw.
        offline = browser.new_page()
        leaked: list[str] = []
        offline.route("**/*", lambda route: (leaked.append(route.request.url), route.abort()))
        offline.set_content(html)
        offline.wait_for_function("document.querySelectorAll('.chart[data-drawn]').length == 5")
        assert leaked == []
        offline.close()
    finally:
        proj.close()
    assert fetched and all(url.startswith(srv.url) for url in fetched)  # no CDN
