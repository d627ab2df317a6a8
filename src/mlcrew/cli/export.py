"""`mlcrew export`: a model version in another tool's format (MLflow pyfunc)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.markup import escape

from mlcrew.cli.common import JsonOption, ProjectOption, console, emit_json, err_console

app = typer.Typer()


class Format(StrEnum):
    mlflow = "mlflow"


@app.command("export")
def export_cmd(
    name: str = typer.Argument(..., help="Model name (the spec's name)."),
    version: str = typer.Argument(..., help="Version number or alias (champion, ...)."),
    target: Path = typer.Argument(..., metavar="DIR", help="Folder to create."),
    fmt: Format = typer.Option(Format.mlflow, "--format", help="Format to write."),
    project: Path = ProjectOption,
    json_out: bool = JsonOption,
) -> None:
    """Write a model version as an MLflow pyfunc model (loads with mlflow.pyfunc.load_model)."""
    from mlcrew.project import Project
    from mlcrew.serving.export import export_model
    from mlcrew.serving.package import load_package

    proj = Project.open(project)
    package = load_package(proj.store, name, int(version) if version.isdigit() else version)
    for warning in package.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    path = export_model(package, fmt.value, target.resolve())
    if json_out:
        emit_json(
            {
                "name": package.info.name,
                "version": package.info.version,
                "format": fmt.value,
                "path": str(path),
                "model_digest": package.info.model_digest,
            }
        )
        return
    console.print(
        f"exported {escape(name)} version {package.info.version} as an MLflow model to "
        f"{escape(str(path))}; load it with mlflow.pyfunc.load_model({str(path)!r})"
    )
