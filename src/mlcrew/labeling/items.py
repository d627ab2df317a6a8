"""The items to label: the spec's `labeling.from` table, read the way ingest reads it (sources,
then the SQL transforms in the sandbox), and each row turned into what a labeler is shown."""

from __future__ import annotations

import base64
import csv
import math
import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcrew.errors import DataError
from mlcrew.spec import Labeling, Spec

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcrew.store import Store
    from mlcrew.store.artifacts import ArtifactStore

MAX_ITEM = 128
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml"})


@dataclass(frozen=True)
class Item:
    key: str
    payload: dict[str, Any]


def read_table(spec: Spec, project: Path, labeling: Labeling, store: Store) -> pa.Table:
    """The `labeling.from` table: the source itself, or the transforms up to the one named,
    built from the project's files (the items to label never wait for labels)."""
    from mlcrew.data.tables import connect, fetch_arrow, load_file
    from mlcrew.data.transforms import compute
    from mlcrew.pipeline.sources import source_file

    if labeling.from_ in spec.sources:
        needed = {labeling.from_: spec.sources[labeling.from_]}
    else:
        needed = {n: s for n, s in spec.sources.items() if s.labels is None}
    tables = {}
    for name, source in needed.items():
        path = source_file(project, store, name, source).resolve()
        if not path.exists():
            raise DataError(f"source {name!r}: {path} does not exist; fix sources.{name}.path")
        con = connect()
        where = f"source {name!r} ({source.described})"
        load_file(con, name, path, source.resolved_format, where, source.model_dump())
        tables[name] = fetch_arrow(con, f'SELECT * FROM "{name}"')
        con.close()
    names = list(spec.transforms)
    upto = names[: names.index(labeling.from_) + 1] if labeling.from_ in names else []
    transforms = {n: spec.transforms[n] for n in upto}
    table = compute(tables, transforms, labeling.from_, project)
    _check_columns(table, labeling)
    return table


def _check_columns(table: pa.Table, labeling: Labeling) -> None:
    have = set(table.column_names)
    named = [("id", labeling.id)] + ([("column", labeling.column)] if labeling.column else [])
    named += [(f"columns.{i}", c) for i, c in enumerate(labeling.columns)]
    named += [(f"hidden.{i}", c) for i, c in enumerate(labeling.hidden)]
    for key, column in named:
        if column not in have:
            raise DataError(
                f"labeling.{key} names column {column!r}, which {labeling.from_!r} does not have; "
                f"its columns: {', '.join(table.column_names)}"
            )


def shown_columns(table: pa.Table, labeling: Labeling) -> list[str]:
    """What a labeler sees of a row: the named columns, or every one but the id and hidden."""
    if labeling.show != "rows":
        return [c for c in labeling.columns if c != labeling.column]
    if labeling.columns:
        return list(labeling.columns)
    skip = set(labeling.hidden) | {labeling.id}
    return [c for c in table.column_names if c not in skip]


