"""The FastAPI application: one router per resource, assembled here."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from mlcrew import __version__
from mlcrew.api import errors
from mlcrew.api.deps import AppState
from mlcrew.api.routers import health, models, monitoring, pages, registry, runs
from mlcrew.serving.loader import ModelCache
from mlcrew.spec import Spec
from mlcrew.store import Store

STATIC = Path(__file__).parents[1] / "web" / "static"


def create_app(project: Path, spec: Spec, store: Store) -> FastAPI:
    app = FastAPI(
        title=f"mlcrew: {spec.name}",
        version=__version__,
        description=spec.description or "mlcrew prediction service and project overview.",
        # The stock /docs pages load their scripts from a CDN; ours render on the server.
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    app.state.mlcrew = AppState(project=project, spec=spec, store=store, models=ModelCache(store))
    for module in (health, models, registry, runs, monitoring, pages):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app
