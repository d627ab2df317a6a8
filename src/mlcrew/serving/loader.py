"""Served models: aliases resolved through a short-lived cache, models kept loaded by digest.

An alias lookup is remembered for `alias_ttl` seconds (0.25 by default), so a promotion reaches
every worker within that time without a SQL query per request. Loaded models are kept in a
least-recently-used cache bounded by `size` distinct digests. Loading is safe: JSON plus
LightGBM's text format, never code from the artifact.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from mlcrew.errors import MlcrewError, NotFoundError, StoreError
from mlcrew.registry.versions import CHAMPION, VersionInfo, get_version
from mlcrew.serving.fastrow import SingleRowPredictor, single_row_predictor
from mlcrew.serving.validation import InputSchema
from mlcrew.store import Store
from mlcrew.training.model import TabularModel

log = logging.getLogger("mlcrew.serving")

ALIAS_TTL = 0.25
# Distinct (name, alias-or-version) lookups remembered (bad requests must not grow it forever).
MAX_REFS = 1024


@dataclass(frozen=True)
class LoadedModel:
    """A model version ready to answer: registry record, model and its compiled input schema."""

    info: VersionInfo
    model: TabularModel
    inputs: InputSchema
    one_row: SingleRowPredictor | None = None


class ModelCache:
    """Resolves a model by alias or version and keeps recently used versions loaded."""

    def __init__(
        self,
        store: Store,
        *,
        size: int = 4,
        alias_ttl: float = ALIAS_TTL,
        allow_nulls: bool = False,
    ) -> None:
        self.store = store
        self.size = size
        self.alias_ttl = alias_ttl
        self.allow_nulls = allow_nulls
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._refs: OrderedDict[tuple[str, str], tuple[float, VersionInfo | MlcrewError]] = (
            OrderedDict()
        )
        self._lock = threading.RLock()

    def resolve(self, name: str, ref: str | int = CHAMPION) -> VersionInfo:
        """The version an alias (or number) names now, at most `alias_ttl` seconds old.

        If the registry cannot be reached, the last known answer keeps serving."""
        key = (name, str(ref))
        now = time.monotonic()
        with self._lock:
            cached = self._refs.get(key)
            if cached is not None and now - cached[0] < self.alias_ttl:
                found = cached[1]
                if isinstance(found, MlcrewError):
                    # A fresh exception each time: re-raising one object would grow its
                    # traceback (and keep each request's frames alive) until the entry expires.
                    raise type(found)(str(found))
                return found
        try:
            found = get_version(self.store, name, ref)
        except NotFoundError as exc:
            found = NotFoundError(str(exc))
        except SQLAlchemyError as exc:
            if cached is not None and isinstance(cached[1], VersionInfo):
                log.warning("registry unreachable, serving the last known %s/%s: %s", *key, exc)
                # Ask the database again only after another `alias_ttl`, not on every request.
                with self._lock:
                    self._refs[key] = (now, cached[1])
                return cached[1]
            raise StoreError(
                f"the model registry cannot be reached: {exc.__class__.__name__}"
            ) from exc
        with self._lock:
            self._refs[key] = (now, found)
            self._refs.move_to_end(key)
            while len(self._refs) > MAX_REFS:
                self._refs.popitem(last=False)
        if isinstance(found, MlcrewError):
            raise type(found)(str(found))
        return found

    def get(self, name: str, ref: str | int = CHAMPION) -> LoadedModel:
        return self.load(self.resolve(name, ref))

    def load(self, info: VersionInfo) -> LoadedModel:
        """The loaded model of a version (read from the store on first use)."""
        digest = info.model_digest
        with self._lock:
            loaded = self._models.get(digest)
            if loaded is not None:
                self._models.move_to_end(digest)
                if loaded.info is info or loaded.info.version == info.version:
                    return loaded
                return LoadedModel(info, loaded.model, loaded.inputs, loaded.one_row)
            try:
                model = TabularModel.from_json(self.store.artifacts.read_bytes(digest))
            except MlcrewError as exc:
                raise StoreError(
                    f"cannot load {info.name} version {info.version}: {exc}; "
                    "run 'mlcrew store verify'"
                ) from exc
            loaded = LoadedModel(
                info,
                model,
                InputSchema(model.input_schema(), model.target_, self.allow_nulls),
                single_row_predictor(model.booster_),
            )
            self._models[digest] = loaded
            while len(self._models) > self.size:
                self._models.popitem(last=False)
            return loaded

    def served_names(self) -> list[str]:
        """The registered models this cache has loaded (not names a client merely asked for)."""
        with self._lock:
            return sorted({m.info.name for m in self._models.values()})

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return list(self._models.values())
