"""The ingest stage: sources and transforms as cached, versioned nodes (data/nodes.py).

Each source is read once per content (its digest) into Parquet; each transform runs on its own
inputs only (data/transforms.py), and only when its key is new. The stage's outputs are the
catalog (every table's digest) and, when the spec names one, the dataset table that the model
is trained on.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import duckdb

from mlcrew.data.nodes import Node, NodeStore, node_key
from mlcrew.data.tables import connect, fetch_arrow, load_table, write_parquet
from mlcrew.data.transforms import embedding_model, inputs_of, run_transform
from mlcrew.errors import DataError
from mlcrew.pipeline.configs import IngestConfig, IngestSource
from mlcrew.pipeline.stage import InputView, StageContext, StageResult
from mlcrew.spec import canonical_json

CATALOG = "mlcrew.catalog/1"


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
            have = [r[0] for r in con.execute(f'DESCRIBE "{part}"').fetchall()]
            if source.filename in have:
                raise DataError(
                    f"source {name!r} ({file}) already has a column {source.filename!r}; give "
                    f"sources.{name}.filename another name"
                )
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


def _source_node(
    ctx: StageContext[IngestConfig], nodes: NodeStore, name: str, source: IngestSource
) -> Node:
    data = ctx.inputs.digest(f"source.{name}")
    key = node_key(name, "source", source.model_dump(mode="json"), {"data": data})
    parents = [{"name": f"source:{source.path}", "version": None, "digest": data}]
    hit = nodes.cached(key, name, "source", parents)
    if hit is not None:
        return hit
    con = connect()
    try:
        read = load_source(con, name, source, ctx.inputs)
        table = fetch_arrow(con, f'SELECT * FROM "{name}"')
    finally:
        con.close()
    out = _output(ctx, name)
    detail = {"path": source.path, **{k: v for k, v in read.items() if k != "rows"}}
    try:
        write_parquet(table, out)
        return nodes.save(name, "source", key, out, parents, detail)
    finally:
        out.unlink(missing_ok=True)  # moved into the store, unless something failed


def _output(ctx: StageContext[IngestConfig], name: str) -> Path:
    """Where a node writes its table: beside the store's blobs when it can, so storing the
    output is a rename, not a second write of every byte."""
    return ctx.store.artifacts.scratch_file(".parquet") or ctx.workdir / f"{name}.parquet"


def run(ctx: StageContext[IngestConfig]) -> StageResult:
    cfg = ctx.config
    nodes = NodeStore(ctx.store, ctx.run_id, record=not ctx.dry_run, fresh=ctx.fresh)
    made: dict[str, Node] = {}
    scratch = Path(tempfile.mkdtemp(prefix="in-", dir=ctx.workdir))
    paths: dict[str, Path] = {}

    def path_of(table: str) -> Path:
        """A local Parquet file of a table: the store's own blob for DuckDB, which only reads
        it (a local store), else a verified download."""
        if table not in paths:
            paths[table] = ctx.store.artifacts.local_path(made[table].digest, scratch)
        return paths[table]

    def private(table: str) -> Path:
        """A private copy, for project code (a Python transform) that could write to it."""
        target = scratch / "private" / made[table].digest
        if not target.exists():
            ctx.store.artifacts.copy_to(made[table].digest, target)
        return target

    for name, source in cfg.sources.items():
        made[name] = _source_node(ctx, nodes, name, source)
    for name, transform in cfg.transforms.items():
        code = ctx.inputs.tree(f"code.{name}") if transform.python is not None else None
        reads = inputs_of(name, transform, list(made), code)
        parents = [made[p].ref() for p in reads]
        digests = {p: made[p].digest for p in reads}
        if code is not None:
            digests["code"] = ctx.inputs.digest(f"code.{name}")
        if transform.embed is not None:
            digests["model"] = embedding_model()  # a new model version re-embeds
        key = node_key(name, transform.kind, transform.model_dump(mode="json"), digests)
        hit = nodes.cached(key, name, transform.kind, parents)
        if hit is not None:
            made[name] = hit
            continue
        out = _output(ctx, name)
        locate = private if transform.python is not None else path_of
        try:
            _, detail = run_transform(name, transform, {p: locate(p) for p in reads}, out, code)
            made[name] = nodes.save(name, transform.kind, key, out, parents, detail)
        finally:
            out.unlink(missing_ok=True)  # moved into the store, unless the transform failed
    catalog = ctx.workdir / "catalog.json"
    doc = {"format": CATALOG, "tables": {n: node.digest for n, node in made.items()}}
    catalog.write_text(canonical_json(doc))
    record: dict[str, Any] = {"tables": {n: node.record() for n, node in made.items()}}
    outputs = {"catalog": catalog}
    if cfg.dataset is not None:
        node = made[cfg.dataset]
        if node.rows == 0:
            raise DataError(
                f"dataset {cfg.dataset!r} has no rows; check the sources and transforms"
            )
        outputs["dataset"] = path_of(cfg.dataset)
        record["dataset"] = {"name": cfg.dataset, "rows": node.rows, "columns": node.columns}
    return StageResult(outputs, record)


def read_catalog(data: bytes) -> dict[str, str]:
    """Table name -> digest, from an ingest catalog."""
    doc: dict[str, Any] = json.loads(data)
    if doc.get("format") != CATALOG:
        raise DataError(f"not an ingest catalog ({CATALOG})")
    tables: dict[str, str] = doc["tables"]
    return tables
