"""Units, imported by pipeline/tidy.py: editing this file re-runs the `tidy` transform."""

import pyarrow as pa
import pyarrow.compute as pc


def grams_to_kg(grams: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.divide(pc.cast(grams, pa.float64()), 1000.0)
