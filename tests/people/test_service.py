"""Sign-in, sessions, CSRF, the sign-in rate limit, tokens, declared consumers, the local
default and the start-up refusal, against a real server on loopback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from mlcrew.api.app import create_app
from mlcrew.people import tokens, users
from mlcrew.people.tables import ApiToken
from mlcrew.serving.predlog import read_predictions
from mlcrew.serving.server import BackgroundServer
from mlcrew.store import now
from tests.people.conftest import PASSWORD, People, trained_copy
from tests.serving.conftest import GOOD_ROW

ROOT = Path(__file__).parents[2]


@pytest.fixture()
def server(people: People) -> Iterator[BackgroundServer]:
    """A fresh server (its own sign-in rate limit) over the project with people."""
    proj = people.project
    with BackgroundServer(create_app(proj.root, proj.spec, proj.store, access_log=False)) as srv:
        yield srv


def _login_form(client: httpx.Client) -> tuple[str, str]:
    page = client.get("/login")
    assert page.status_code == 200
    field = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert field is not None, "the sign-in form carries a CSRF token"
    cookie = page.headers["set-cookie"]
    assert "mlcrew_login_csrf=" + field.group(1) in cookie
    return field.group(1), f"mlcrew_login_csrf={field.group(1)}"


def _session_cookie(response: httpx.Response) -> str:
    """The Set-Cookie line of the session (the response also clears the form's cookie)."""
    return next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("mlcrew_session=")
    )


def _sign_in(client: httpx.Client, user: str, password: str) -> httpx.Response:
    csrf, cookie = _login_form(client)
    return client.post(
        "/login",
        data={"user": user, "password": password, "csrf_token": csrf, "next": "/v1/runs"},
        headers={"cookie": cookie},
    )


