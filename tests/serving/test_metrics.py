"""/metrics, read with prometheus_client's own parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from mlcrew.api.app import create_app
from mlcrew.project import Project
from mlcrew.serving.server import BackgroundServer
from tests.serving.conftest import GOOD_ROW

PREDICT = "/v1/models/{name}/predict"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_rows_versions_and_log(trained_project: Project) -> None:
    proj = trained_project
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url) as client:
        for _ in range(7):
            assert client.post(
                "/v1/models/bike-demand/predict", json={"rows": [GOOD_ROW] * 3}
            ).is_success
        assert client.post("/v1/models/bike-demand/predict", json={"rows": [{}]}).status_code == 422
        assert client.post("/v1/models/nope/predict", json={"rows": [GOOD_ROW]}).status_code == 404
        assert client.get("/v1/runs/nope").status_code == 404
        assert client.get("/healthz").status_code == 200
        assert client.get("/no/such/page").status_code == 404
        response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    total = "mlcrew_http_requests_total"
    assert value(found, total, route=PREDICT, method="POST", status="200") == 7
    assert value(found, total, route=PREDICT, method="POST", status="422") == 1
    assert value(found, total, route=PREDICT, method="POST", status="404") == 1
    assert value(found, total, route="/v1/runs/{run_id}", method="GET", status="404") == 1
    assert value(found, total, route="/healthz", method="GET", status="200") == 1
    assert value(found, total, route="unmatched", method="GET", status="404") == 1
    count = "mlcrew_http_request_duration_seconds_count"
    assert value(found, count, route=PREDICT) == 9
    assert (
        value(found, "mlcrew_http_request_duration_seconds_bucket", route=PREDICT, le="+Inf") == 9
    )
    assert value(found, "mlcrew_predicted_rows_total", model="bike-demand", version="1") == 21
    assert value(found, "mlcrew_model_version", model="bike-demand", alias="champion") == 1
    assert ("mlcrew_prediction_log_lag_seconds", ()) in found
    assert ("mlcrew_prediction_log_pending_rows", ()) in found


def test_label_values_stay_bounded(trained_project: Project) -> None:
    proj = trained_project
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url) as client:
        unusual = ["PROPFIND", "MKCOL", "PURGE", "SEARCH", "LOCK"]  # HTTP knows many methods
        for i in range(30):
            client.request(unusual[i % 5], f"/no/such/path/{i}")
            client.get(f"/v1/runs/run-{i}")
        found = samples(client.get("/metrics").text)
    routes = {dict(k[1]).get("route") for k in found if k[0] == "mlcrew_http_requests_total"}
    methods = {dict(k[1]).get("method") for k in found if k[0] == "mlcrew_http_requests_total"}
    assert routes <= {"unmatched", "/v1/runs/{run_id}", "/metrics"}
    assert "other" in methods and not methods & set(unusual)
