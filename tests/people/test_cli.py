"""`mlcrew user`, `mlcrew token` and `mlcrew audit` as a person at the terminal uses them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlcrew.people.identity import os_user
from mlcrew.people.tokens import resolve_token
from mlcrew.project import Project


@pytest.fixture()
def project(tmp_path: Path, db_url: str) -> tuple[Path, dict[str, str]]:
    env = {**os.environ, "MLCREW_DB_URL": db_url}
    root = tmp_path / "p"
    run(env, "init", "--example", "bikeshare", str(root))
    return root, env


def run(
    env: dict[str, str], *args: str, stdin: str = "", code: int = 0
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", *args],
        input=stdin, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == code, proc.stderr
    return proc


def test_users_tokens_and_audit(project: tuple[Path, dict[str, str]], db_url: str) -> None:
    root, env = project
    p = ("-p", str(root))
    added = run(env, "user", "add", "ann", "--role", "admin", "--password-stdin", *p,
                stdin="a long password\n")  # fmt: skip
    assert "added ann to bike-demand as admin" in added.stdout
    run(env, "user", "add", "lee", "--role", "labeler", "--external", *p)
    bad = run(env, "user", "add", "kim", "--role", "wizard", *p, code=1)
    assert "unknown role 'wizard'" in bad.stderr and "viewer" in bad.stderr
    listed = json.loads(run(env, "user", "list", "--json", *p).stdout)
    assert [(u["name"], u["role"], u["external"], u["has_password"]) for u in listed["users"]] == [
        ("ann", "admin", False, True),
        ("lee", "labeler", True, False),
    ]
    made = run(env, "token", "create", "ann", "--scope", "query", "--expires", "30", *p)
    secret = made.stdout.strip()
    assert made.stdout == secret + "\n" and secret.startswith("mlc_")  # only the token
    assert "not shown again" in made.stderr
    proj = Project.open(root, db_url=db_url)
    who = resolve_token(proj.store, "bike-demand", secret)
    assert who.name == "ann" and who.actions == {"query"}
    refused = run(env, "token", "create", "lee", "--scope", "promote", *p, code=1)
    assert "cannot either" in refused.stderr and refused.stdout == ""
    tokens = json.loads(run(env, "token", "list", "--json", *p).stdout)["tokens"]
    assert len(tokens) == 1 and tokens[0]["owner"] == "ann" and tokens[0]["expires"]
    assert secret not in json.dumps(tokens)
    revoked = run(env, "token", "revoke", tokens[0]["id"], *p)
    assert f"revoked {tokens[0]['id']}" in revoked.stdout
    gone = json.loads(run(env, "token", "list", "--json", *p).stdout)["tokens"]
    assert gone[0]["revoked"] is not None
    last = run(env, "user", "remove", "ann", *p, code=1)
    assert "last admin" in last.stderr
    run(env, "user", "remove", "lee", *p)
    events = json.loads(run(env, "audit", "--json", *p).stdout)["events"]
    assert [e["action"] for e in events] == [
        "user.remove", "token.revoke", "token.create", "user.add", "user.add",
    ]  # fmt: skip
    assert {e["actor"] for e in events} == {os_user()}
    table = run(env, "audit", *p).stdout
    assert "user.remove" in table and "lee" in table
    proj.close()
