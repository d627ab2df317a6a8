"""`mlcrew promote` and `mlcrew rollback`: the audited ways an alias moves."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from mlcrew.cli.common import JsonOption, ProjectOption, console, emit_json, open_model_project

app = typer.Typer()


@app.command("promote")
def promote_cmd(
    name: str = typer.Argument(..., help="The model's name (the spec's `name`)."),
    version: int = typer.Argument(..., min=1, help="The version to promote."),
    reason: str = typer.Option(..., "--reason", help="Why: it goes into the audit log."),
    alias: str = typer.Option("champion", "--alias", "-a", help="The alias to move."),
    force: bool = typer.Option(
        False, "--force", help="Skip the gates (recorded as forced; still needs --reason)."
    ),
    project: Path = ProjectOption,
    json_out: bool = JsonOption,
) -> None:
    """Point an alias at a version, if its verdict passed and it is not worse than the current
    holder on the objective metric (by more than registry.margin) on the same test data.

    Exit code: 0 when moved (or already there); 3 when the gates refused it."""
    from mlcrew.registry import promote

    proj = open_model_project(project, name)
    move = promote(
        proj.store,
        name,
        version,
        alias=alias,
        reason=reason,
        force=force,
        margin=proj.spec.registry.margin,
    )
    if json_out:
        emit_json({"name": name, "moved": move is not None, "event": move and move.to_json()})
        return
    if move is None:
        console.print(f"{escape(alias)} of {escape(name)} already points to v{version}")
        return
    before = f"v{move.from_version}" if move.from_version is not None else "none"
    forced = " [red](forced)[/]" if move.forced else ""
    console.print(f"{escape(alias)} of {escape(name)}: {before} -> v{version}{forced}")


@app.command("rollback")
def rollback_cmd(
    name: str = typer.Argument(..., help="The model's name (the spec's `name`)."),
    alias: str = typer.Option("champion", "--alias", "-a", help="The alias to move back."),
    reason: str = typer.Option("", "--reason", help="Why (default: 'rollback from vN')."),
    project: Path = ProjectOption,
    json_out: bool = JsonOption,
) -> None:
    """Move an alias back to the version that held it before its current holder."""
    from mlcrew.registry import rollback

    proj = open_model_project(project, name)
    move = rollback(proj.store, name, alias=alias, reason=reason)
    if json_out:
        emit_json({"name": name, "moved": True, "event": move.to_json()})
        return
    console.print(
        f"{escape(alias)} of {escape(name)} rolled back: v{move.from_version} -> v{move.to_version}"
    )
