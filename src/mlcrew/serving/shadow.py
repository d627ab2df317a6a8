"""The shadow challenger: the `challenger` alias scores the rows the champion answered, off the
request path (in the prediction log's writer), so its outputs sit beside the champion's."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlcrew.errors import MlcrewError, ModelInputError
from mlcrew.serving.loader import ModelCache
from mlcrew.serving.scoring import labels, predict_matrix, score
from mlcrew.serving.validation import InputSchema

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

log = logging.getLogger("mlcrew.serving")

CHALLENGER = "challenger"


@dataclass(frozen=True)
class ShadowScores:
    version: int
    predictions: list[Any]
    # Per row: why the challenger could not score it (its inputs may differ), else None.
    errors: list[str | None]


class Shadow:
    def __init__(self, models: ModelCache, alias: str = CHALLENGER) -> None:
        self.models = models
        self.alias = alias

    def score(
        self,
        name: str,
        served_version: int,
        X: np.ndarray,
        table: pa.StructArray,
        inputs: InputSchema,
    ) -> ShadowScores | None:
        """The challenger's predictions for the rows the served version answered (encoded as `X`
        for `inputs`, and as logged in `table`), or None without another challenger."""
        try:
            info = self.models.resolve(name, self.alias)
            if info.version == served_version:
                return None
            loaded = self.models.load(info)
        except MlcrewError:
            return None
        if loaded.inputs.fields == inputs.fields:  # same inputs: reuse the encoded rows
            predictions = labels(loaded, predict_matrix(loaded, X))
            return ShadowScores(info.version, predictions, [None] * len(predictions))
        # Other inputs: rows as the champion received them, validated for the challenger.
        rows = table.to_pylist()
        try:
            predictions, _ = score(loaded, rows)
            return ShadowScores(info.version, predictions, [None] * len(rows))
        except ModelInputError:
            pass
        # Some rows do not fit the challenger's inputs: score them one by one.
        out: list[Any] = []
        errors: list[str | None] = []
        for row in rows:
            try:
                out.extend(score(loaded, [row])[0])
                errors.append(None)
            except ModelInputError as exc:
                out.append(None)
                errors.append(str(exc)[:200])
        return ShadowScores(info.version, out, errors)
