"""The prediction service over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mlcrew.api.app import create_app
from mlcrew.project import Project
from mlcrew.serving.server import BackgroundServer

GOOD_ROW: dict[str, Any] = {
    "hr": 17,
    "holiday": 0,
    "weekday": 5,
    "workingday": 1,
    "weathersit": "clear",
    "temp": 0.8,
    "atemp": 0.72,
    "hum": 0.45,
    "windspeed": 0.2,
}


@pytest.fixture(scope="module")
def server(trained_project: Project) -> Iterator[BackgroundServer]:
    app = create_app(trained_project.root, trained_project.spec, trained_project.store)
    with BackgroundServer(app) as srv:
        yield srv


def predict(server: BackgroundServer, rows: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/models/bike-demand/predict", json={"rows": rows})


def test_predict_good_rows(server: BackgroundServer) -> None:
    night = {**GOOD_ROW, "hr": 3}
    response = predict(server, [GOOD_ROW, night])
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == {"name": "bike-demand", "version": 1}
    rush, sleep = body["predictions"]
    assert rush > 5 * sleep > 0  # 5 pm on a warm workday is busier than 3 am
    assert body["warnings"] == []


def test_predict_accepts_missing_values_as_null(server: BackgroundServer) -> None:
    response = predict(server, [{**GOOD_ROW, "hum": None, "weathersit": "never seen", "hr": 99}])
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body["predictions"][0], float)
    # It answers, and says which values are unlike anything it was trained on.
    assert body["warnings"] == [
        {"row": 0, "field": "hr", "warning": "99 is outside the training range [0, 23]"},
        {
            "row": 0,
            "field": "weathersit",
            "warning": "category 'never seen' not seen in training (treated as unknown)",
        },
        {
            "row": 0,
            "field": "hum",
            "warning": "missing value; training had none (treated as unknown)",
        },
    ]


def test_bad_row_gets_422_naming_row_and_field(server: BackgroundServer) -> None:
    response = predict(server, [GOOD_ROW, {**GOOD_ROW, "temp": "hot"}])
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail == [{"row": 1, "field": "temp", "error": "expected a number, got 'hot'"}]


def test_missing_field_gets_422(server: BackgroundServer) -> None:
    row = {k: v for k, v in GOOD_ROW.items() if k != "hr"}
    response = predict(server, [row])
    assert response.status_code == 422
    assert response.json()["detail"][0] == {"row": 0, "field": "hr", "error": "missing field"}


def test_malformed_body_gets_422(server: BackgroundServer) -> None:
    response = httpx.post(f"{server.url}/v1/models/bike-demand/predict", json={"row": []})
    assert response.status_code == 422
    assert response.json()["detail"] == [{"row": None, "field": "rows", "error": "Field required"}]
    response = httpx.post(f"{server.url}/v1/models/bike-demand/predict", json={"rows": [1, 2]})
    assert response.json()["detail"][0]["row"] == 0


def test_unknown_model_is_404(server: BackgroundServer) -> None:
    response = httpx.post(f"{server.url}/v1/models/nope/predict", json={"rows": [GOOD_ROW]})
    assert response.status_code == 404
    assert response.json()["detail"] == "no model named 'nope'; known models: bike-demand"


def test_health_openapi_and_model_description(server: BackgroundServer) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok", "project": "bike-demand"}
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert "/v1/models/{name}/predict" in spec["paths"]
    info = httpx.get(f"{server.url}/v1/models/bike-demand").json()
    assert info["target"] == "bikers"
    assert {f["name"] for f in info["input_schema"]} == set(GOOD_ROW)
    assert "casual" not in {f["name"] for f in info["input_schema"]}  # no leak


def test_overview_page_renders(server: BackgroundServer) -> None:
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200
    assert "Champion" in page.text and "bike-demand" in page.text


def test_monitor_reports_over_rest(server: BackgroundServer, trained_project: Project) -> None:
    from mlcrew.monitoring.monitor import monitor

    data = trained_project.root / "data" / "bikeshare-jul-dec.csv"
    made = monitor(trained_project.store, trained_project.spec, data)
    listing = httpx.get(f"{server.url}/v1/monitor/reports").json()["reports"]
    assert listing[0]["id"] == made["report_id"] and "temp" in listing[0]["drifted"]
    full = httpx.get(f"{server.url}/v1/monitor/reports/{made['report_id']}").json()
    assert full["features"] == made["features"]
    assert httpx.get(f"{server.url}/v1/monitor/reports/999999").status_code == 404
    page = httpx.get(f"{server.url}/").text
    assert f"report {made['report_id']}" in page and "alert" in page


def test_numbers_that_are_not_finite_get_422(server: BackgroundServer) -> None:
    raw = (
        '{"rows": [{"hr": 17, "holiday": 0, "weekday": 5, "workingday": 1, "weathersit": '
        '"clear", "temp": NaN, "atemp": 0.7, "hum": 0.4, "windspeed": 0.2}]}'
    )
    response = httpx.post(
        f"{server.url}/v1/models/bike-demand/predict",
        content=raw,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "temp"
    huge = predict(server, [{**GOOD_ROW, "hr": 10**400}])
    assert huge.status_code == 422 and huge.json()["detail"][0]["field"] == "hr"


def test_invalid_json_has_no_row_number(server: BackgroundServer) -> None:
    response = httpx.post(
        f"{server.url}/v1/models/bike-demand/predict",
        content=b'{"rows": [ oops',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["row"] is None
