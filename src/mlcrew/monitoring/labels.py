"""Late ground truth: labels that arrive after the predictions, joined to the log.

`mlcrew monitor labels --data FILE` stores a file of labels as a Parquet segment under
`labels/{project}/{model}/` in the artifact store (never changed once written, like the log).
Each label names the prediction it answers by the request id the service returned (the
`X-Request-ID` header, which a client may also set), with the row of a multi-row request, or
by key columns the logged inputs hold. A later label for the same prediction wins."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcrew.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcrew.store import Store
    from mlcrew.training.model import TabularModel

FOLDER = "labels"


def label_folder(project: str, model: str) -> str:
    return f"{FOLDER}/{project}/{model}"


def read_label_file(path: Path) -> pa.Table:
    from mlcrew.data.tables import connect, fetch_arrow, format_of, load_file

    if not path.is_file():
        raise DataError(f"{path}: no such file; pass labels with --data FILE (.csv or .parquet)")
    con = connect()
    load_file(con, "__labels", path, format_of(path), str(path), {})
    return fetch_arrow(con, 'SELECT * FROM "__labels"')


def resolve_ids(
    labels: pa.Table, log: pa.Table, id_column: str, row_column: str | None, key: list[str]
) -> pa.Table:
    """(request_id, row) for each label, from its own columns or by its key in the log."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = labels.num_rows
    if key:
        if log.num_rows == 0:
            return pa.table(
                {"request_id": pa.nulls(n, pa.string()), "row": pa.nulls(n, pa.int32())}
            )
        inputs = log.column("inputs").combine_chunks()
        fields = {f.name for f in inputs.type}
        lacking = [k for k in key if k not in fields]
        if lacking:
            raise DataError(
                f"--key {', '.join(lacking)}: not among the logged inputs; keys must be model "
                f"inputs ({', '.join(sorted(fields))}), or join by request id with --id COLUMN"
            )
        logged = pa.table(
            {
                **{k: pc.cast(inputs.field(k), pa.string()) for k in key},
                "request_id": log.column("request_id"),
                "row": log.column("row"),
            }
        )
        asked = pa.table(
            {
                **{k: pc.cast(labels.column(k), pa.string()) for k in key},
                "__i": pa.array(range(n), pa.int64()),
            }
        )
        logged = logged.append_column("__pos", pa.array(range(log.num_rows), pa.int64()))
        joined = asked.join(logged, key, join_type="left outer")
        # A key logged twice names the latest prediction with it (the log is oldest first).
        seen: dict[int, tuple[Any, Any, int]] = {}
        for i, rid, row, pos in zip(
            joined.column("__i").to_pylist(),
            joined.column("request_id").to_pylist(),
            joined.column("row").to_pylist(),
            joined.column("__pos").to_pylist(),
            strict=True,
        ):
            if i not in seen or (pos is not None and pos > seen[i][2]):
                seen[i] = (rid, row, -1 if pos is None else pos)
        return pa.table(
            {
                "request_id": pa.array([seen[i][0] for i in range(n)], pa.string()),
                "row": pa.array([seen[i][1] for i in range(n)], pa.int32()),
            }
        )
    ids = pc.cast(labels.column(id_column), pa.string())
    rows = (
        pc.cast(labels.column(row_column), pa.int32())
        if row_column
        else pa.nulls(n, pa.int32()).fill_null(0)
    )
    return pa.table({"request_id": ids, "row": rows})