def test_login_logout_and_the_session_cookie(server: BackgroundServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/v1/runs").status_code == 401
        browser = client.get("/", headers={"accept": "text/html"})
        assert browser.status_code == 303 and browser.headers["location"] == "/login?next=/"
        wrong = _sign_in(client, "manager", "not the password")
        assert wrong.status_code == 200 and "wrong user name or password" in wrong.text
        assert "mlcrew_session" not in wrong.headers.get("set-cookie", "")
        ok = _sign_in(client, "manager", PASSWORD)
        assert ok.status_code == 303 and ok.headers["location"] == "/v1/runs"
        cookie = _session_cookie(ok)
        flags = {p.strip().lower() for p in cookie.split(";")}
        assert {"secure", "httponly", "samesite=lax"} <= flags
        session_id = re.match(r"mlcrew_session=([^;]+)", cookie)
        assert session_id is not None
        auth = {"cookie": f"mlcrew_session={session_id.group(1)}"}
        assert client.get("/v1/runs", headers=auth).status_code == 200
        assert client.get("/v1/users", headers=auth).status_code == 403  # a manager
        page = client.get("/login", headers=auth)
        assert "Signed in" in page.text and "manager" in page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        # Signing out needs the session's CSRF token too.
        assert (
            client.post("/logout", headers=auth, data={"csrf_token": "forged"}).status_code == 403
        )
        out = client.post("/logout", headers=auth, data={"csrf_token": csrf.group(1)})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert client.get("/v1/runs", headers=auth).status_code == 401


def test_csrf_is_required_from_a_session_not_from_a_token(
    server: BackgroundServer, people: People
) -> None:
    with httpx.Client(base_url=server.url) as client:
        ok = _sign_in(client, "admin", PASSWORD)
        session = re.match(r"mlcrew_session=([^;]+)", _session_cookie(ok))
        assert session is not None
        cookie = {"cookie": f"mlcrew_session={session.group(1)}"}
        body = {"name": "carol", "role": "viewer"}
        refused = client.post("/v1/users", json=body, headers=cookie)
        assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
        wrong = client.post("/v1/users", json=body, headers={**cookie, "x-csrf-token": "nope"})
        assert wrong.status_code == 403
        assert (
            client.get("/v1/users", headers=cookie).json()
            == client.get(
                "/v1/users", headers={"authorization": f"Bearer {people.tokens['admin']}"}
            ).json()
        )
        assert "carol" not in {u["name"] for u in client.get("/v1/users", headers=cookie).json()}
        # The sign-in form without its token, or with another cookie's, is refused.
        form = {"user": "admin", "password": PASSWORD}
        assert client.post("/login", data=form).status_code == 403
        csrf, _ = _login_form(client)
        forged = client.post("/login", data={**form, "csrf_token": csrf},
                             headers={"cookie": "mlcrew_login_csrf=other"})  # fmt: skip
        assert forged.status_code == 403
        # A bearer token carries no ambient credential: no CSRF token needed.
        bearer = {"authorization": f"Bearer {people.tokens['admin']}"}
        made = client.post("/v1/users", json={"name": "carol", "role": "viewer"}, headers=bearer)
        assert made.status_code == 201 and made.json()["role"] == "viewer"
        gone = client.delete("/v1/users/carol", headers=bearer)
        assert gone.status_code == 204


def test_sign_in_rate_limit_says_when_to_retry(server: BackgroundServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        for _ in range(5):
            assert _sign_in(client, "viewer", "a wrong password").status_code == 200
        limited = _sign_in(client, "viewer", PASSWORD)  # even the right one, for now
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) > 0
        assert "too many failed sign-ins for user viewer" in limited.text
        # Another user from the same address may still sign in (up to the address limit).
        assert _sign_in(client, "scientist", PASSWORD).status_code == 303


def test_expired_and_revoked_tokens_are_refused(server: BackgroundServer, people: People) -> None:
    store, project = people.project.store, people.project.spec.name
    admin = {"authorization": f"Bearer {people.tokens['admin']}"}
    with httpx.Client(base_url=server.url) as client:
        made = client.post("/v1/tokens", json={"owner": "viewer", "scope": ["read_models"]},
                           headers=admin)  # fmt: skip
        assert made.status_code == 201
        secret, token_id = made.json()["token"], made.json()["info"]["id"]
        viewer = {"authorization": f"Bearer {secret}"}
        assert client.get("/v1/runs", headers=viewer).status_code == 200
        assert client.get("/metrics", headers=viewer).status_code == 403  # not in its scope
        listed = {t["id"]: t for t in client.get("/v1/tokens", headers=admin).json()}
        assert listed[token_id]["last_used"] is not None and "token" not in listed[token_id]
        assert client.delete(f"/v1/tokens/{token_id}", headers=admin).status_code == 200
        refused = client.get("/v1/runs", headers=viewer)
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
        assert refused.headers["www-authenticate"].startswith("Bearer")
        # Expired (the clock moved past its expiry).
        late, info = tokens.create_token(store, project, "viewer", actor="t", expires_days=1)
        with store.session() as s:
            s.execute(update(ApiToken).where(ApiToken.id == info.id)
                      .values(expires_at=now() - timedelta(seconds=1)))  # fmt: skip
        expired = client.get("/v1/runs", headers={"authorization": f"Bearer {late}"})
        assert expired.status_code == 401 and "expired" in expired.json()["detail"]
        bad = client.get("/v1/runs", headers={"authorization": "Bearer nonsense"})
        assert bad.status_code == 401
        # A probe does not fail on credentials that stand for nobody.
        assert client.get("/healthz", headers={"authorization": "Bearer nonsense"}).is_success
        # An admin cannot lock themselves out over REST.
        mine = {t["id"] for t in client.get("/v1/tokens", headers=admin).json()
                if t["owner"] == "admin"}  # fmt: skip
        for token_id in mine:
            kept = client.delete(f"/v1/tokens/{token_id}", headers=admin)
            if kept.status_code == 409:
                assert "this request uses that token" in kept.json()["detail"]
                break
        else:
            raise AssertionError("the admin's own token was revoked by itself")
        assert client.delete("/v1/users/admin", headers=admin).status_code == 409
        assert client.get("/v1/users", headers=admin).status_code == 200
        predict = client.post("/v1/models/bike-demand/predict", json={"rows": [GOOD_ROW]},
                              headers={"authorization": f"Bearer {late}"})  # fmt: skip
        assert predict.status_code == 401


def test_audit_names_the_token_user(server: BackgroundServer, people: People) -> None:
    engineer = {"authorization": f"Bearer {people.tokens['engineer']}"}
    admin = {"authorization": f"Bearer {people.tokens['admin']}"}
    with httpx.Client(base_url=server.url) as client:
        moved = client.post("/v1/models/bike-demand/aliases/challenger",
                            json={"version": 1, "reason": "try it"}, headers=engineer)  # fmt: skip
        assert moved.status_code == 200 and moved.json()["event"]["actor"] == "engineer"
        assert client.get("/v1/audit", headers=engineer).status_code == 403
        events = client.get("/v1/audit", headers=admin).json()["events"]
        promote = next(e for e in events if e["action"] == "promote")
        assert promote["actor"] == "engineer" and promote["target"] == "bike-demand@challenger"
        assert any(e["action"] == "run" for e in events)


def test_declared_consumers(tmp_path: Path) -> None:
    proj = trained_copy(tmp_path / "bikeshare")
    spec = proj.spec.model_copy(
        update={
            "serving": proj.spec.serving.model_copy(
                update={"consumers": ["checkout"], "require_consumer": True}
            )
        }
    )
    checkout, _ = tokens.create_token(proj.store, spec.name, "checkout", actor="t",
                                      consumers=["checkout"])  # fmt: skip
    app = create_app(proj.root, spec, proj.store, access_log=False)
    url = "/v1/models/bike-demand/predict"
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url) as client:
        # No people: the local owner may read everything, but predictions need a consumer.
        assert client.get("/v1/runs").status_code == 200
        refused = client.post(url, json={"rows": [GOOD_ROW]})
        assert refused.status_code == 403 and "declared consumers" in refused.json()["detail"]
        ok = client.post(url, json={"rows": [GOOD_ROW]},
                         headers={"authorization": f"Bearer {checkout}"})  # fmt: skip
        assert ok.status_code == 200
        # Declared through the API: its first token comes with the answer.
        made = client.post("/v1/consumers", json={"name": "billing"})
        assert made.status_code == 201 and made.json()["info"]["scope"] == ["query"]
        billing = made.json()["token"]
        again = client.post(url, json={"rows": [GOOD_ROW, GOOD_ROW]},
                            headers={"authorization": f"Bearer {billing}"})  # fmt: skip
        assert again.status_code == 200
        # A consumer token may only query.
        assert (
            client.get("/v1/runs", headers={"authorization": f"Bearer {billing}"}).status_code
            == 403
        )
        assert client.get("/v1/consumers").json()["consumers"] == ["billing", "checkout"]
    logged = read_predictions(proj.store, spec.name).column("consumer").to_pylist()
    assert sorted(logged) == ["consumer:billing", "consumer:billing", "consumer:checkout"]
    proj.close()


