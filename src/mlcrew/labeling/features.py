"""What a model learns from about each item, for pre-labels, the uncertainty order and the
label-error search: the item table's numeric columns; without any, a text task's sentence
embeddings (the `embed` extra) or an image task's pixels."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlcrew.errors import DataError
from mlcrew.spec import Labeling

if TYPE_CHECKING:
    import pyarrow as pa
    from numpy.typing import NDArray


def item_features(
    table: pa.Table,
    labeling: Labeling,
    *,
    exclude: Collection[str] = (),
    project: Path | None = None,
) -> tuple[NDArray[np.float64], list[str]]:
    """The items' feature matrix (one row per table row) and the names of its columns.
    `exclude` names columns that must not be learned from (the spec's target: the answer)."""
    names = numeric_columns(table, labeling.id, exclude)
    if names:
        return numeric_matrix(table, names), names
    if labeling.show == "text" and labeling.column:
        from mlcrew.data.embeddings import TextEmbedder

        texts = [None if v is None else str(v) for v in table.column(labeling.column).to_pylist()]
        vectors = TextEmbedder().embed(texts).astype(np.float64)
        return vectors, [f"embedding_{i}" for i in range(vectors.shape[1])]
    if labeling.show == "image" and labeling.column:
        from mlcrew.data.embeddings import image_features

        images = [str(v) for v in table.column(labeling.column).to_pylist()]
        pixels = image_features(images, root=project).astype(np.float64)
        return pixels, [f"pixel_{i}" for i in range(pixels.shape[1])]
    raise DataError(
        f"the items have no numeric columns besides {labeling.id!r} to learn from; the "
        "uncertainty order and pre-labels from labels need features: use "
        "labeling.order: {by: random} and labeling.prelabel: none (or champion)"
    )


def numeric_columns(table: pa.Table, id_column: str, exclude: Collection[str] = ()) -> list[str]:
    import pyarrow as pa

    return [
        f.name
        for f in table.schema
        if f.name != id_column
        and f.name not in exclude
        and (
            pa.types.is_integer(f.type)
            or pa.types.is_floating(f.type)
            or pa.types.is_boolean(f.type)
        )
    ]


def numeric_matrix(table: pa.Table, names: list[str]) -> NDArray[np.float64]:
    """The named columns as a float matrix; a missing value is its column's median (0 when the
    whole column is missing)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    x = np.empty((table.num_rows, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        column = pc.cast(table.column(name), pa.float64()).to_numpy(zero_copy_only=False)
        missing = np.isnan(column)
        if missing.any():
            fill = float(np.median(column[~missing])) if (~missing).any() else 0.0
            column = np.where(missing, fill, column)
        x[:, j] = column
    return x
