"""Batch scoring: a CSV or Parquet file in, one output row per input row, recorded as a run.

Rows stream through Arrow in chunks (pyarrow's CSV streaming reader, Parquet row groups), so a
file larger than memory scores in bounded memory. Each chunk is validated column by column with
Arrow compute: a value that does not fit the model's input schema stops the scoring with the
row and field named, and nothing is written. The output is written to a temporary file and
renamed when complete. The scoring is recorded as a run of kind "score" with lineage edges from
the model and input digests to the output's digest.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlcrew.errors import DataError, MlcrewError
from mlcrew.pipeline.runs import new_run_id
from mlcrew.registry.versions import CHAMPION
from mlcrew.serving.package import ModelPackage, load_package
from mlcrew.store import Store, file_digest, now
from mlcrew.store.models import LineageEdge, Run, StageExecution
from mlcrew.training.model import installed_libraries

if TYPE_CHECKING:
    import pyarrow as pa

FileFormat = Literal["csv", "parquet"]
# (rows done, rows in the file): exact for Parquet, estimated for CSV until the end.
ScoreProgress = Callable[[int, int], None]

STAGE = "score"
STAGE_VERSION = "1"
CHUNK_ROWS = 65_536
PREDICTION = "prediction"
SUFFIXES: dict[str, FileFormat] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class ScoreResult:
    run_id: str
    name: str
    version: int
    model_digest: str
    input_path: Path
    input_digest: str
    output_path: Path
    output_digest: str
    output_format: FileFormat
    rows: int
    seconds: float
    columns: list[str]
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model": {"name": self.name, "version": self.version, "digest": self.model_digest},
            "input": {"path": str(self.input_path), "digest": self.input_digest, "rows": self.rows},
            "output": {
                "path": str(self.output_path),
                "digest": self.output_digest,
                "format": self.output_format,
                "rows": self.rows,
                "columns": self.columns,
            },
            "seconds": self.seconds,
            "rows_per_second": round(self.rows / self.seconds) if self.seconds > 0 else None,
            "warnings": self.warnings,
        }


def file_format(path: Path, role: str) -> FileFormat:
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: cannot tell the {role} format from the extension {path.suffix!r}; "
            "use .csv, .parquet or .pq"
        )
    return fmt


def score_file(
    store: Store,
    name: str,
    data: Path,
    out: Path,
    ref: str | int = CHAMPION,
    *,
    chunk_rows: int = CHUNK_ROWS,
    progress: ScoreProgress | None = None,
) -> ScoreResult:
    """Score every row of `data` with the version behind `ref`; write `out` (format by
    extension): the input columns, then `prediction` (and `probability_<class>` per class)."""
    in_format = file_format(data, "input")
    out_format = file_format(out, "output")
    if not data.is_file():
        raise DataError(f"{data}: no such file; pass the rows to score with --data FILE")
    if out.resolve() == data.resolve():
        raise DataError(f"{out}: the output would overwrite the input; choose another --out")
    if out.is_dir():
        raise DataError(f"{out} is a folder; give a file name ending in .csv or .parquet")
    package = load_package(store, name, ref)
    run_id = _start_run(store, package, data)
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        rows, columns = _score_stream(
            package, data, in_format, tmp, out_format, chunk_rows, progress
        )
        os.replace(tmp, out)
        seconds = time.perf_counter() - started
        result = ScoreResult(
            run_id=run_id,
            name=package.info.name,
            version=package.info.version,
            model_digest=package.info.model_digest,
            input_path=data,
            input_digest=file_digest(data),
            output_path=out,
            output_digest=file_digest(out),
            output_format=out_format,
            rows=rows,
            seconds=round(seconds, 3),
            columns=columns,
            warnings=package.warnings,
        )
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        message = str(exc) if isinstance(exc, MlcrewError) else f"{type(exc).__name__}: {exc}"
        _fail_run(store, run_id, message)
        raise
    _finish_run(store, result)
    return result


# ------------------------------------------------------------------------- reading


def _batches(
    path: Path, fmt: FileFormat, features: dict[str, str], chunk_rows: int
) -> Iterator[tuple[pa.RecordBatch, int, int]]:
    """(batch, rows so far, rows in the file): Parquet knows its row count; for a CSV it is
    estimated from the size of the first lines (pyarrow reads ahead, so bytes read would not
    say how far the scoring is)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if fmt == "parquet":
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
        total, done = pf.metadata.num_rows, 0
        for batch in pf.iter_batches(batch_size=chunk_rows):
            done += batch.num_rows
            yield batch, done, total
        return
    total, done = _estimate_rows(path), 0
    source = pa.OSFile(str(path))
    # Feature columns are read as text and converted here, so a bad value is named by row.
    # About chunk_rows rows per block (pyarrow's CSV reader chunks by bytes).
    reader_options = pcsv.ReadOptions(block_size=max(1 << 14, chunk_rows * 64))
    convert = pcsv.ConvertOptions(
        column_types={name: pa.string() for name in features},
        strings_can_be_null=True,
        null_values=[""],
    )
    try:
        reader = pcsv.open_csv(source, read_options=reader_options, convert_options=convert)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            done += batch.num_rows
            yield batch, done, max(total, done)
    except pa.ArrowInvalid as exc:
        raise DataError(f"{path}: cannot read the CSV: {exc}") from None
    finally:
        source.close()


