"""`mlcrew user`, `mlcrew token` and `mlcrew audit`: people, their tokens and the audit log of
the project given by -p (the current folder by default). The local CLI acts as the OS user."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from mlcrew.cli.common import JsonOption, ProjectOption, console, emit_json, err_console

user_app = typer.Typer(name="user", help="Add, list and remove the project's people.")
token_app = typer.Typer(name="token", help="Create, list and revoke API tokens.")
app = typer.Typer()


def _actor() -> str:
    from mlcrew.people.identity import cli_identity

    return cli_identity().actor


def _read_password() -> str:
    if sys.stdin.isatty():
        err_console.print("password (then Enter): ", end="")
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


@user_app.command("add")
def user_add(
    name: str = typer.Argument(..., help="The person's user name."),
    role: str = typer.Option(
        ..., "--role", help="admin, manager, scientist, engineer, reviewer, labeler or viewer."
    ),
    external: bool = typer.Option(
        False, "--external", help="An outsourced labeler: sees only the tasks assigned to them."
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read a password (to sign in on the web) from stdin."
    ),
    project: Path = ProjectOption,
) -> None:
    """Give a person a role in the project (creating the user if new)."""
    from mlcrew.people.roles import parse_role
    from mlcrew.people.users import add_user
    from mlcrew.project import Project

    chosen = parse_role(role)
    password = _read_password() if password_stdin else None
    proj = Project.open(project)
    info = add_user(
        proj.store,
        proj.spec.name,
        name,
        chosen,
        actor=_actor(),
        external=external,
        password=password,
    )
    kind = " (external)" if info.external else ""
    console.print(f"added {escape(info.name)} to {escape(proj.spec.name)} as {info.role}{kind}")


@user_app.command("list")
def user_list(project: Path = ProjectOption, json_out: bool = JsonOption) -> None:
    """The project's people and their roles."""
    from mlcrew.people.users import list_users
    from mlcrew.project import Project

    proj = Project.open(project)
    people = list_users(proj.store, proj.spec.name)
    if json_out:
        emit_json({"project": proj.spec.name, "users": [u.to_json() for u in people]})
        return
    if not people:
        console.print(
            "no people yet: anyone on this machine acts as the owner. Add an admin with "
            "`mlcrew user add NAME --role admin --password-stdin`"
        )
        return
    table = Table("user", "role", "password", "created")
    for u in people:
        role = u.role + (" (external)" if u.external else "")
        table.add_row(escape(u.name), role, "yes" if u.has_password else "-", u.created[:19])
    console.print(table)


@user_app.command("remove")
def user_remove(
    name: str = typer.Argument(..., help="The person's user name."),
    project: Path = ProjectOption,
) -> None:
    """Take a person out of the project: their tokens are revoked and sessions ended."""
    from mlcrew.people.users import remove_user
    from mlcrew.project import Project

    proj = Project.open(project)
    remove_user(proj.store, proj.spec.name, name, actor=_actor())
    console.print(f"removed {escape(name)} from {escape(proj.spec.name)}")


@token_app.command("create")
def token_create(
    name: str = typer.Argument(..., help="Whose token: a user of the project or a consumer."),
    scope: list[str] = typer.Option(
        [],
        "--scope",
        help="Actions the token may use (repeat, or comma-separated); default: the owner's.",
    ),
    expires: int | None = typer.Option(None, "--expires", help="Days until it expires."),
    project: Path = ProjectOption,
) -> None:
    """Create a token and print it (only it) on stdout: it is shown this once."""
    from mlcrew.people.tokens import create_token
    from mlcrew.project import Project

    proj = Project.open(project)
    secret, info = create_token(
        proj.store,
        proj.spec.name,
        name,
        actor=_actor(),
        scope=scope or None,
        expires_days=expires,
        consumers=proj.spec.serving.consumers,
    )
    sys.stdout.write(secret + "\n")
    sys.stdout.flush()
    err_console.print(
        f"token {info.id} for {escape(info.owner)} (scope: {', '.join(info.scope)}); "
        "store it now, it is not shown again",
        soft_wrap=True,
    )


@token_app.command("list")
def token_list(project: Path = ProjectOption, json_out: bool = JsonOption) -> None:
    """Every token of the project: id, owner, scope, expiry, last use, revocation."""
    from mlcrew.people.tokens import list_tokens
    from mlcrew.project import Project

    proj = Project.open(project)
    found = list_tokens(proj.store, proj.spec.name)
    if json_out:
        emit_json({"project": proj.spec.name, "tokens": [t.to_json() for t in found]})
        return
    if not found:
        console.print("no tokens yet: create one with `mlcrew token create NAME`")
        return
    table = Table("id", "owner", "scope", "expires", "last used", "revoked")
    for t in found:
        table.add_row(
            t.id,
            escape(t.owner) + (" (consumer)" if t.kind == "consumer" else ""),
            ", ".join(t.scope),
            (t.expires or "never")[:19],
            (t.last_used or "never")[:19],
            (t.revoked or "-")[:19],
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: str = typer.Argument(..., help="The token's id (tok_..., see `token list`)."),
    project: Path = ProjectOption,
) -> None:
    """Revoke a token: running servers refuse it within a few seconds."""
    from mlcrew.people.tokens import revoke_token
    from mlcrew.project import Project

    proj = Project.open(project)
    info = revoke_token(proj.store, proj.spec.name, token_id, actor=_actor())
    console.print(f"revoked {info.id} of {escape(info.owner)}")


@app.command("audit")
def audit_cmd(
    limit: int = typer.Option(100, "--limit", min=1, max=100_000, help="How many, newest first."),
    project: Path = ProjectOption,
    json_out: bool = JsonOption,
) -> None:
    """The audit log: every run, promotion, rollback and people or token change."""
    from mlcrew.people.audit import events
    from mlcrew.project import Project

    proj = Project.open(project)
    found = events(proj.store, proj.spec.name, limit)
    if json_out:
        emit_json({"project": proj.spec.name, "events": [e.to_json() for e in found]})
        return
    if not found:
        console.print("nothing audited yet")
        return
    table = Table("at", "actor", "action", "target", "details")
    for e in found:
        details = ", ".join(f"{k}={v}" for k, v in e.details.items())
        table.add_row(e.at[:19], escape(e.actor), e.action, escape(e.target), escape(details))
    console.print(table)
