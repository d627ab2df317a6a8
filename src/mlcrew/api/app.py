"""The service as a server runs it: the outer layer (api/fastpath.py) that answers predict and
the probes and counts, times and logs every request, around the FastAPI application (one router
per resource) that serves everything else.

A worker is ready, and answers predictions, before FastAPI is even imported: the application
is built on a background thread once the champion is loaded (about a third of a second that
used to delay every start), and a request for one of its routes waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from mlcrew import __version__
from mlcrew.api.fastpath import Receive, Scope, Send, ServiceMiddleware
from mlcrew.api.labeling_fast import LabelingFastPath
from mlcrew.errors import MlcrewError, ProjectError
from mlcrew.people.gate import LISTEN_ENV, Gate
from mlcrew.serving.access import AccessLog
from mlcrew.serving.metrics import ServiceMetrics
from mlcrew.serving.predict import PredictionService
from mlcrew.serving.workers import PROJECT_ENV
from mlcrew.spec import Spec
from mlcrew.store import Store

if TYPE_CHECKING:
    from fastapi import FastAPI

STATIC = Path(__file__).parents[1] / "web" / "static"
SWITCH_SECONDS = 0.001


class ServiceApp:
    """The ASGI application `mlcrew serve` runs (and tests and the demo run in a thread)."""

    def __init__(
        self,
        project: Path | None,
        spec: Spec,
        store: Store,
        *,
        access_log: bool | None = None,
        listen_host: str | None = None,
        require_sign_in: bool = False,
    ) -> None:
        # `project` is the project folder; None when served from the store alone (`mlcrew
        # server`), where stage status compares with the sources of the latest run.
        self.project, self.spec, self.store = project, spec, store
        self.gate = Gate(store, spec.name, spec.serving, listen_host, require=require_sign_in)
        self.metrics = ServiceMetrics()
        self.service = PredictionService(store, spec.serving, metrics=self.metrics)
        use_access = spec.serving.access_log if access_log is None else access_log
        self.access = AccessLog() if use_access else None
        self.labeling = LabelingFastPath(store)
        self.outer = ServiceMiddleware(
            self._forward,
            service=self.service,
            metrics=self.metrics,
            access=self.access,
            project=spec.name,
            gate=self.gate,
            labeling=self.labeling,
            modeled=spec.modeled,
        )
        self._api: FastAPI | None = None
        self._api_lock = threading.Lock()
        self._building: asyncio.Future[FastAPI] | None = None
        self._switch = sys.getswitchinterval()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self.outer(scope, receive, send)

    @property
    def api(self) -> FastAPI:
        """The FastAPI application (built now if it is not yet)."""
        with self._api_lock:
            if self._api is None:
                self._api = build_api(self)
            return self._api

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        api = self._api
        if api is None:
            if self._building is None:  # served without a lifespan: build on first need
                self._building = asyncio.get_running_loop().run_in_executor(None, self._build)
            api = await asyncio.shield(self._building)
        await api(scope, receive, send)

    def _build(self) -> FastAPI:
        api = self.api
        gc.freeze()  # like what startup loaded: it lives as long as the server
        return api

    def build_soon(self) -> None:
        """Start building the FastAPI application on a background thread (after `startup`;
        the lifespan does, and so does a host serving several projects)."""
        if self._building is None:
            self._building = asyncio.get_running_loop().run_in_executor(None, self._build)

    def startup(self) -> None:
        self.gate.check_startup()
        # Load the champion before the first request needs it (else /readyz says why).
        with contextlib.suppress(MlcrewError):
            self.service.ready(self.spec.name)
        # What is loaded now lives as long as the server: keep it out of the collector's
        # full passes, which would otherwise walk it all and stall requests for many ms.
        gc.collect()
        gc.freeze()
        # The log writer holds the interpreter lock for short bursts; hand it back to the
        # request loop within 1 ms instead of the default 5 ms.
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch, SWITCH_SECONDS))

    def shutdown(self) -> None:
        sys.setswitchinterval(self._switch)
        gc.unfreeze()
        self.service.close()
        self.labeling.close()
        if self.access is not None:
            self.access.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)[:500]})
                    return
                self.build_soon()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._building is not None:  # a stop during the build waits for it
                    with contextlib.suppress(Exception):
                        await self._building
                self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def build_api(app: ServiceApp) -> FastAPI:
    """The FastAPI application behind the outer layer: pages, registry, runs, monitoring and
    the documented routes, sharing `app`'s service, metrics and store."""
    from fastapi import Depends, FastAPI
    from fastapi.staticfiles import StaticFiles

    from mlcrew.api import errors, openapi
    from mlcrew.api.deps import AppState, authorize
    from mlcrew.api.routers import (
        audit,
        data_pages,
        datasets,
        evaluation_pages,
        experiment_pages,
        experiments,
        health,
        label_pages,
        labeling,
        labeling_pages,
        login,
        models,
        monitoring,
        monitoring_pages,
        pages,
        people,
        registry,
        review,
        runs,
    )

    spec = app.spec
    api = FastAPI(
        title=f"mlcrew: {spec.name}",
        version=__version__,
        description=spec.description or "mlcrew prediction service and project overview.",
        # The stock /docs pages load their scripts from a CDN; ours render on the server.
        docs_url=None,
        redoc_url=None,
        # FastAPI's OpenTelemetry bridge checks its providers on every request; our metrics
        # are Prometheus' (serving/metrics.py).
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # Every route passes the gate: its action (people/routes.py) must be the caller's.
        dependencies=[Depends(authorize)],
    )
    errors.install(api)
    api.state.mlcrew = AppState(
        project=app.project,
        spec=spec,
        store=app.store,
        service=app.service,
        metrics=app.metrics,
        gate=app.gate,
        label_specs=app.labeling.specs,
    )
    modules = (
        health,
        models,
        registry,
        runs,
        monitoring,
        pages,
        login,
        people,
        audit,
        labeling,
        label_pages,
        review,
        labeling_pages,
        experiments,
        experiment_pages,
        evaluation_pages,
        monitoring_pages,
        datasets,
        data_pages,
    )
    for module in modules:
        api.include_router(module.router)
    api.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    api.openapi = openapi.builder(api, app.service, spec.name)  # type: ignore[method-assign]
    return api


def create_app(
    project: Path | None,
    spec: Spec,
    store: Store,
    *,
    access_log: bool | None = None,
    listen_host: str | None = None,
    require_sign_in: bool = False,
) -> ServiceApp:
    """The service for a project (`access_log` overrides `serving.access_log`; off loopback
    `listen_host` makes sign-in required)."""
    return ServiceApp(
        project,
        spec,
        store,
        access_log=access_log,
        listen_host=listen_host,
        require_sign_in=require_sign_in,
    )


def preload() -> None:
    """Import in a parent what each forked worker would otherwise import on its own at start
    (model loading needs NumPy), so the workers share one copy and start sooner."""
    import numpy  # noqa: F401

    import mlcrew.training.native  # noqa: F401


def app_from_env() -> ServiceApp:
    """The app of the project named by MLCREW_PROJECT (uvicorn's factory for worker processes)."""
    from mlcrew.project import Project

    root = os.environ.get(PROJECT_ENV)
    if not root:
        raise ProjectError(f"set {PROJECT_ENV} to the project folder to serve")
    proj = Project.open(Path(root))
    return create_app(proj.root, proj.spec, proj.store, listen_host=os.environ.get(LISTEN_ENV))
