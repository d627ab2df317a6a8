"""The data pages in a real Chromium: the datasets with their lineage graph, a dataset with its
profile's small histograms, checks and lineage, and the query console running SQL and showing
the server's error for a forbidden one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlcrew.api.app import create_app
from mlcrew.pipeline.runner import Runner
from mlcrew.project import Project
from mlcrew.serving.server import BackgroundServer

SPEC = """name: shop
sources:
  orders: {path: orders.csv}
transforms:
  daily: "SELECT day, sum(amount) AS total, count(*) AS n FROM orders GROUP BY day ORDER BY day"
checks:
  - {table: orders, unique: [id]}
  - {table: daily, column: total, between: [0, 1000]}
"""


def test_datasets_a_dataset_and_the_query_console(browser: Any, tmp_path: Path) -> None:
    root = tmp_path / "shop"
    root.mkdir()
    (root / "mlcrew.yaml").write_text(SPEC)
    rows = "".join(f"{i},{i % 5},{(i * 7) % 40 + 0.5}\n" for i in range(200))
    (root / "orders.csv").write_text("id,day,amount\n" + rows)
    proj = Project.open(root, db_url=f"sqlite:///{tmp_path / 'meta.db'}")
    for _ in range(2):  # two runs: a check history of two columns
        Runner(proj.root, proj.store, proj.spec, SPEC).run(force=True)
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    fetched: list[str] = []
    try:
        with BackgroundServer(app) as srv:
            page = browser.new_page()
            page.on("request", lambda r: fetched.append(r.url))
            page.goto(srv.url + "/data")
            table = page.get_by_test_id("datasets")
            assert table.locator("tbody tr").count() == 2
            graph = page.locator('#lineage[data-drawn="true"]')
            graph.wait_for()
            assert graph.locator("g.annotation").count() == 1  # orders -> daily
            page.get_by_role("link", name="daily").click()
            page.wait_for_url("**/data/daily")
            assert page.get_by_test_id("rows").inner_text() == "5"
            assert "orders@1" in page.get_by_test_id("parents").inner_text()
            page.locator('.spark[data-column="total"][data-drawn="true"]').wait_for()
            checks = page.get_by_test_id("checks")
            assert "daily.total" not in checks.inner_text()
            assert "passed" in checks.inner_text()
            assert page.get_by_test_id("check-history").locator("td .badge").count() == 2
            page.get_by_role("link", name="query it").click()
            page.wait_for_url("**/query?table=daily")
            page.get_by_test_id("sql").fill("SELECT day, n FROM daily WHERE day < 2 ORDER BY day")
            page.get_by_test_id("run").click()
            result = page.get_by_test_id("result")
            result.locator("tbody tr").nth(1).wait_for()
            assert result.locator("thead th").all_inner_texts() == ["day", "n"]
            assert result.locator("tbody tr").first.inner_text().split() == ["0", "40"]
            assert page.get_by_test_id("status").inner_text().startswith("2 rows")
            page.get_by_test_id("sql").fill("SELECT * FROM read_csv('/etc/passwd')")
            page.get_by_test_id("sql").press("Control+Enter")
            error = page.get_by_test_id("error")
            error.wait_for()
            assert error.inner_text().startswith("400: forbidden")
            page.screenshot(path=str(tmp_path / "query.png"), full_page=True)
            page.goto(srv.url + "/data/daily@9")
            assert "has no version 9" in page.get_by_test_id("error").inner_text()
            page.close()
    finally:
        proj.close()
    assert all(url.startswith(srv.url) for url in fetched)  # no CDN: all from the service