def conform_labels(
    values: pa.ChunkedArray, path: Path, column: str, model: TabularModel | None
) -> pa.ChunkedArray:
    """Labels as the model's target values: numbers for a regression model (float64), class
    labels as text for a classifier, every one a class it knows. Checked before anything is
    stored, so one bad file cannot break every later round."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if model is None or model.task == "regression":
        try:
            return pc.cast(values, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            bad = next((v for v in values.to_pylist() if not _is_number(v)), values[0].as_py())
            raise DataError(
                f"{path}: column {column!r} holds {bad!r}, not a number; a regression model's "
                "labels are numbers"
            ) from None
    text = pc.cast(values, pa.string())
    unknown = sorted(set(text.to_pylist()) - set(model.classes_))
    if unknown:
        raise DataError(
            f"{path}: column {column!r} holds {unknown[:5]}, which the model never saw as a "
            f"class ({', '.join(model.classes_)}); fix the labels, or retrain with those classes"
        )
    return text


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def add_labels(
    store: Store,
    name: str,
    target: str,
    path: Path,
    model: TabularModel | None = None,
    *,
    id_column: str = "request_id",
    row_column: str | None = None,
    key: list[str] | None = None,
    label_column: str | None = None,
) -> dict[str, Any]:
    """Store the labels of `path` that answer logged predictions of model `name`, and say
    which rows of the file answered none (reported, not stored). A file none of whose labels
    matches is refused: a typo in ids or keys must not pass silently."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from mlcrew.monitoring.windows import log_rows

    labels = read_label_file(path)
    column = label_column or target
    needed = [column, *(key or [id_column]), *([row_column] if row_column else [])]
    lacking = [c for c in needed if c not in labels.column_names]
    if lacking:
        raise DataError(
            f"{path}: no column {', '.join(map(repr, lacking))}; a labels file holds the label "
            f"(column {column!r}, or name it with --label) and what it answers: the request id "
            f"(column {id_column!r}, or --id COLUMN) or key columns (--key COLUMN); columns "
            f"found: {', '.join(labels.column_names)}"
        )
    labels = labels.filter(pc.is_valid(labels.column(column)))
    if labels.num_rows == 0:
        raise DataError(f"{path}: no row has a value in {column!r}")
    if model is None:
        from mlcrew.registry.versions import get_version
        from mlcrew.training.model import TabularModel

        champion = get_version(store, name)
        model = TabularModel.from_json(store.artifacts.read_bytes(champion.model_digest))
    values = conform_labels(labels.column(column), path, column, model)
    log = log_rows(store, name, None, datetime.now(UTC))
    ids = resolve_ids(labels, log, id_column, row_column, key or [])
    logged = (
        {(r, int(i)) for r, i in zip(log.column("request_id").to_pylist(),
                                     log.column("row").to_pylist(), strict=True)}
        if log.num_rows
        else set()
    )  # fmt: skip
    pairs = list(
        zip(ids.column("request_id").to_pylist(), ids.column("row").to_pylist(), strict=True)
    )
    matched = [p[0] is not None and (p[0], p[1]) in logged for p in pairs]
    unmatched = [i for i, ok in enumerate(matched) if not ok]
    if len(unmatched) == len(pairs):
        example = pairs[0][0] if pairs and pairs[0][0] is not None else "(no match)"
        raise DataError(
            f"{path}: none of its {len(pairs)} labels answers a logged prediction of {name!r} "
            f"(first id: {example!r}); check the ids or the --key columns"
        )
    keep = pa.array(matched)
    stamp = datetime.now(UTC)
    table = pa.table(
        {
            "request_id": ids.column("request_id").filter(keep),
            "row": ids.column("row").filter(keep),
            "label": values.filter(keep),
            "arrived_at": pa.nulls(sum(matched), pa.timestamp("us", tz="UTC")).fill_null(stamp),
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    rel = f"{label_folder(store.project_name, name)}/{stamp:%Y%m%dT%H%M%S%fZ}-{os.getpid()}.parquet"
    store.artifacts.write_file(rel, sink.getvalue().to_pybytes())
    return {
        "file": str(path),
        "labels": len(pairs),
        "matched": int(sum(matched)),
        "unmatched": len(unmatched),
        "unmatched_rows": [i + 1 for i in unmatched[:10]],  # 1-based rows of the file
        "segment": rel,
    }


def all_labels(store: Store, name: str) -> pa.Table:
    """Every stored label of `name`: one per (request_id, row), the latest to arrive."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    found = sorted(
        store.artifacts.list_files(f"{label_folder(store.project_name, name)}/*.parquet")
    )
    if not found:
        return pa.table({"request_id": pa.array([], pa.string()), "row": pa.array([], pa.int32()),
                         "label": pa.array([], pa.string())})  # fmt: skip
    tables = [pq.read_table(pa.BufferReader(b)) for b in store.artifacts.read_files(found)]
    table = pa.concat_tables(tables, promote_options="permissive")
    # The newest label of each prediction wins: the latest file, and within it the last row.
    table = table.append_column("__seq", pa.array(range(table.num_rows), pa.int64()))
    order = pc.sort_indices(table, [("arrived_at", "descending"), ("__seq", "descending")])
    table = table.take(order)
    seen: set[tuple[str, int]] = set()
    keep = []
    for i, (rid, row) in enumerate(
        zip(table.column("request_id").to_pylist(), table.column("row").to_pylist(), strict=True)
    ):
        if (rid, row) not in seen:
            seen.add((rid, row))
            keep.append(i)
    return table.take(pa.array(keep, pa.int64())).select(["request_id", "row", "label"])


def with_labels(rows: pa.Table, inputs: pa.Table, labels: pa.Table, target: str) -> pa.Table:
    """The window's model rows with the target column: the label where one arrived."""
    import pyarrow as pa

    if labels.num_rows == 0 or rows.num_rows == 0:
        return inputs
    ids = pa.table(
        {
            "request_id": rows.column("request_id"),
            "row": rows.column("row"),
            "__i": pa.array(range(rows.num_rows), pa.int64()),
        }
    )
    joined = ids.join(labels, ["request_id", "row"], join_type="left outer").sort_by("__i")
    return inputs.append_column(target, joined.column("label"))
