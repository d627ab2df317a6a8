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
    # Not mlcrew.api.app: prometheus_client must not load before its folder is set (below).
    from mlcrew.people.gate import LISTEN_ENV, Gate
    from mlcrew.project import Project
    from mlcrew.serving.server import check_port
    from mlcrew.serving.workers import PROJECT_ENV

    proj = Project.open(project)
    serving = proj.spec.serving
    host = host or serving.host
    # Sign-in required (people exist, or beyond loopback) with no admin: refuse at once.
    gate = Gate(proj.store, proj.spec.name, serving, host)
    gate.check_startup()
    port = check_port(host, serving.port if port is None else port)
    workers = workers or serving.workers
    plural = "s" if workers > 1 else ""
    console.print(
        f"serving {proj.spec.name} on http://{host}:{port}/ with {workers} worker{plural} "
        "(Ctrl-C to stop)"
    )
    if gate.required():
        console.print("sign-in required: people at /login, programs with a bearer token")
    options = {"log_level": "warning", "access_log": False}
    if workers == 1:
        import uvicorn

        from mlcrew.api.app import create_app

        app_ = create_app(proj.root, proj.spec, proj.store, listen_host=host)
        uvicorn.run(app_, host=host, port=port, **options)  # type: ignore[arg-type]
        return
    # Several workers: their metrics meet in one folder (set before prometheus_client loads:
    # it picks its mode at import), and each opens the project named by MLCREW_PROJECT itself.
    proj.close()
    metrics_dir = tempfile.mkdtemp(prefix="mlcrew-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ[PROJECT_ENV] = str(proj.root)
    os.environ[LISTEN_ENV] = host
    try:
        _run_workers(host, port, workers, options)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_workers(host: str, port: int, workers: int, options: dict[str, object]) -> None:
    from prometheus_client import multiprocess

    from mlcrew.api.app import app_from_env, preload
    from mlcrew.serving.workers import can_fork, serve_forked

    if not can_fork():
        import uvicorn

        target = "mlcrew.api.app:app_from_env"
        uvicorn.run(target, factory=True, host=host, port=port, workers=workers, **options)  # type: ignore[arg-type]
        return
    preload()
    code = serve_forked(
        app_from_env,
        host=host,
        port=port,
        workers=workers,
        on_worker_exit=multiprocess.mark_process_dead,
        **options,
    )
    if code:
        raise typer.Exit(code)
