"""Typed application state shared by the routers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

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

    @property
    def models(self) -> ModelCache:
        return self.service.models


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.mlcrew
    return state
