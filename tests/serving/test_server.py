"""`mlcrew server` as an operator runs it: one process (two workers) on a real port serving every
project of one store under /p/{project}/, and a project run later appears without a restart."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlcrew.api.authorize import Action, Refusal
from mlcrew.api.host import HostApp, open_host_store
from mlcrew.people.host import SignedInHost
from mlcrew.people.tokens import create_token, revoke_token
from mlcrew.people.users import add_user
from mlcrew.pipeline.runner import Runner
from mlcrew.project import EXAMPLES, Project
from mlcrew.serving.server import BackgroundServer
from tests.serving.conftest import GOOD_ROW

MLCREW = [sys.executable, "-m", "mlcrew.cli.main"]


def run_project(root: Path, name: str, db_url: str, artifacts: Path) -> None:
    """A project folder named `name` pointing at the shared store, with one run."""
    shutil.copytree(EXAMPLES / "bikeshare", root, ignore=shutil.ignore_patterns(".mlcrew"))
    spec = root / "mlcrew.yaml"
    text = spec.read_text().replace("name: bike-demand", f"name: {name}", 1)
    spec.write_text(text + f"\nstore: {{db: '{db_url}', artifacts: '{artifacts}'}}\n")
    proj = Project.open(root)
    try:
        Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
    finally:
        proj.close()


@pytest.fixture()
def store_with_two(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.delenv("MLCREW_DB_URL", raising=False)
    monkeypatch.delenv("MLCREW_ARTIFACTS", raising=False)
    artifacts = tmp_path / "shared-artifacts"
    for name in ("alpha", "beta"):
        run_project(tmp_path / name, name, db_url, artifacts)
    return {"db": db_url, "artifacts": artifacts, "tmp": tmp_path}


def admin_tokens(setup: dict[str, Any], projects: tuple[str, ...]) -> dict[str, str]:
    """`ops`, an admin of each project, and a token of theirs per project (tokens are per
    project): what an operator creates before `mlcrew server` will start."""
    store = open_host_store(setup["db"], str(setup["artifacts"]))
    tokens = setup.setdefault("tokens", {})
    try:
        for name in projects:
            scoped = store.for_project(name)
            add_user(scoped, name, "ops", "admin", actor="test", password="a long passphrase")
            tokens[name], _ = create_token(scoped, name, "ops", actor="test")
    finally:
        store.close()
    return dict(tokens)


def signed(tokens: dict[str, str]) -> dict[str, Any]:
    """httpx client options that send each project's token with its requests."""

    def add_token(request: httpx.Request) -> None:
        found = re.match(r"/p/([^/]+)/", request.url.path)
        if found and found.group(1) in tokens:
            request.headers["authorization"] = f"Bearer {tokens[found.group(1)]}"
        elif not found:  # the host's own pages: any valid token of the caller
            request.headers["authorization"] = f"Bearer {next(iter(tokens.values()))}"

    return {"event_hooks": {"request": [add_token]}}


