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
        _run_workers("mlcrew.api.app:app_from_env", host, port, workers, options)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_workers(
    target: str, host: str, port: int, workers: int, options: dict[str, object]
) -> None:
    """Serve the app that the factory `target` ("module:function") makes from `workers`
    processes: forked after the shared imports where fork exists, else uvicorn's own."""
    import importlib

    from prometheus_client import multiprocess

    from mlcrew.api.app import preload
    from mlcrew.serving.workers import can_fork, serve_forked

    if not can_fork():
        import uvicorn

        uvicorn.run(target, factory=True, host=host, port=port, workers=workers, **options)  # type: ignore[arg-type]
        return
    module, _, name = target.partition(":")
    factory = getattr(importlib.import_module(module), name)
    preload()
    code = serve_forked(
        factory,
        host=host,
        port=port,
        workers=workers,
        on_worker_exit=multiprocess.mark_process_dead,
        **options,
    )
    if code:
        raise typer.Exit(code)


@app.command("server")
def server_cmd(
    db: str = typer.Option(..., "--db", help="Metadata database URL shared by the projects."),
    artifacts: str = typer.Option(..., "--artifacts", help="Artifact store (folder or URL)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, min=0, max=65535, help="Port (0 picks a free one)."),
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes."),
) -> None:
    """Serve every project of one store, each at /p/NAME/ (the routes of 'mlcrew serve'), with
    the project list at / (JSON at /v1/projects). Projects run later appear without a restart."""
    # Several workers: their metrics meet in one folder, set before prometheus_client loads.
    metrics_dir = tempfile.mkdtemp(prefix="mlcrew-metrics-") if workers > 1 else None
    if metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        _serve_host(db, artifacts, host, port, workers)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve_host(db: str, artifacts: str, host: str, port: int, workers: int) -> None:
    from mlcrew.api.host import open_host_store
    from mlcrew.people.gate import require_an_admin
    from mlcrew.serving.server import check_port

    store = open_host_store(db, artifacts)  # a clear error now, not in every worker
    try:
        require_an_admin(store)
        count = len(store.projects())
    finally:
        store.close()
    port = check_port(host, port)
    plural = "s" if workers > 1 else ""
    console.print(
        f"serving {count} project{'s' if count != 1 else ''} of {store.db_label} on "
        f"http://{host}:{port}/ with {workers} worker{plural} (Ctrl-C to stop)"
    )
    options: dict[str, object] = {"log_level": "warning", "access_log": False}
    os.environ["MLCREW_DB_URL"] = db
    os.environ["MLCREW_ARTIFACTS"] = artifacts
    if workers == 1:
        import uvicorn

        from mlcrew.api.host import host_from_env

        uvicorn.run(host_from_env(), host=host, port=port, **options)  # type: ignore[arg-type]
        return
    _run_workers("mlcrew.api.host:host_from_env", host, port, workers, options)