def plain(value: Any) -> Any:
    """A value as JSON can hold it everywhere (no NaN, dates as ISO text)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    return value


def items(
    table: pa.Table,
    labeling: Labeling,
    project: Path,
    artifacts: ArtifactStore,
    keys: list[str],
) -> Iterator[list[Item]]:
    """The table's rows as items, in batches; an image named by a path is put into the artifact
    store (so a server without the project folder can show it) and referred to by digest."""
    columns = shown_columns(table, labeling)
    start = 0
    for batch in table.to_batches(max_chunksize=20_000):
        values = {c: batch.column(c).to_pylist() for c in columns}
        main = batch.column(labeling.column).to_pylist() if labeling.column else None
        out: list[Item] = []
        for i in range(batch.num_rows):
            payload: dict[str, Any] = {c: plain(values[c][i]) for c in columns}
            if main is not None:
                payload[labeling.show] = _main_value(
                    main[i], labeling, project, artifacts, start + i + 1
                )
            out.append(Item(keys[start + i], payload))
        start += batch.num_rows
        yield out


def check_keys(table: pa.Table, labeling: Labeling) -> list[str]:
    """Every item's id as text, or a DataError naming the row of the first missing, too long
    or repeated one."""
    keys: list[str] = []
    seen: dict[str, int] = {}
    for row, raw in enumerate(table.column(labeling.id).to_pylist(), start=1):
        key = _key(raw, labeling, row)
        if key in seen:
            raise DataError(
                f"{labeling.from_!r} row {row}: item id {key!r} (column {labeling.id!r}) "
                f"repeats row {seen[key]}; each item needs its own id"
            )
        seen[key] = row
        keys.append(key)
    return keys


def _key(raw: Any, labeling: Labeling, row: int) -> str:
    if raw is None or (isinstance(raw, float) and not math.isfinite(raw)):
        raise DataError(
            f"{labeling.from_!r} row {row}: the id column {labeling.id!r} is empty; every item "
            "needs an id"
        )
    key = str(plain(raw))
    if len(key) > MAX_ITEM:
        raise DataError(
            f"{labeling.from_!r} row {row}: item id {key[:40]!r}... is longer than {MAX_ITEM} "
            "characters"
        )
    return key


def _main_value(
    value: Any, labeling: Labeling, project: Path, artifacts: ArtifactStore, row: int
) -> Any:
    if labeling.show == "text" or value is None:
        return plain(value)
    text = str(value)
    if text.startswith("data:"):
        kind = text[5:].split(";", 1)[0]
        if kind not in IMAGE_TYPES:
            raise DataError(
                f"{labeling.from_!r} row {row}: column {labeling.column!r} holds a data: URI of "
                f"type {kind!r}; use one of {', '.join(sorted(IMAGE_TYPES))}"
            )
        return {"uri": text}
    path = (project / text).resolve()
    if not path.is_relative_to(project.resolve()):
        raise DataError(
            f"{labeling.from_!r} row {row}: image {text!r} lies outside the project folder; "
            "images are paths relative to the project"
        )
    kind = mimetypes.guess_type(path.name)[0] or ""
    if kind not in IMAGE_TYPES:
        raise DataError(
            f"{labeling.from_!r} row {row}: {text!r} is not an image mlcrew can show (png, jpeg, "
            "gif, webp, svg)"
        )
    try:
        digest = artifacts.put_file(path)
    except FileNotFoundError:
        raise DataError(
            f"{labeling.from_!r} row {row}: image {text!r} does not exist in {project}"
        ) from None
    return {"digest": digest, "type": kind}


def image_uri(data: bytes, kind: str) -> str:
    return f"data:{kind};base64," + base64.b64encode(data).decode()


def read_gold(project: Path, labeling: Labeling) -> dict[str, Any]:
    """The gold answers {item: label} from the gold CSV (the id column and the answer column)."""
    if labeling.gold is None:
        return {}
    path = project / labeling.gold.path
    classes = set(labeling.class_names())
    out: dict[str, Any] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            for column in (labeling.id, labeling.gold.label):
                if column not in fields:
                    raise DataError(
                        f"{path}: line 1 has no column {column!r} (found: {', '.join(fields)}); "
                        f"the gold file needs the id column and {labeling.gold.label!r}"
                    )
            for line, row in enumerate(reader, start=2):
                item, answer = row[labeling.id], row[labeling.gold.label]
                label: Any
                if labeling.task == "multi":
                    label = sorted({p.strip() for p in answer.split("|") if p.strip()})
                    bad = [p for p in label if p not in classes]
                else:
                    label = answer.strip()
                    bad = [label] if label not in classes else []
                if bad:
                    raise DataError(
                        f"{path}: line {line}: {bad[0]!r} is not a class; valid: "
                        f"{', '.join(labeling.class_names())}"
                    )
                out[item] = label
    except FileNotFoundError:
        raise DataError(
            f"labeling.gold.path names {labeling.gold.path!r}, which does not exist in {project}"
        ) from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: the gold file must be UTF-8 CSV") from None
    return out
