"""The role x action matrix over every route the service answers: each role, an external
labeler and an anonymous caller get exactly what people/roles.py and people/routes.py say.
Also: docs/security.md shows the matrix as the code has it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlcrew.api.app import ServiceApp, create_app
from mlcrew.api.fastpath import PREDICT_ROUTE
from mlcrew.people.roles import EXTERNAL, MATRIX, ROLES, matrix_markdown
from mlcrew.people.routes import ROUTES, routes_markdown
from mlcrew.serving.server import BackgroundServer
from tests.people.conftest import People

DOC = Path(__file__).parents[2] / "docs" / "security.md"
SAMPLES = {
    "name": "bike-demand",
    "alias": "challenger",
    "run_id": "no-such-run",
    "report_id": "99999",
    "user": "nobody",
    "token_id": "tok_none",
    "task_id": "999999",
    "fmt": "md",
    "ref": "nosuchdataset",
}
OUTER = [("POST", PREDICT_ROUTE), ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")]


def app_routes(app: ServiceApp) -> list[tuple[str, str]]:
    """(method, template) of every route: FastAPI's and the outer layer's."""
    try:
        from fastapi.routing import iter_route_contexts

        routes: list[Any] = list(iter_route_contexts(app.api.routes))
    except ImportError:  # older FastAPI: the routes are flat already
        routes = list(app.api.routes)
    found = set(OUTER)
    for route in routes:
        for method in getattr(route, "methods", None) or {"GET"}:
            if method != "HEAD":
                found.add((method, route.path))
    return sorted(found)


@pytest.fixture(scope="module")
def served(people: People) -> Iterator[tuple[ServiceApp, BackgroundServer]]:
    proj = people.project
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    with BackgroundServer(app) as srv:
        yield app, srv


def test_every_route_has_a_matrix_entry(served: tuple[ServiceApp, BackgroundServer]) -> None:
    routes = app_routes(served[0])
    missing = [r for r in routes if r not in ROUTES]
    assert not missing, f"routes without an action in people/routes.py: {missing}"
    stale = [r for r in ROUTES if r not in routes]
    assert not stale, f"people/routes.py names routes the service lacks: {stale}"


def _path(template: str) -> str:
    if template == "/static":
        return "/static/style.css"
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLES[m.group(1)], template)


def _call(client: httpx.Client, method: str, template: str, token: str | None) -> int:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    kwargs: dict[str, Any] = {}
    if template in ("/login", "/logout") and method == "POST":
        # A sign-in form as a browser sends it (its CSRF token matching its cookie).
        headers["cookie"] = "mlcrew_login_csrf=abc"
        kwargs["data"] = {"csrf_token": "abc"}
    elif method in ("POST", "DELETE"):
        kwargs["json"] = {}
    return client.request(method, _path(template), headers=headers, **kwargs).status_code


@pytest.mark.parametrize("who", [*ROLES, EXTERNAL, "anonymous"])
def test_each_caller_gets_what_the_matrix_says(
    who: str, people: People, served: tuple[ServiceApp, BackgroundServer]
) -> None:
    app, srv = served
    token = people.tokens.get(who)
    allowed = MATRIX.get(who, frozenset())
    wrong = []
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        for method, template in app_routes(app):
            assert (method, template) in ROUTES, f"{method} {template} has no matrix entry"
            action = ROUTES[(method, template)]
            status = _call(client, method, template, token)
            if action is None or action in allowed:
                ok = status not in (401, 403)
                want = "neither 401 nor 403"
            else:
                want = "401" if who == "anonymous" else "403"
                ok = status == int(want)
            if not ok:
                wrong.append(f"{method} {template} ({action}): {status}, expected {want}")
    assert not wrong, f"{who}: " + "; ".join(wrong)


def test_security_doc_shows_the_matrix_of_the_code() -> None:
    text = DOC.read_text()
    assert matrix_markdown() in text, (
        "docs/security.md is stale: paste people.roles.matrix_markdown() over its matrix"
    )


def test_security_doc_lists_every_route_with_its_action() -> None:
    assert routes_markdown() in DOC.read_text(), (
        "docs/security.md is stale: paste people.routes.routes_markdown() over its route table"
    )
