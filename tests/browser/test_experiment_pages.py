"""The experiment pages in a real Chromium: the runs table sorts and filters, two runs picked
with the mouse are compared, and metric curves are drawn by the locally served Plotly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlcrew
from mlcrew.api.app import create_app
from mlcrew.project import Project, init_project
from mlcrew.serving.server import BackgroundServer


def test_runs_table_compare_and_curves(browser: Any, tmp_path: Path) -> None:
    root = init_project(tmp_path / "bikes")
    proj = Project.open(root, db_url=f"sqlite:///{tmp_path / 'meta.db'}")
    ids = {}
    for lr, best in ((0.1, 0.80), (0.03, 0.88), (0.01, 0.84)):
        with mlcrew.start_run(proj, name=f"lr {lr}") as run:
            run.log_params({"lr": lr, "leaves": 31})
            for step in range(50):
                run.log_metric("val_auc", best - 0.3 / (step + 1))
            ids[lr] = run.id
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    fetched: list[str] = []
    try:
        with BackgroundServer(app) as srv:
            page = browser.new_page()
            page.on("request", lambda r: fetched.append(r.url))
            page.goto(srv.url + "/experiments")
            assert page.title() == "Experiments · bike-demand · mlcrew"
            rows = page.locator("#runs tbody tr")
            assert rows.count() == 3
            # Sort by the metric, best first: one click on its column.
            page.locator("#runs th.metric a").click()
            page.wait_for_url("**sort=-metrics.val_auc")
            order = [rows.nth(i).get_attribute("data-run") for i in range(3)]
            assert order == [ids[0.03], ids[0.01], ids[0.1]]
            page.get_by_label("Filter").fill("params.lr<0.05")
            page.get_by_role("button", name="Apply").click()
            page.wait_for_url("**filter=params.lr*")
            assert rows.count() == 2
            page.get_by_label("compare lr 0.03").check()
            page.get_by_label("compare lr 0.01").check()
            page.get_by_role("button", name="Compare selected runs").click()
            page.wait_for_url("**/experiments/compare?**")
            assert page.locator("#params tbody tr").count() == 1  # lr differs, leaves does not
            assert "lr" in page.locator("#params tbody tr").inner_text()
            chart = page.locator('.chart[data-metric="val_auc"]')
            chart.and_(page.locator('[data-drawn="true"]')).wait_for()
            assert chart.locator("g.trace").count() == 2  # one curve per run
            page.goto(f"{srv.url}/experiments/runs/{ids[0.1]}")
            assert page.get_by_test_id("status").inner_text() == "finished"
            page.locator('.chart[data-drawn="true"]').wait_for()
            page.screenshot(path=str(tmp_path / "experiments.png"), full_page=True)
            page.close()
    finally:
        proj.close()
    # Everything the pages loaded came from the service itself (no CDN).
    assert fetched and all(url.startswith(srv.url) for url in fetched)
