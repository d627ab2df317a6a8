"""The MLOps engineer's monitoring page in a real Chromium, after the demo's loop: windows,
drift and performance charts drawn by the locally served Plotly, alerts, retrains and
promotions on one timeline; `mlcrew monitor report --html` draws the same offline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlcrew.api.app import create_app
from mlcrew.demo import run_demo
from mlcrew.serving.server import BackgroundServer


def test_monitoring_page_and_offline_report(browser: Any, tmp_path: Path) -> None:
    result = run_demo(tmp_path / "demo")
    result.close()
    root = result.project
    from mlcrew.project import Project

    proj = Project.open(root)
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    fetched: list[str] = []
    try:
        with BackgroundServer(app) as srv:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.on("request", lambda r: fetched.append(r.url))
            page.goto(srv.url + "/")  # from the overview, one click
            page.get_by_test_id("monitoring-link").click()
            page.wait_for_url("**/models/bike-demand/monitoring")
            windows = page.get_by_test_id("windows").locator("tbody tr")
            assert windows.count() == 6
            newest = windows.first.locator("td")
            assert newest.nth(0).inner_text() == "#6" and newest.nth(4).inner_text() == "741"
            assert "mae" in newest.nth(8).inner_text()
            page.wait_for_function("document.querySelectorAll('.chart[data-drawn]').length == 3")
            timeline = page.get_by_test_id("timeline").inner_text()
            assert "champion: v1 -> v2 (retrain (drift alert)" in timeline
            assert "drift in" in timeline and "retrain_promoted" in timeline
            page.screenshot(path=str(tmp_path / "monitoring.png"), full_page=True)
            page.close()
    finally:
        proj.close()
    assert fetched and all(url.startswith(srv.url) for url in fetched)  # no CDN

    # The loop's other commands on the same project: nothing new to judge, the alerts kept.
    def cli(*args: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "mlcrew.cli.main", *args, "--json", "-p", str(root)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    again = cli("monitor", "run")
    assert again["windows"] == [] and again["pending_rows"] == 0 and again["retrain"] is None
    watched = subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", "monitor", "watch", "--rounds", "2",
         "--every", "0.5", "-p", str(root)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert "round 1: 0 windows" in watched.stdout and "round 2: 0 windows" in watched.stdout
    alerts = cli("monitor", "alerts")["alerts"]
    assert len(alerts) >= 6 and {a["rule"] for a in alerts} >= {"drift"}
    assert all(a["window_id"] for a in alerts if a["rule"] == "drift")
    out = tmp_path / "report.html"
    subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", "monitor", "report", "--html", str(out),
         "-p", str(root)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    offline = browser.new_page()
    leaked: list[str] = []
    offline.route("**/*", lambda route: (leaked.append(route.request.url), route.abort()))
    offline.set_content(out.read_text())
    offline.wait_for_function("document.querySelectorAll('.chart[data-drawn]').length == 3")
    assert leaked == []
    assert offline.get_by_test_id("windows").locator("tbody tr").count() == 6
    offline.close()
