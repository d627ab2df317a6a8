"""The access log: one line per request, written off the request path, never forged."""

from __future__ import annotations

import io

from mlcrew.serving.access import AccessLog


def test_one_line_per_request_with_status_time_and_id() -> None:
    out = io.StringIO()
    log = AccessLog(out)
    log.record("127.0.0.1", "POST", "/v1/models/m/predict", 200, 0.0012, "abc-1")
    log.record("127.0.0.1", "POST", "/v1/models/m/predict", 422, 0.0003, "abc-2")
    assert out.getvalue() == ""  # nothing written on the request path
    log.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith('127.0.0.1 "POST /v1/models/m/predict" 200 1.2ms abc-1')
    assert '" 422 0.3ms abc-2' in lines[1]


def test_a_crafted_path_cannot_forge_lines_or_flood() -> None:
    out = io.StringIO()
    log = AccessLog(out)
    log.record("1.2.3.4", "GET", "/x\n2026-01-01 fake 200", 404, 0.001, "id")
    log.record("1.2.3.4", "GET", "/" + "a" * 10_000, 404, 0.001, "id")
    log.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\\n2026-01-01 fake" in lines[0]
    assert len(lines[1]) < 400