def test_local_default_without_people_needs_no_sign_in(tmp_path: Path) -> None:
    proj = trained_copy(tmp_path / "bikeshare")
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url) as client:
        assert client.get("/").status_code == 200
        assert client.get("/metrics").status_code == 200
        ok = client.post("/v1/models/bike-demand/predict", json={"rows": [GOOD_ROW]})
        assert ok.status_code == 200
        moved = client.post("/v1/models/bike-demand/aliases/challenger",
                            json={"version": 1, "reason": "local"})  # fmt: skip
        assert moved.status_code == 200 and moved.json()["event"]["actor"]  # the OS user
        # The first person turns sign-in on (within the gate's few-second cache).
        users.add_user(proj.store, proj.spec.name, "ann", "admin", actor="t")
        deadline = time.monotonic() + 10
        while client.get("/v1/runs").status_code != 401 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get("/v1/runs").status_code == 401
    proj.close()


def _mlcrew(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", *args],
        input=stdin, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_serve_refuses_to_start_without_an_admin(tmp_path: Path) -> None:
    proj = trained_copy(tmp_path / "bikeshare")
    root = str(proj.root)
    spec = proj.root / "mlcrew.yaml"
    spec.write_text(spec.read_text() + f"\nstore: {{db: 'sqlite:///{tmp_path / 'meta.db'}'}}\n")
    proj.close()
    exposed = _mlcrew("serve", "-p", root, "--host", "0.0.0.0", "--port", "0")
    assert exposed.returncode == 2
    assert "listens beyond loopback" in exposed.stderr
    assert "mlcrew user add NAME --role admin --password-stdin" in exposed.stderr
    added = _mlcrew("user", "add", "val", "--role", "viewer", "-p", root)
    assert added.returncode == 0, added.stderr
    loopback = _mlcrew("serve", "-p", root, "--port", "0")
    assert loopback.returncode == 2 and "the project has people" in loopback.stderr


def test_mlcrew_serve_with_workers_requires_sign_in(tmp_path: Path) -> None:
    """The real command, two worker processes: each opens the project and enforces the gate."""
    from mlcrew.serving.server import free_port

    proj = trained_copy(tmp_path / "bikeshare")
    spec = proj.root / "mlcrew.yaml"
    spec.write_text(spec.read_text() + f"\nstore: {{db: 'sqlite:///{tmp_path / 'meta.db'}'}}\n")
    users.add_user(proj.store, proj.spec.name, "ann", "admin", actor="t")
    secret, _ = tokens.create_token(proj.store, proj.spec.name, "ann", actor="t", scope=["query"])
    proj.close()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlcrew.cli.main", "serve", "-p", str(proj.root),
         "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
        url = f"{base}/v1/models/bike-demand/predict"
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as client:
            for _ in range(6):  # a connection each, so both workers answer
                assert client.post(url, json={"rows": [GOOD_ROW]}).status_code == 401
                ok = client.post(url, json={"rows": [GOOD_ROW]},
                                 headers={"authorization": f"Bearer {secret}"})  # fmt: skip
                assert ok.status_code == 200
                runs = client.get(f"{base}/v1/runs", headers={"authorization": f"Bearer {secret}"})
                assert runs.status_code == 403  # the token's scope is query only
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "sign-in required" in out


def test_sign_in_under_a_path_prefix_stays_in_the_project(people: People) -> None:
    """Mounted at /p/NAME (as `mlcrew server` mounts projects): the form posts there, the
    cookies are scoped there, and a page asks to sign in there."""
    import asyncio
    import concurrent.futures

    proj = people.project
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)

    async def visit() -> None:
        transport = httpx.ASGITransport(app=app, root_path="/p/bikes")  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            page = await client.get("/p/bikes/", headers={"accept": "text/html"})
            assert page.status_code == 303
            assert page.headers["location"] == "/p/bikes/login?next=/p/bikes/"
            form = await client.get("/p/bikes/login")
            assert 'action="/p/bikes/login"' in form.text
            assert "Path=/p/bikes" in form.headers["set-cookie"]
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert csrf is not None
            done = await client.post(
                "/p/bikes/login",
                data={"user": "viewer", "password": PASSWORD, "csrf_token": csrf.group(1),
                      "next": "https://elsewhere.example/"},
                headers={"cookie": f"mlcrew_login_csrf={csrf.group(1)}"},
            )  # fmt: skip
            assert done.status_code == 303 and done.headers["location"] == "/p/bikes/"
            assert "Path=/p/bikes" in _session_cookie(done)

    # On a thread of its own: the browser tests' Playwright keeps an event loop running in
    # this one for the whole session.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, visit()).result()
    app.shutdown()
