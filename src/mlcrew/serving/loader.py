"""Loading served models from the registry, cached by model digest (safe: JSON + LightGBM text)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from mlcrew.registry.versions import CHAMPION, VersionInfo, get_version
from mlcrew.store import Store
from mlcrew.training.model import TabularModel


@dataclass(frozen=True)
class LoadedModel:
    info: VersionInfo
    model: TabularModel


class ModelCache:
    """Resolves an alias on each call and keeps each model digest loaded once: when the alias
    moves, the next request serves the new version (the seam for hot swap)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._models: dict[str, TabularModel] = {}
        self._lock = threading.Lock()

    def get(self, name: str, ref: str | int = CHAMPION) -> LoadedModel:
        info = get_version(self.store, name, ref)
        with self._lock:
            model = self._models.get(info.model_digest)
            if model is None:
                model = TabularModel.from_json(self.store.artifacts.read_bytes(info.model_digest))
                self._models[info.model_digest] = model
        return LoadedModel(info, model)
