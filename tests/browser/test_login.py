"""Signing in and out in a real Chromium: the form carries its CSRF token, the session cookie
is Secure, HttpOnly and SameSite, and the overview opens after signing in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlcrew.api.app import create_app
from mlcrew.people.users import add_user
from mlcrew.serving.server import BackgroundServer
from tests.people.conftest import PASSWORD, trained_copy


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    proj = trained_copy(tmp_path_factory.mktemp("login") / "bikeshare")
    add_user(proj.store, proj.spec.name, "ann", "admin", actor="test", password=PASSWORD)
    with BackgroundServer(create_app(proj.root, proj.spec, proj.store, access_log=False)) as srv:
        yield srv
    proj.close()


def test_sign_in_with_csrf_token_then_sign_out(
    browser: Any, server: BackgroundServer, tmp_path: Path
) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + "/")
    assert page.url == server.url + "/login?next=/"  # sent to sign in first
    token = page.locator('form[action="/login"] input[name="csrf_token"]')
    assert token.get_attribute("type") == "hidden"
    value = token.get_attribute("value") or ""
    assert len(value) >= 32
    jar = {c["name"]: c for c in context.cookies()}
    assert jar["mlcrew_login_csrf"]["value"] == value and jar["mlcrew_login_csrf"]["httpOnly"]
    page.get_by_label("User").fill("ann")
    page.get_by_label("Password").fill("not it at all")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_test_id("login-error").inner_text() == "wrong user name or password"
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url + "/")
    assert page.title() == "bike-demand · mlcrew"
    session = {c["name"]: c for c in context.cookies()}["mlcrew_session"]
    assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Lax"
    assert page.get_by_test_id("user").inner_text() == "ann"
    # The page's own request (Try it) carries the session's CSRF token and is answered.
    page.get_by_role("button", name="Send this request").click()
    page.wait_for_function("document.getElementById('answer').textContent.length > 0")
    assert page.locator("#answer").inner_text().startswith("200 ")
    page.screenshot(path=str(tmp_path / "signed-in.png"), full_page=True)
    page.goto(server.url + "/login")
    assert page.get_by_test_id("signed-in-as").inner_text() == "ann"
    out = page.locator('form[action="/logout"] input[name="csrf_token"]').get_attribute("value")
    assert out and out != value  # the session's own token
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(server.url + "/login")
    assert "mlcrew_session" not in {c["name"] for c in context.cookies()}
    page.goto(server.url + "/")
    assert page.url.startswith(server.url + "/login")
    context.close()
