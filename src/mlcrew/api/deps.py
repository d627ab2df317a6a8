"""Typed application state shared by the routers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

from mlcrew.people.gate import IDENTITY, Gate
from mlcrew.people.identity import Identity, local_owner
from mlcrew.serving.loader import ModelCache
from mlcrew.serving.metrics import ServiceMetrics
from mlcrew.serving.predict import PredictionService
from mlcrew.spec import Spec
from mlcrew.store import Store


@dataclass
class AppState:
    project: Path
    spec: Spec
    store: Store
    service: PredictionService
    metrics: ServiceMetrics
    gate: Gate

    @property
    def models(self) -> ModelCache:
        return self.service.models


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.mlcrew
    return state


def get_identity(request: Request) -> Identity:
    """Who is asking, as the outer layer's gate found it (the local owner when called without
    the gate, as tests of the bare FastAPI application do)."""
    who: Identity | None = request.scope.get(IDENTITY)
    return who if who is not None else local_owner()
