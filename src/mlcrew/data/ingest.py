"""The ingest stage: sources -> DuckDB tables -> SQL transforms -> the dataset as Parquet.

User SQL runs after every source is loaded and external access is switched off, so a transform
can read only the project's own tables: no files, no network.
"""

from __future__ import annotations

from typing import Any

from mlcrew.data.tables import connect, fetch_arrow, load_file, scalar, schema_of, write_parquet
from mlcrew.errors import DataError
from mlcrew.pipeline.stage import StageContext, StageResult


def run(ctx: StageContext) -> StageResult:
    import duckdb

    con = connect()
    record: dict[str, Any] = {"tables": {}}
    for name, raw in ctx.config["sources"].items():
        path = ctx.inputs[f"source.{name}"]
        rows = load_file(con, name, path, raw["format"], f"source {name!r}", raw)
        record["tables"][name] = {"rows": rows}
    con.execute("SET enable_external_access=false")
    for name, sql in ctx.config["transforms"].items():
        try:
            con.execute(f'CREATE TABLE "{name}" AS {sql}')
        except duckdb.Error as exc:
            raise DataError(
                f"transform {name!r} failed: {str(exc).splitlines()[0]}; fix transforms.{name} "
                "in mlcrew.yaml"
            ) from None
        record["tables"][name] = {"rows": int(scalar(con, f'SELECT count(*) FROM "{name}"'))}
    dataset = ctx.config["dataset"]["from"]
    table = fetch_arrow(con, f'SELECT * FROM "{dataset}"')
    if table.num_rows == 0:
        raise DataError(f"dataset {dataset!r} has no rows; check the sources and transforms")
    out = ctx.workdir / "dataset.parquet"
    write_parquet(table, out)
    record["dataset"] = {"name": dataset, "rows": table.num_rows, "columns": schema_of(table)}
    return StageResult({"dataset": out}, record)
