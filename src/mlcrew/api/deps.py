"""Typed application state shared by the routers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote

from fastapi import HTTPException, Request

from mlcrew.labeling.labelspec import LabelSpecs
from mlcrew.people.gate import IDENTITY, Denial, Gate, is_form
from mlcrew.people.identity import Identity, local_owner
from mlcrew.people.sessions import CSRF_FIELD
from mlcrew.serving.loader import ModelCache
from mlcrew.serving.metrics import ServiceMetrics
from mlcrew.serving.predict import PredictionService
from mlcrew.spec import Spec
from mlcrew.store import Store


@dataclass
class AppState:
    project: Path | None  # None under `mlcrew server`: no project folder on that host
    spec: Spec
    store: Store
    service: PredictionService
    metrics: ServiceMetrics
    gate: Gate
    label_specs: LabelSpecs | None = None

    @property
    def models(self) -> ModelCache:
        return self.service.models

    def labels(self) -> LabelSpecs:
        """The label spec in force (read from the store, cached briefly)."""
        if self.label_specs is None:
            self.label_specs = LabelSpecs(self.store)
        return self.label_specs


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.mlcrew
    return state


def get_identity(request: Request) -> Identity:
    """Who is asking, as the outer layer's gate found it (the local owner when called without
    the gate, as tests of the bare FastAPI application do)."""
    who: Identity | None = request.scope.get(IDENTITY)
    return who if who is not None else local_owner()


async def authorize(request: Request) -> None:
    """The gate for every FastAPI route (the outer layer guards predict and the probes with
    the same `Gate.admit`): 401 without credentials, 403 without the right or the session's
    CSRF token; a browser asking for a page without signing in is sent to /login."""
    scope = request.scope
    template = getattr(scope.get("route"), "path", None)
    form = None
    if request.method == "POST" and is_form(scope):
        body = (await request.body()).decode("utf-8", "replace")
        form = next((v for k, v in parse_qsl(body) if k == CSRF_FIELD), None)
    who = get_state(request).gate.admit(scope, template, form)
    if isinstance(who, Denial):
        accept = request.headers.get("accept", "")
        if who.status == 401 and request.method == "GET" and "text/html" in accept:
            root = str(scope.get("root_path", "")).rstrip("/")
            target = quote(request.url.path, safe="/")
            location = f"{root}/login?next={target}"
            raise HTTPException(303, "sign in first", {"location": location})
        raise HTTPException(who.status, who.detail, dict(_text(h) for h in who.headers))


def _text(header: tuple[bytes, bytes]) -> tuple[str, str]:
    return header[0].decode("latin-1"), header[1].decode("latin-1")
