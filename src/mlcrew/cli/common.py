"""What every command shares: consoles, the project option, JSON output."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mlcrew.cli.render import console, emit_json, err_console

if TYPE_CHECKING:
    from mlcrew.project import Project

__all__ = ["JsonOption", "ProjectOption", "console", "emit_json", "err_console", "short"]

ProjectOption = typer.Option(
    Path("."), "--project", "-p", help="Project folder (holding mlcrew.yaml).", show_default=True
)
JsonOption = typer.Option(False, "--json", help="Print one JSON document on stdout, nothing else.")


def short(digest: str | None) -> str:
    return (digest or "")[:12]


def open_model_project(project: Path, name: str) -> Project:
    """The project whose model is `name`; a clear error if the project holds another model."""
    from mlcrew.errors import NotFoundError
    from mlcrew.project import Project

    proj = Project.open(project)
    if name != proj.spec.name:
        raise NotFoundError(
            f"this project's model is {proj.spec.name!r}, not {name[:64]!r}; use "
            f"{proj.spec.name!r} or point --project at the project that holds {name[:64]!r}"
        )
    return proj
