"""The FastAPI application: one router per resource, assembled here, inside the service's outer
layer (api/fastpath.py) that answers predict and counts, times and logs every request."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from mlcrew import __version__
from mlcrew.api import errors, openapi
from mlcrew.api.deps import AppState
from mlcrew.api.fastpath import ServiceMiddleware
from mlcrew.api.routers import health, models, monitoring, pages, registry, runs
from mlcrew.errors import MlcrewError, ProjectError
from mlcrew.serving.access import AccessLog
from mlcrew.serving.metrics import ServiceMetrics
from mlcrew.serving.predict import PredictionService
from mlcrew.serving.workers import PROJECT_ENV
from mlcrew.spec import Spec
from mlcrew.store import Store

STATIC = Path(__file__).parents[1] / "web" / "static"
SWITCH_SECONDS = 0.001


def create_app(
    project: Path, spec: Spec, store: Store, *, access_log: bool | None = None
) -> FastAPI:
    metrics = ServiceMetrics()
    service = PredictionService(store, spec.serving, metrics=metrics)
    use_access = spec.serving.access_log if access_log is None else access_log
    access = AccessLog() if use_access else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Load the champion before the first request needs it (else /readyz says why).
        with contextlib.suppress(MlcrewError):
            service.ready(spec.name)
        # What is loaded now lives as long as the server: keep it out of the collector's
        # full passes, which would otherwise walk it all and stall requests for many ms.
        gc.collect()
        gc.freeze()
        # The log writer holds the interpreter lock for short bursts; hand it back to the
        # request loop within 1 ms instead of the default 5 ms.
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, SWITCH_SECONDS))
        yield
        sys.setswitchinterval(switch)
        gc.unfreeze()
        service.close()
        if access is not None:
            access.close()

    app = FastAPI(
        title=f"mlcrew: {spec.name}",
        version=__version__,
        description=spec.description or "mlcrew prediction service and project overview.",
        # The stock /docs pages load their scripts from a CDN; ours render on the server.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        # FastAPI's OpenTelemetry bridge checks its providers on every request; our metrics
        # are Prometheus' (serving/metrics.py).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    errors.install(app)
    app.state.mlcrew = AppState(
        project=project, spec=spec, store=store, service=service, metrics=metrics
    )
    for module in (health, models, registry, runs, monitoring, pages):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_middleware(ServiceMiddleware, service=service, metrics=metrics, access=access)
    app.openapi = openapi.builder(app, service, spec.name)  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """The app of the project named by MLCREW_PROJECT (uvicorn's factory for worker processes)."""
    from mlcrew.project import Project
    from mlcrew.serving.loader import import_lightgbm_lean

    import_lightgbm_lean()
    root = os.environ.get(PROJECT_ENV)
    if not root:
        raise ProjectError(f"set {PROJECT_ENV} to the project folder to serve")
    proj = Project.open(Path(root))
    return create_app(proj.root, proj.spec, proj.store)
