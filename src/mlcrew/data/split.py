"""The split stage: a seeded random split, or a time split on order columns (test = last part)."""

from __future__ import annotations

from typing import Any

from mlcrew.data.tables import write_parquet
from mlcrew.errors import DataError
from mlcrew.pipeline.configs import SplitConfig
from mlcrew.pipeline.stage import StageContext, StageResult
from mlcrew.wording import plural


def run(ctx: StageContext[SplitConfig]) -> StageResult:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    split = ctx.config
    table = ctx.inputs.table("ingest.dataset")
    dropped = 0
    if split.drop_missing is not None and split.drop_missing in table.column_names:
        column = table.column(split.drop_missing)
        keep = pc.is_valid(column)
        if pa.types.is_floating(column.type):
            keep = pc.and_(keep, pc.is_finite(column))
        keep = pc.fill_null(keep, False)
        dropped = table.num_rows - pc.sum(keep).as_py() if table.num_rows else 0
        table = table.filter(keep)
    n = table.num_rows
    n_test = round(n * split.test)
    if n_test < 1 or n - n_test < 2:
        raise DataError(
            f"split: {plural(n, 'row')} cannot be cut into train and test with "
            f"test={split.test}; "
            "use more data or change dataset.split.test"
        )
    if split.by == "time":
        missing = [c for c in split.order if c not in table.column_names]
        if missing:
            raise DataError(
                f"dataset.split.order names {missing}, not columns of the dataset; "
                f"columns: {', '.join(table.column_names)}"
            )
        # Stable sort keeps the source order for ties, so the cut is the same every run.
        indices = pc.sort_indices(
            table.append_column("__pos", pa.array(np.arange(n))),
            sort_keys=[(c, "ascending") for c in [*split.order, "__pos"]],
        )
        ordered = table.take(indices)
        train, test = ordered.slice(0, n - n_test), ordered.slice(n - n_test)
    else:
        rng = np.random.default_rng(split.seed or 0)
        test_mask = np.zeros(n, dtype=bool)
        test_mask[rng.permutation(n)[:n_test]] = True
        train = table.filter(pa.array(~test_mask))
        test = table.filter(pa.array(test_mask))
    out_train, out_test = ctx.workdir / "train.parquet", ctx.workdir / "test.parquet"
    write_parquet(train, out_train)
    write_parquet(test, out_test)
    record: dict[str, Any] = {
        "by": split.by,
        "seed": split.seed,
        "train_rows": train.num_rows,
        "test_rows": test.num_rows,
    }
    if dropped:
        record["dropped_missing_target"] = dropped
    return StageResult({"train": out_train, "test": out_test}, record)
