"""The prediction service over real HTTP on 127.0.0.1: shapes, validation, limits, statuses."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mlcrew.api.app import create_app
from mlcrew.project import Project
from mlcrew.serving.server import BackgroundServer
from tests.serving.conftest import GOOD_ROW

URL = "/v1/models/bike-demand/predict"


@pytest.fixture(scope="module")
def server(trained_project: Project) -> Iterator[BackgroundServer]:
    app = create_app(trained_project.root, trained_project.spec, trained_project.store)
    with BackgroundServer(app) as srv:
        yield srv


def predict(server: BackgroundServer, rows: Any, query: str = "") -> httpx.Response:
    return httpx.post(f"{server.url}{URL}{query}", json={"rows": rows})


def test_predict_good_rows(server: BackgroundServer) -> None:
    night = {**GOOD_ROW, "hr": 3}
    response = predict(server, [GOOD_ROW, night])
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == {"name": "bike-demand", "version": 1}
    rush, sleep = body["predictions"]
    assert rush > 5 * sleep > 0  # 5 pm on a warm workday is busier than 3 am
    assert body["warnings"] == []
    assert response.headers["x-request-id"]


def test_served_predictions_equal_the_models_own(
    server: BackgroundServer, trained_project: Project
) -> None:
    from mlcrew.serving.loader import ModelCache

    model = ModelCache(trained_project.store).get("bike-demand").model
    rows = [
        {**GOOD_ROW, "hr": h, "weekday": h % 7, "weathersit": w, "temp": h / 30}
        for h in range(24)
        for w in ("clear", "cloudy/misty", "never seen")
    ]
    served = predict(server, rows).json()["predictions"]
    assert served == model.predict_rows(rows)


def test_unfamiliar_values_answer_with_warnings(server: BackgroundServer) -> None:
    response = predict(server, [{**GOOD_ROW, "weathersit": "never seen", "hr": 99}])
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
    ]


def test_null_where_training_had_none_is_422(server: BackgroundServer) -> None:
    response = predict(server, [{**GOOD_ROW, "hum": None}])
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["row"] == 0 and problem["field"] == "hum"
    assert "training had no missing values" in problem["error"]
    assert "serving.allow_nulls" in problem["error"]


def test_allow_nulls_accepts_them_with_a_warning(trained_project: Project) -> None:
    spec = trained_project.spec
    lenient = spec.model_copy(
        update={"serving": spec.serving.model_copy(update={"allow_nulls": True})}
    )
    app = create_app(trained_project.root, lenient, trained_project.store)
    with BackgroundServer(app) as srv:
        response = predict(srv, [{**GOOD_ROW, "hum": None}])
        assert response.status_code == 200
        assert response.json()["warnings"] == [
            {
                "row": 0,
                "field": "hum",
                "warning": "missing value; training had none (treated as unknown)",
            }
        ]
        doc = httpx.get(f"{srv.url}/openapi.json").json()
        assert doc["components"]["schemas"]["PredictRow"]["properties"]["hum"]["type"] == [
            "number",
            "null",
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


def test_unknown_fields_are_named_and_the_target_called_so(server: BackgroundServer) -> None:
    response = predict(server, [{**GOOD_ROW, "bikers": 300, "mnth": 7}])
    assert response.status_code == 422
    target, other = response.json()["detail"]
    assert target["row"] == 0 and target["field"] == "bikers"
    assert "is the target the model predicts" in target["error"]
    assert other["field"] == "mnth" and other["error"].startswith("unknown field")
    assert "hr, holiday" in other["error"]  # it lists what the model takes


def test_malformed_body_gets_422(server: BackgroundServer) -> None:
    response = httpx.post(f"{server.url}{URL}", json={"row": []})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"row": None, "field": "rows", "error": "Field required"},
        {"row": None, "field": "row", "error": "unknown field; the body holds only 'rows'"},
    ]
    response = httpx.post(f"{server.url}{URL}", json={"rows": [1, 2]})
    assert response.json()["detail"][0] == {
        "row": 0,
        "field": None,
        "error": "a row must be a JSON object",
    }
    response = httpx.post(f"{server.url}{URL}", json={"rows": []})
    assert response.json()["detail"] == [{"row": None, "field": "rows", "error": "no rows given"}]
    response = httpx.post(f"{server.url}{URL}", json=[GOOD_ROW])
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "body"


def test_unknown_model_is_404(server: BackgroundServer) -> None:
    response = httpx.post(f"{server.url}/v1/models/nope/predict", json={"rows": [GOOD_ROW]})
    assert response.status_code == 404
    assert response.json()["detail"] == "no model named 'nope'; known models: bike-demand"


def test_predict_by_alias_and_by_version(server: BackgroundServer) -> None:
    assert predict(server, [GOOD_ROW], "?version=1").json()["model"]["version"] == 1
    assert predict(server, [GOOD_ROW], "?alias=champion").json()["model"]["version"] == 1
    assert predict(server, [GOOD_ROW], "?alias=champion&version=1").status_code == 200
    missing = predict(server, [GOOD_ROW], "?version=99")
    assert missing.status_code == 404 and "has no version 99" in missing.json()["detail"]
    missing = predict(server, [GOOD_ROW], "?alias=staging")
    assert missing.status_code == 404 and "has no alias 'staging'" in missing.json()["detail"]
    for bad in ("?version=abc", "?version=0", f"?version={10**30}", "?alias=", "?alias=-x"):
        response = predict(server, [GOOD_ROW], bad)
        assert response.status_code == 422, bad
        assert response.json()["detail"][0]["field"] in ("alias", "version")


def test_wrong_content_type_is_415(server: BackgroundServer) -> None:
    body = b'{"rows": []}'
    for headers in (
        {"content-type": "text/plain"},
        {"content-type": "application/x-www-form-urlencoded"},
        {},
    ):
        response = httpx.post(f"{server.url}{URL}", content=body, headers=headers)
        assert response.status_code == 415, headers
        assert "application/json" in response.json()["detail"]
    ok = httpx.post(
        f"{server.url}{URL}",
        content=b'{"rows": [' + httpx.Response(200, json=GOOD_ROW).content + b"]}",
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 200


def test_other_methods_are_405_with_allow(server: BackgroundServer) -> None:
    response = httpx.get(f"{server.url}{URL}")
    assert response.status_code == 405 and response.headers["allow"] == "POST"


def _raw_request(server: BackgroundServer, head: bytes, body: bytes) -> bytes:
    """Send a request by hand; return what the server answered (it may not read the body)."""
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def test_oversized_body_is_refused_before_it_is_read(server: BackgroundServer) -> None:
    # 48 MB announced, 1 KB sent: the answer comes at once, so the body was never read whole.
    head = (
        f"POST {URL} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {48 * 1024 * 1024}\r\n\r\n"
    ).encode()
    answer = _raw_request(server, head, b'{"rows": [' + b" " * 1024)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"serving.max_body_bytes=4194304" in answer
    # Without a length (chunked), reading stops at the limit.
    head = (
        f"POST {URL} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b" " * (1024 * 1024)
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5))
    answer = _raw_request(server, head, body)
    assert answer.startswith(b"HTTP/1.1 413")


def test_too_many_rows_is_413(server: BackgroundServer) -> None:
    response = predict(server, [GOOD_ROW] * 10_001)
    assert response.status_code == 413
    assert response.json()["detail"].startswith("10001 rows exceed serving.max_rows=10000")


def test_large_values_are_never_echoed_back(server: BackgroundServer) -> None:
    big = "x" * 3_000_000
    cases = [
        [{**GOOD_ROW, "weathersit": big}],  # accepted, with a warning quoting an excerpt
        [{**GOOD_ROW, "temp": big}],  # refused, naming an excerpt
        [{**GOOD_ROW, big: 1}],  # an unknown field with a huge name
        [{**GOOD_ROW, "weekday": [big[:500_000]] * 4}],
    ]
    for rows in cases:
        response = predict(server, rows)
        assert response.status_code in (200, 422)
        assert len(response.content) < 2000, response.content[:300]
    huge = httpx.post(f"{server.url}{URL}", json={"rows": [{"temp": "x" * 50_000_000}]})
    assert huge.status_code == 413 and len(huge.content) < 500
    long_name = httpx.post(
        f"{server.url}/v1/models/{'n' * 5000}/predict", json={"rows": [GOOD_ROW]}
    )
    assert long_name.status_code == 404 and len(long_name.content) < 500


def test_numbers_that_are_not_finite_get_422(server: BackgroundServer) -> None:
    raw = (
        '{"rows": [{"hr": 17, "holiday": 0, "weekday": 5, "workingday": 1, "weathersit": '
        '"clear", "temp": NaN, "atemp": 0.7, "hum": 0.4, "windspeed": 0.2}]}'
    )
    response = httpx.post(
        f"{server.url}{URL}", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "temp"
    huge = predict(server, [{**GOOD_ROW, "hr": 10**400}])
    assert huge.status_code == 422 and huge.json()["detail"][0]["field"] == "hr"
    assert len(huge.content) < 500


def test_invalid_json_has_no_row_number(server: BackgroundServer) -> None:
    response = httpx.post(
        f"{server.url}{URL}",
        content=b'{"rows": [ oops',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["row"] is None and problem["field"] == "body"
    assert problem["error"].startswith("invalid JSON")


def test_health_openapi_and_model_description(server: BackgroundServer) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok", "project": "bike-demand"}
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["version"] == 1
    info = httpx.get(f"{server.url}/v1/models/bike-demand").json()
    assert info["target"] == "bikers"
    assert {f["name"] for f in info["input_schema"]} == set(GOOD_ROW)
    assert "casual" not in {f["name"] for f in info["input_schema"]}  # no leak
    assert httpx.get(f"{server.url}/v1/models/bike-demand?version=1").json()["version"] == 1
    assert httpx.get(f"{server.url}/v1/models/bike-demand?version=7").status_code == 404


def test_every_predict_status_is_documented(server: BackgroundServer) -> None:
    doc = httpx.get(f"{server.url}/openapi.json").json()
    op = doc["paths"]["/v1/models/{name}/predict"]["post"]
    assert {"200", "404", "413", "415", "422"} <= set(op["responses"])
    row = doc["components"]["schemas"]["PredictRow"]
    assert set(row["required"]) == set(GOOD_ROW) and row["additionalProperties"] is False
    for path, methods in doc["paths"].items():
        for method, spec in methods.items():
            bad = spec["responses"].get("422")
            if bad:
                schema = bad["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problems"}, (path, method)
    page = httpx.get(f"{server.url}/docs").text
    section = page[page.index("post--v1-models-name-predict") :][:6000]
    assert "404" in section and "413" in section and "415" in section


def test_favicon(server: BackgroundServer) -> None:
    icon = httpx.get(f"{server.url}/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"


def test_readyz_is_503_without_a_champion(example_dir: Any) -> None:
    proj = Project.open(example_dir)
    try:
        with BackgroundServer(create_app(proj.root, proj.spec, proj.store)) as srv:
            ready = httpx.get(f"{srv.url}/readyz")
            assert ready.status_code == 503 and ready.json()["status"] == "not ready"
            assert "no model named 'bike-demand'" in ready.json()["reason"]
            assert httpx.get(f"{srv.url}/healthz").status_code == 200
    finally:
        proj.close()


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
    assert httpx.get(f"{server.url}/v1/monitor/reports/{10**30}").status_code == 422
    assert httpx.get(f"{server.url}/v1/runs?limit={10**30}").status_code == 422
    page = httpx.get(f"{server.url}/").text
    assert f"report {made['report_id']}" in page and "alert" in page


def test_a_lost_database_is_503_and_predictions_go_on(example_dir: Any) -> None:
    from mlcrew.pipeline.runner import Runner

    db = example_dir / "meta.db"
    proj = Project.open(example_dir, db_url=f"sqlite:///{db}")
    Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    try:
        with BackgroundServer(app) as srv:
            assert predict(srv, [GOOD_ROW]).status_code == 200
            for path in example_dir.glob("meta.db*"):  # the database goes away
                path.unlink()
            proj.store.engine.dispose()
            runs = httpx.get(f"{srv.url}/v1/runs")
            assert runs.status_code == 503
            assert "metadata database cannot be reached" in runs.json()["detail"]
            # The service keeps answering with the version it last resolved.
            time.sleep(0.3)  # past the alias cache's lifetime, so it asks the registry again
            answer = predict(srv, [GOOD_ROW])
            assert answer.status_code == 200 and answer.json()["model"]["version"] == 1
    finally:
        proj.close()