def _estimate_rows(path: Path, sample: int = 1 << 20) -> int:
    """Rows of a CSV file, estimated from the line length in its first megabyte."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(sample)
    lines = head.count(b"\n")
    if lines <= 1 or len(head) >= size:
        return max(lines - 1 + (not head.endswith(b"\n")), 0)
    return int(size / (len(head) / lines)) - 1


def _casts(values: pa.Array, to: pa.DataType) -> bool:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        pc.cast(values, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _first_bad(values: pa.Array, to: pa.DataType) -> int:
    """Index of the first value that does not convert (bisection: a few casts, no loop)."""
    lo, hi = 0, len(values)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _casts(values.slice(lo, mid - lo), to):
            lo = mid
        else:
            hi = mid
    return lo


def _bad(path: Path, offset: int, index: int, name: str, problem: str) -> DataError:
    return DataError(
        f"{path.name} row {offset + index + 1}, field {name!r}: {problem} (rows count from 1, "
        "the header not counted); fix the file or filter the row out"
    )


def _excerpt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _feature_column(col: pa.Array, field_type: str, name: str, path: Path, offset: int) -> pa.Array:
    """One input column converted to what the model reads, or a DataError naming the row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if pa.types.is_dictionary(t):
        col = col.dictionary_decode()
        t = col.type
    if field_type == "category":
        if pa.types.is_boolean(t):
            i = pc.index(pc.is_valid(col), True).as_py()
            raise _bad(path, offset, max(i, 0), name, "expected a category (string), got bool")
        return col
    if pa.types.is_null(t):
        return pa.nulls(len(col), pa.bool_() if field_type == "boolean" else pa.float64())
    if field_type == "boolean":
        if pa.types.is_boolean(t):
            return col
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            text = pc.utf8_lower(pc.utf8_trim_whitespace(col))
            ok = pc.is_in(text, value_set=pa.array(["true", "false"]))
            bad = pc.and_(pc.is_valid(text), pc.invert(ok))
            if pc.any(bad).as_py():
                i = pc.index(bad, True).as_py()
                raise _bad(
                    path, offset, i, name, f"expected true or false, got {_excerpt(col[i].as_py())}"
                )
            return pc.equal(text, "true")
        i = pc.index(pc.is_valid(col), True).as_py()
        raise _bad(
            path,
            offset,
            max(i, 0),
            name,
            f"expected true or false, got {_excerpt(col[max(i, 0)].as_py())}",
        )
    # number or integer
    if pa.types.is_boolean(t):
        i = max(pc.index(pc.is_valid(col), True).as_py(), 0)
        raise _bad(path, offset, i, name, f"expected a number, got {_excerpt(col[i].as_py())}")
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        text = pc.utf8_trim_whitespace(col)
        if not _casts(text, pa.float64()):
            i = _first_bad(text, pa.float64())
            raise _bad(path, offset, i, name, f"expected a number, got {_excerpt(col[i].as_py())}")
        values = pc.cast(text, pa.float64())
    elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        values = pc.cast(col, pa.float64())
    else:
        i = max(pc.index(pc.is_valid(col), True).as_py(), 0)
        raise _bad(path, offset, i, name, f"expected a number, got {t} values")
    infinite = pc.and_(pc.is_valid(values), pc.invert(pc.is_finite(values)))
    if pc.any(infinite).as_py():
        i = pc.index(infinite, True).as_py()
        raise _bad(
            path, offset, i, name, f"expected a finite number, got {_excerpt(col[i].as_py())}"
        )
    if field_type == "integer":
        fractional = pc.not_equal(values, pc.floor(values))
        if pc.any(fractional).as_py():
            i = pc.index(fractional, True).as_py()
            raise _bad(
                path, offset, i, name, f"expected an integer, got {_excerpt(col[i].as_py())}"
            )
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            try:  # text read from a CSV goes out as integers
                return pc.cast(values, pa.int64())
            except pa.ArrowInvalid:  # beyond 64 bits: kept as numbers
                return values
        return col
    return values if not (pa.types.is_floating(t) or pa.types.is_integer(t)) else col