def start_server(setup: dict[str, Any]) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCREW_")}
    env["COLUMNS"] = "300"  # one line for the start message
    proc = subprocess.Popen(
        [*MLCREW, "server", "--db", setup["db"], "--artifacts",
         str(setup["artifacts"]), "--port", "0", "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    return proc


def test_the_server_refuses_to_start_without_an_admin(store_with_two: dict[str, Any]) -> None:
    proc = start_server(store_with_two)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, out + err
    assert "requires sign-in, but no project of this store has an admin" in err
    assert "mlcrew user add NAME --role admin --password-stdin -p DIR" in err
    assert "serving" not in out  # it never started


@pytest.fixture()
def server(store_with_two: dict[str, Any]) -> Iterator[str]:
    admin_tokens(store_with_two, ("alpha", "beta"))
    proc = start_server(store_with_two)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found, line + (proc.stderr.read() if proc.stderr else "")
        url = f"http://127.0.0.1:{found.group(1)}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def predict(http: httpx.Client, project: str, model: str) -> httpx.Response:
    return http.post(f"/p/{project}/v1/models/{model}/predict", json={"rows": [GOOD_ROW]})


def test_server_serves_each_project_under_its_prefix(
    server: str, store_with_two: dict[str, Any]
) -> None:
    tokens = store_with_two["tokens"]
    with httpx.Client(base_url=server, timeout=30) as anonymous:
        # sign-in is required under mlcrew server, whatever the address: no token, no entry
        refused = anonymous.post("/p/alpha/v1/models/alpha/predict", json={"rows": [GOOD_ROW]})
        assert refused.status_code == 401
        assert anonymous.get("/p/alpha/v1/runs").status_code == 401
        # a token of one project opens nothing of another
        beta_with_alpha = anonymous.get(
            "/p/beta/v1/runs", headers={"authorization": f"Bearer {tokens['alpha']}"}
        )
        assert beta_with_alpha.status_code == 401
        # the host's project list too, but not its health check
        assert anonymous.get("/v1/projects").status_code == 401
        assert anonymous.get("/").status_code == 401
        assert anonymous.get("/healthz").status_code == 200
    with httpx.Client(base_url=server, timeout=30, **signed(tokens)) as http:
        listed = http.get("/v1/projects").json()["projects"]
        assert [(p["name"], p["url"]) for p in listed] == [
            ("alpha", "/p/alpha/"), ("beta", "/p/beta/"),
        ]  # fmt: skip
        front = http.get("/")
        assert front.headers["content-type"].startswith("text/html")
        assert 'href="/p/alpha/"' in front.text and 'href="/p/beta/"' in front.text

        for name in ("alpha", "beta"):
            answer = predict(http, name, name)
            assert answer.status_code == 200, answer.text
            assert answer.json()["model"] == {"name": name, "version": 1}
            ready = http.get(f"/p/{name}/readyz").json()
            assert (ready["status"], ready["model"]) == ("ready", name)
        # each worker counts into one place: /metrics sums them (after the predictions above)
        metrics = http.get("/p/alpha/metrics").text
        assert 'mlcrew_predicted_rows_total{model="alpha",version="1"}' in metrics
        # one project's model is not reachable through another's prefix
        assert predict(http, "alpha", "beta").status_code == 404

        # an unknown project: 404 with what to do, on every kind of route
        for path in ("/p/nope/", "/p/nope/readyz", "/p/nope/v1/runs"):
            missing = http.get(path)
            assert missing.status_code == 404 and "/v1/projects" in missing.json()["detail"]
        assert predict(http, "nope", "nope").status_code == 404

        # the overview page and everything it links to live under the prefix
        page = http.get("/p/alpha/")
        assert page.status_code == 200 and "<title>alpha · mlcrew</title>" in page.text
        links = re.findall(r'(?:href|src)="(/[^"]*)"', page.text)
        links += re.findall(r'fetch\("(/[^"]*)"', page.text)
        assert links and all(link.startswith("/p/alpha/") for link in links), links
        for link in links:
            method = "POST" if link.endswith("/predict") else "GET"
            got = http.request(method, link, json={"rows": [GOOD_ROW]})
            assert got.status_code == 200, (link, got.text[:200])
        assert http.get("/p/alpha", follow_redirects=True).url.path == "/p/alpha/"

        # a project run while the server is up appears without a restart
        tmp = store_with_two["tmp"]
        run_project(tmp / "gamma", "gamma", store_with_two["db"], store_with_two["artifacts"])
        admin_tokens(store_with_two, ("gamma",))  # the hook reads the same dict
        deadline = time.monotonic() + 60
        while "gamma" not in [p["name"] for p in http.get("/v1/projects").json()["projects"]]:
            assert time.monotonic() < deadline, "gamma never appeared"
            time.sleep(0.2)
        answer = predict(http, "gamma", "gamma")
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == {"name": "gamma", "version": 1}


class RefuseBetaPredictions:
    """An authorizer that records what it was asked and refuses beta's predictions."""

    def __init__(self) -> None:
        self.asked: list[tuple[str | None, str]] = []

    def check(self, project: str | None, action: Action, scope: Any) -> Refusal | None:
        self.asked.append((project, action))
        if project == "beta" and action == "predict":
            return Refusal(403, "no predictions from beta for you")
        return None


def test_every_request_passes_the_authorizer_first(store_with_two: dict[str, Any]) -> None:
    gate = RefuseBetaPredictions()
    store = open_host_store(store_with_two["db"], str(store_with_two["artifacts"]))
    with (
        BackgroundServer(HostApp(store, authorizer=gate)) as srv,
        httpx.Client(base_url=srv.url, timeout=30) as http,
    ):
        assert predict(http, "alpha", "alpha").status_code == 200
        refused = predict(http, "beta", "beta")
        assert refused.status_code == 403
        assert refused.json() == {"detail": "no predictions from beta for you"}
        assert http.get("/p/beta/v1/runs").status_code == 200
        assert http.post("/p/beta/v1/models/beta/aliases/champion", json={}).status_code == 422
        assert http.get("/v1/projects").status_code == 200
    assert gate.asked == [
        ("alpha", "predict"), ("beta", "predict"), ("beta", "read"), ("beta", "write"),
        (None, "read"),
    ]  # fmt: skip


def test_a_project_run_with_another_spec_is_served_with_it(store_with_two: dict[str, Any]) -> None:
    store = open_host_store(store_with_two["db"], str(store_with_two["artifacts"]))
    with (
        BackgroundServer(HostApp(store, ttl=0.2)) as srv,
        httpx.Client(base_url=srv.url, timeout=30) as http,
    ):

        def described() -> str:
            return str(http.get("/p/alpha/openapi.json").json()["info"]["description"])

        assert described().startswith("Predict hourly bike rentals")
        root = store_with_two["tmp"] / "alpha"
        spec = root / "mlcrew.yaml"
        text = spec.read_text().replace("description: Predict", "description: Now, predict")
        spec.write_text(text)
        proj = Project.open(root)
        try:
            Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
        finally:
            proj.close()
        deadline = time.monotonic() + 60
        while not described().startswith("Now, predict"):
            assert time.monotonic() < deadline, "the new spec was never served"
            time.sleep(0.1)
        answer = predict(http, "alpha", "alpha")
        assert answer.status_code == 200 and answer.json()["model"]["name"] == "alpha"


def test_the_project_list_shows_a_token_holder_only_their_projects(
    store_with_two: dict[str, Any],
) -> None:
    store = open_host_store(store_with_two["db"], str(store_with_two["artifacts"]))
    alpha = store.for_project("alpha")
    add_user(alpha, "alpha", "ann", "viewer", actor="test", password="a long passphrase")
    token, info = create_token(alpha, "alpha", "ann", actor="test")
    host = HostApp(store, authorizer=SignedInHost(store), require_sign_in=True)
    with BackgroundServer(host) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        bearer = {"authorization": f"Bearer {token}"}
        listed = http.get("/v1/projects", headers=bearer).json()["projects"]
        assert [p["name"] for p in listed] == ["alpha"]  # beta exists, but not for ann
        assert "/p/beta/" not in http.get("/", headers=bearer).text
        assert http.get("/p/beta/v1/runs", headers=bearer).status_code == 401
        revoke_token(alpha, "alpha", info.id, actor="test")
        assert http.get("/v1/projects", headers=bearer).status_code == 401
