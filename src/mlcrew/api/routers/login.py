"""Sign-in and sign-out pages. The outer layer's gate has checked the form's CSRF token before
these run (the sign-in form's against its own cookie, sign-out's against the session)."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mlcrew.api.deps import AppState, get_identity, get_state
from mlcrew.api.routers.pages import TEMPLATES
from mlcrew.errors import RateLimited
from mlcrew.people.audit import record
from mlcrew.people.gate import cookies
from mlcrew.people.identity import Identity
from mlcrew.people.sessions import COOKIE, LIFETIME, LOGIN_CSRF_COOKIE, end_session, start_session
from mlcrew.people.users import check_password

router = APIRouter(tags=["pages"], include_in_schema=False)


def _root(request: Request) -> str:
    """Where this project is mounted ("" for `mlcrew serve`, /p/NAME under `mlcrew server`)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    # Scoped to the project's path: projects of one server keep their own sessions.
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=_root(request) or "/",
        secure=True,
        httponly=True,
        samesite="lax",
    )


def _next(request: Request, target: str) -> str:
    """Only a path of this project (no open redirect to elsewhere)."""
    root = _root(request)
    if target.startswith(root + "/") and not target.startswith("//"):
        return target
    return root + "/"


def _form(state: AppState, request: Request, status: int = 200, **context: Any) -> HTMLResponse:
    """The sign-in form with a fresh CSRF token, also set as a cookie (double submit)."""
    csrf = secrets.token_urlsafe(32)
    values = {"project": state.spec.name, "csrf": csrf, "user": None, "error": None, "name": "",
              "root": _root(request)}  # fmt: skip
    page = TEMPLATES.TemplateResponse(
        request, "login.html", {**values, "next": "/", **context}, status_code=status
    )
    _cookie(request, page, LOGIN_CSRF_COOKIE, csrf, 3600)
    return page


@router.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request,
    next: str = "/",
    state: AppState = Depends(get_state),
    who: Identity = Depends(get_identity),
) -> HTMLResponse:
    if who.via == "session":
        return TEMPLATES.TemplateResponse(
            request,
            "login.html",
            {
                "project": state.spec.name,
                "user": who.name,
                "csrf": who.csrf,
                "root": _root(request),
            },
        )
    return _form(state, request, next=_next(request, next))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, state: AppState = Depends(get_state)) -> Response:
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    name, password = form.get("user", "")[:64], form.get("password", "")
    target = _next(request, form.get("next", ""))
    address = request.client.host if request.client else "unknown"
    if not name or not password:
        return _form(state, request, error="enter your user name and password", name=name,
                     next=target)  # fmt: skip
    limiter = state.gate.limiter
    try:
        limiter.check(name, address)
    except RateLimited as exc:
        page = _form(state, request, 429, error=str(exc), name=name, next=target)
        page.headers["retry-after"] = str(exc.retry_after)
        return page
    who = check_password(state.store, state.spec.name, name, password)
    if who is None:
        limiter.failed(name, address)
        error = "wrong user name or password"
        return _form(state, request, error=error, name=name, next=target)
    limiter.succeeded(name)
    if target == _root(request) + "/" and not who.may("read_models") and who.may("label_assigned"):
        target = _root(request) + "/label"  # a labeler's page: the overview is not theirs
    session_id, _csrf = start_session(state.store, state.spec.name, who.name)
    record(state.store, state.spec.name, who.name, "session.login", who.name, {"address": address})
    response = RedirectResponse(target, status_code=303)
    _cookie(request, response, COOKIE, session_id, int(LIFETIME.total_seconds()))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=_root(request) or "/")
    return response


@router.post("/logout")
def logout(request: Request, state: AppState = Depends(get_state)) -> Response:
    session_id = cookies(request.headers.get("cookie", "")).get(COOKIE)
    if session_id:
        end_session(state.store, session_id)
    response = RedirectResponse(_root(request) + "/login", status_code=303)
    path = _root(request) or "/"
    response.delete_cookie(COOKIE, path=path, secure=True, httponly=True, samesite="lax")
    return response
