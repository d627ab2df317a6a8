"""`mlcrew serve`: the prediction service and the overview page."""

from __future__ import annotations

import os
import shutil
import tempfile
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
    workers: int | None = typer.Option(
        None, min=1, max=64, help="Worker processes (default: serving.workers, 1)."
    ),
) -> None:
    """Serve the champion at POST /v1/models/NAME/predict and the overview page at /.

    Logs one line per request on stderr; /metrics for Prometheus, /healthz and /readyz."""
    import uvicorn

    from mlcrew.api.app import PROJECT_ENV, create_app
    from mlcrew.project import Project
    from mlcrew.serving.server import check_port

    proj = Project.open(project)
    serving = proj.spec.serving
    host = host or serving.host
    port = check_port(host, serving.port if port is None else port)
    workers = workers or serving.workers
    plural = "s" if workers > 1 else ""
    console.print(
        f"serving {proj.spec.name} on http://{host}:{port}/ with {workers} worker{plural} "
        "(Ctrl-C to stop)"
    )
    options = {"host": host, "port": port, "log_level": "warning", "access_log": False}
    if workers == 1:
        uvicorn.run(create_app(proj.root, proj.spec, proj.store), **options)  # type: ignore[arg-type]
        return
    # Each worker opens the project itself; their metrics meet in one multiprocess folder.
    proj.close()
    metrics_dir = tempfile.mkdtemp(prefix="mlcrew-metrics-")
    os.environ[PROJECT_ENV] = str(proj.root)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "mlcrew.api.app:app_from_env",
            factory=True,
            workers=workers,
            **options,  # type: ignore[arg-type]
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
