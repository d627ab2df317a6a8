"""The prediction flow, once for every face: resolve the model by alias or version, validate the
rows, predict, say what looked unfamiliar, and hand the record to the prediction log.

REST (api/fastpath.py), the CLI and Python all call `PredictionService.predict`; `predict()` is
the one-call form for scripts and notebooks.
"""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlcrew.errors import LimitExceeded, ModelInputError, NotFoundError
from mlcrew.registry.versions import CHAMPION, VersionInfo
from mlcrew.serving.loader import LoadedModel, ModelCache
from mlcrew.serving.predlog import LogEntry, PredictionLog
from mlcrew.serving.scoring import score_encoded
from mlcrew.serving.shadow import Shadow
from mlcrew.spec import Serving

if TYPE_CHECKING:
    from mlcrew.serving.metrics import ServiceMetrics
    from mlcrew.store import Store


@dataclass(frozen=True)
class Prediction:
    """What a caller gets back: one prediction per row, the version that made them, warnings."""

    predictions: list[Any]
    name: str
    version: int
    warnings: list[dict[str, Any]] = field(default_factory=list)
    request_id: str = ""

    def to_json(self) -> dict[str, Any]:
        """The REST response shape: {"predictions", "model": {"name", "version"}, "warnings"}."""
        return {
            "predictions": self.predictions,
            "model": {"name": self.name, "version": self.version},
            "warnings": self.warnings,
        }


class PredictionService:
    """Models by alias or version, validated predictions, the prediction log and the shadow
    challenger: everything a prediction needs, held for the life of a server (or a script)."""

    def __init__(
        self,
        store: Store,
        serving: Serving | None = None,
        *,
        metrics: ServiceMetrics | None = None,
        log: bool | None = None,
    ) -> None:
        self.store = store
        self.serving = serving or Serving()
        self.metrics = metrics
        self.models = ModelCache(
            store, size=self.serving.model_cache, allow_nulls=self.serving.allow_nulls
        )
        self.shadow = Shadow(self.models)
        use_log = self.serving.prediction_log if log is None else log
        self.log = PredictionLog(store, shadow=self.shadow, metrics=metrics) if use_log else None
        self._prefix = uuid.uuid4().hex[:8]
        self._ids = itertools.count(1)

    def new_request_id(self) -> str:
        return f"{self._prefix}-{next(self._ids):x}"

    def resolve(
        self, name: str, alias: str | None = None, version: int | None = None
    ) -> tuple[VersionInfo, str | None]:
        """The version to answer with and the alias it was reached by (None for a number)."""
        if version is None:
            ref = alias or CHAMPION
            return self.models.resolve(name, ref), ref
        info = self.models.resolve(name, version)
        if alias is not None:
            held = self.models.resolve(name, alias)
            if held.version != version:
                raise NotFoundError(
                    f"model {name!r}: alias {alias!r} is version {held.version}, not {version}; "
                    "give ?alias= or ?version=, not both"
                )
        return info, alias

    def predict(
        self,
        name: str,
        rows: list[Any],
        *,
        alias: str | None = None,
        version: int | None = None,
        request_id: str | None = None,
        consumer: str | None = None,
    ) -> Prediction:
        """Predict for each row with the model behind `alias` (champion by default) or `version`.

        Raises NotFoundError (no such model, alias or version), LimitExceeded (more rows than
        serving.max_rows) or ModelInputError (rows that do not fit the model's inputs)."""
        start = time.perf_counter()
        if type(rows) is not list:
            raise ModelInputError(
                "rows must be a list of objects",
                [{"row": None, "field": "rows", "error": "expected a list of row objects"}],
            )
        if not rows:
            raise ModelInputError(
                "no rows given", [{"row": None, "field": "rows", "error": "no rows given"}]
            )
        limit = self.serving.max_rows
        if len(rows) > limit:
            raise LimitExceeded(
                f"{len(rows)} rows exceed serving.max_rows={limit}; send at most {limit} rows "
                "per request (or use batch scoring)"
            )
        info, ref = self.resolve(name, alias, version)
        loaded = self.models.load(info)
        predictions, encoded = score_encoded(loaded, rows)
        rid = request_id or self.new_request_id()
        if self.log is not None:
            self.log.append(
                LogEntry(
                    at=time.time(),
                    request_id=rid,
                    name=name,
                    version=info.version,
                    alias=ref,
                    inputs=loaded.inputs,
                    X=encoded.X,
                    unseen=encoded.unseen,
                    predictions=tuple(predictions),
                    latency_ms=(time.perf_counter() - start) * 1000,
                    consumer=consumer,
                )
            )
        if self.metrics is not None:
            self.metrics.predicted(name, info.version, len(rows), ref)
        return Prediction(predictions, name, info.version, encoded.warnings, rid)

    def ready(self, name: str) -> LoadedModel:
        """The champion of `name`, loaded (raises NotFoundError/StoreError if it cannot be)."""
        loaded = self.models.get(name, CHAMPION)
        if self.metrics is not None:
            self.metrics.predicted(name, loaded.info.version, 0, CHAMPION)
        return loaded

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


def predict(
    store: Store,
    name: str,
    rows: list[dict[str, Any]],
    *,
    alias: str | None = None,
    version: int | None = None,
    serving: Serving | None = None,
) -> Prediction:
    """Predict once from Python, as the service would (not written to the prediction log)."""
    return PredictionService(store, serving, log=False).predict(
        name, rows, alias=alias, version=version
    )
