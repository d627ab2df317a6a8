"""The ingest stage: sources -> DuckDB tables -> SQL transforms -> the dataset as Parquet.

User SQL runs after every source is loaded and external access is switched off, so a transform
can read only the project's own tables: no files, no network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcrew.data.tables import connect, fetch_arrow, load_file, scalar, schema_of, write_parquet
from mlcrew.errors import DataError
from mlcrew.pipeline.configs import IngestConfig
from mlcrew.pipeline.stage import StageContext, StageResult
from mlcrew.wording import plural

if TYPE_CHECKING:
    import duckdb


def sandbox(con: duckdb.DuckDBPyConnection) -> None:
    """From here on, SQL reads only tables already loaded and cannot change any setting."""
    con.execute("SET enable_external_access=false")
    con.execute("SET lock_configuration=true")


def apply_transforms(
    con: duckdb.DuckDBPyConnection, transforms: dict[str, str], where: str = "mlcrew.yaml"
) -> dict[str, int]:
    """Create each transform as a table, in order; each must be one SELECT statement."""
    import duckdb

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


def run(ctx: StageContext[IngestConfig]) -> StageResult:
    con = connect()
    record: dict[str, Any] = {"tables": {}}
    for name, source in ctx.config.sources.items():
        path = ctx.inputs.path(f"source.{name}")
        options = source.model_dump()
        rows = load_file(con, name, path, source.format, f"source {name!r}", options)
        record["tables"][name] = {"rows": rows}
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