# ------------------------------------------------------------------------- scoring


def _score_stream(
    package: ModelPackage,
    data: Path,
    in_format: FileFormat,
    tmp: Path,
    out_format: FileFormat,
    chunk_rows: int,
    progress: ScoreProgress | None,
) -> tuple[int, list[str]]:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    model = package.model
    features = {f["name"]: f["type"] for f in model.schema_}
    threads = os.cpu_count() or 1
    writer: Any = None
    rows = 0
    columns: list[str] = []
    try:
        for batch, done, total in _batches(data, in_format, features, chunk_rows):
            if writer is None:
                missing = [n for n in features if n not in batch.schema.names]
                if missing:
                    raise DataError(
                        f"{data}: no column {', '.join(repr(m) for m in missing)}, which the "
                        f"model reads; it reads: {', '.join(features)}"
                    )
            converted = {
                n: _feature_column(batch.column(n), t, n, data, rows) for n, t in features.items()
            }
            table = pa.table(converted)
            raw = model.predict_raw(table, threads=threads)
            arrays = [
                converted[n] if n in converted and in_format == "csv" else batch.column(n)
                for n in batch.schema.names
            ]
            names = list(batch.schema.names)
            outputs = _outputs(package, table, raw)
            clash = [n for n in outputs if n in names]
            if clash:
                raise DataError(
                    f"{data} already has a column {clash[0]!r}, which scoring adds; rename it"
                )
            out_batch = pa.record_batch([*arrays, *outputs.values()], names=[*names, *outputs])
            if writer is None:
                columns = list(out_batch.schema.names)
                writer = (
                    pq.ParquetWriter(str(tmp), out_batch.schema)
                    if out_format == "parquet"
                    else pcsv.CSVWriter(str(tmp), out_batch.schema)
                )
            writer.write_batch(out_batch)
            rows += batch.num_rows
            if progress:
                progress(done, total)
        if writer is None:  # an empty file: still one output row per input row (none)
            raise DataError(f"{data}: no rows to score")
        if progress:
            progress(rows, rows)
    finally:
        if writer is not None:
            writer.close()
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    return rows, columns


def _outputs(package: ModelPackage, table: pa.Table, raw: Any) -> dict[str, pa.Array]:
    import pyarrow as pa

    model = package.model
    out = {PREDICTION: model.predict_array(table, raw)}
    if model.task == "classification":
        proba = model.probabilities(raw)
        for j, label in enumerate(model.classes_):
            out[f"probability_{label}"] = pa.array(proba[:, j], type=pa.float64())
    return out


# ------------------------------------------------------------------------- the run record


def _start_run(store: Store, package: ModelPackage, data: Path) -> str:
    run_id = new_run_id()
    with store.session() as s:
        s.add(
            Run(
                id=run_id,
                kind="score",
                of_run=package.info.run_id,
                status="running",
                spec_digest=package.info.spec_digest,
                started_at=now(),
                summary={
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "model": {"name": package.info.name, "version": package.info.version},
                    "input": {"path": str(data)},
                },
            )
        )
    return run_id


def _fail_run(store: Store, run_id: str, message: str) -> None:
    with store.session() as s:
        run = s.get(Run, run_id)
        if run is not None:
            run.status, run.error, run.finished_at = "failed", message, now()


def _finish_run(store: Store, result: ScoreResult) -> None:
    inputs = {"model": result.model_digest, "data": result.input_digest}
    key = hashlib.sha256(
        f"{STAGE}\0{STAGE_VERSION}\0{result.model_digest}\0{result.input_digest}".encode()
    ).hexdigest()
    with store.session() as s:
        execution = StageExecution(
            run_id=result.run_id,
            position=0,
            stage=STAGE,
            key=key,
            version=STAGE_VERSION,
            config={"name": result.name, "version": result.version, "format": result.output_format},
            seed=None,
            inputs=inputs,
            outputs={"scores": result.output_digest},
            record=result.to_json(),
            state="executed",
            libraries=installed_libraries(),  # what scored, beside what trained (in the model)
            seconds=result.seconds,
            finished_at=now(),
        )
        s.add(execution)
        s.flush()
        for parent in inputs.values():
            s.add(LineageEdge(parent=parent, child=result.output_digest, execution_id=execution.id))
        run = s.get(Run, result.run_id)
        if run is not None:
            run.status, run.finished_at = "ok", now()
            # `stages` as a pipeline run has them, so run listings say what this run did.
            stage = {"name": STAGE, "state": "executed", "seconds": result.seconds}
            run.summary = {**run.summary, **result.to_json(), "stages": [stage]}
