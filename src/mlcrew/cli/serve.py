"""`mlcrew serve`: the prediction service and the overview page."""

from __future__ import annotations

from pathlib import Path

import typer

from mlcrew.cli.common import ProjectOption, console

app = typer.Typer()


@app.command("serve")
def serve_cmd(
    project: Path = ProjectOption,
    port: int | None = typer.Option(
        None, min=0, max=65535, help="Port (default: serving.port; 0 picks a free one)."
    ),
    host: str | None = typer.Option(None, help="Interface (default: serving.host, 127.0.0.1)."),
) -> None:
    """Serve the champion at POST /v1/models/NAME/predict and the overview page at /."""
    import uvicorn

    from mlcrew.api.app import create_app
    from mlcrew.project import Project
    from mlcrew.serving.server import check_port

    proj = Project.open(project)
    host = host or proj.spec.serving.host
    port = check_port(host, proj.spec.serving.port if port is None else port)
    console.print(f"serving {proj.spec.name} on http://{host}:{port}/ (Ctrl-C to stop)")
    uvicorn.run(
        create_app(proj.root, proj.spec, proj.store), host=host, port=port, log_level="warning"
    )
