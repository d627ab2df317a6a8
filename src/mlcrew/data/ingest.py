"""The ingest stage: sources -> DuckDB tables -> SQL transforms -> the dataset as Parquet.

User SQL runs after every source is loaded and external access is switched off, so a transform
can read only the project's own tables: no files, no network.
"""

from __future__ import annotations

from typing import Any

import duckdb

from mlcrew.data.tables import connect, fetch_arrow, load_table, scalar, schema_of, write_parquet
from mlcrew.errors import DataError
from mlcrew.pipeline.configs import IngestConfig, IngestSource
from mlcrew.pipeline.stage import InputView, StageContext, StageResult
from mlcrew.wording import plural


def sandbox(con: duckdb.DuckDBPyConnection) -> None:
    """From here on, SQL reads only tables already loaded and cannot change any setting."""
    con.execute("SET enable_external_access=false")
    con.execute("SET lock_configuration=true")


def apply_transforms(
    con: duckdb.DuckDBPyConnection, transforms: dict[str, str], where: str = "mlcrew.yaml"
) -> dict[str, int]:
    """Create each transform as a table, in order; each must be one SELECT statement."""
    rows: dict[str, int] = {}
    for name, sql in transforms.items():
        try:
            statements = con.extract_statements(sql)
            # PIVOT parses as one statement of type MULTI; it is still a query.
            query_types = (duckdb.StatementType.SELECT, duckdb.StatementType.MULTI)
            if len(statements) != 1 or statements[0].type not in query_types:
                raise DataError(
                    f"transform {name!r} must be exactly one SELECT statement "
                    f"(found {plural(len(statements), 'statement')}); fix transforms.{name} in "
                    f"{where}"
                )
            con.execute(f'CREATE TABLE "{name}" AS {sql}')
        except duckdb.Error as exc:
            raise DataError(
                f"transform {name!r} failed: {str(exc).splitlines()[0]}; fix transforms.{name} "
                f"in {where}"
            ) from None
        rows[name] = int(scalar(con, f'SELECT count(*) FROM "{name}"'))
    return rows


def load_source(
    con: duckdb.DuckDBPyConnection, name: str, source: IngestSource, inputs: InputView
) -> dict[str, Any]:
    """Materialise one source as table `name`; a glob's files are read one by one (so errors
    name the file) and stacked by column name."""
    options = source.model_dump()
    ref = f"source.{name}"
    if not source.glob:
        where = f"source {name!r} ({source.path})"
        return load_table(con, name, inputs.path(ref), source.format, where, options)
    parts: list[str] = []
    record: dict[str, Any] = {"rows": 0, "files": []}
    for i, (file, path) in enumerate(inputs.files(ref)):
        part = f"__{name}_{i}"
        read = load_table(con, part, path, source.format, f"source {name!r} ({file})", options)
        record["rows"] += read["rows"]
        record["files"].append({"name": file, **read})
        if source.filename:
            con.execute(f'ALTER TABLE "{part}" ADD COLUMN "{source.filename}" VARCHAR')
            con.execute(f'UPDATE "{part}" SET "{source.filename}" = ?', [file])
        parts.append(f'SELECT * FROM "{part}"')
    try:
        con.execute(f'CREATE TABLE "{name}" AS ' + " UNION ALL BY NAME ".join(parts))
    except duckdb.Error as exc:
        raise DataError(
            f"source {name!r} ({source.path}): the files do not stack into one table: "
            f"{str(exc).splitlines()[0]}; give them the same columns and types"
        ) from None
    for i in range(len(parts)):
        con.execute(f'DROP TABLE "__{name}_{i}"')
    return record


def run(ctx: StageContext[IngestConfig]) -> StageResult:
    con = connect()
    record: dict[str, Any] = {"tables": {}}
    for name, source in ctx.config.sources.items():
        record["tables"][name] = load_source(con, name, source, ctx.inputs)
    sandbox(con)
    for name, count in apply_transforms(con, ctx.config.transforms).items():
        record["tables"][name] = {"rows": count}
    dataset = ctx.config.dataset
    table = fetch_arrow(con, f'SELECT * FROM "{dataset}"')
    if table.num_rows == 0:
        raise DataError(f"dataset {dataset!r} has no rows; check the sources and transforms")
    out = ctx.workdir / "dataset.parquet"
    write_parquet(table, out)
    record["dataset"] = {"name": dataset, "rows": table.num_rows, "columns": schema_of(table)}
    return StageResult({"dataset": out}, record)
