"""`mlcrew report`: a version's evaluation for the domain expert, as Markdown or HTML."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.markup import escape

from mlcrew.cli.common import JsonOption, ProjectOption, console, emit_json

app = typer.Typer()


@app.command("report")
def report_cmd(
    version: str = typer.Argument(
        "champion", help="Version number or alias of the project's model."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Write to this file: .md for Markdown, .html for one self-contained page "
        "(default: Markdown on stdout).",
    ),
    project: Path = ProjectOption,
    json_out: bool = JsonOption,
) -> None:
    """The evaluation of a version in the client's words: value in money beside the baseline's
    and the champion's, gates, slices, confusion matrix, curves and calibration."""
    from mlcrew.errors import DataError
    from mlcrew.project import Project
    from mlcrew.training.report import evaluation, render

    proj = Project.open(project)
    ref: str | int = int(version) if version.isdigit() else version
    doc = evaluation(proj.store, proj.spec.name, ref)
    if json_out and out is None:
        emit_json(doc)
        return
    if out is None:
        console.print(render(doc, "md"), markup=False, highlight=False, soft_wrap=True)
        return
    fmt = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html"}.get(out.suffix.lower())
    if fmt is None:
        raise DataError(f"{out}: name the report .md (Markdown) or .html (a self-contained page)")
    text = render(doc, fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f".{out.name}.part")
    part.write_text(text, encoding="utf-8")
    os.replace(part, out)  # a half-written report never replaces a good one
    if json_out:
        emit_json({"path": str(out), "format": fmt, "version": doc["model"]["version"]})
        return
    console.print(
        f"wrote the evaluation of {escape(doc['model']['name'])} v{doc['model']['version']} "
        f"to {escape(str(out))}"
    )
