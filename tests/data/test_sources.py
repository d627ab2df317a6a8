"""Sources as a new user's files arrive: encodings, dialects, bad lines, odd values, globs.

Every malformed case must end in a message naming the file, the line or column, and the fix;
never in an internal error, never in silently wrong types."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcrew.errors import DataError, SpecError
from mlcrew.pipeline.execute import execute_stage
from mlcrew.pipeline.runner import snapshot_sources
from mlcrew.pipeline.stages import stage_by_name
from mlcrew.spec import parse_spec
from mlcrew.store import Store


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "artifacts")


def read(
    store: Store, root: Path, path: str, options: str = "", target: str = "y"
) -> tuple[pa.Table, dict[str, Any]]:
    """Ingest one source as the pipeline does; the table and the source's record."""
    spec = parse_spec(
        f"name: t\nsources: {{s: {{path: '{path}'{', ' + options if options else ''}}}}}\n"
        f"dataset: {{from: s}}\ntarget: {target}\n"
    )
    inputs = snapshot_sources(root, spec, store)
    stage = stage_by_name("ingest")
    outputs, record = execute_stage(stage, stage.config(spec), inputs, store, "t", dry_run=False)
    table = pq.read_table(store.artifacts.local_path(outputs["dataset"]))
    return table, record["tables"]["s"]


def write(root: Path, name: str, data: bytes | str) -> None:
    (root / name).write_bytes(data.encode() if isinstance(data, str) else data)


def test_a_byte_order_mark_never_reaches_a_column_name(store: Store, tmp_path: Path) -> None:
    write(tmp_path, "bom.csv", b"\xef\xbb\xbfid,y\n1,2\n")
    table, _ = read(store, tmp_path, "bom.csv")
    assert table.column_names == ["id", "y"]


def test_latin1_is_named_with_its_line_and_read_when_declared(store: Store, tmp_path: Path) -> None:
    text = "name,city,y\nAnna,Bern,1\nJos\xe9,Z\xfcrich,2\n"
    write(tmp_path, "people.csv", text.encode("latin-1"))
    with pytest.raises(DataError) as info:
        read(store, tmp_path, "people.csv")
    message = str(info.value)
    assert "source 's' (people.csv): line 3 is not UTF-8" in message
    assert "encoding: latin-1" in message and "José" in message
    table, _ = read(store, tmp_path, "people.csv", "encoding: latin-1")
    assert table.column("name").to_pylist() == ["Anna", "José"]
    assert table.column("city").to_pylist() == ["Bern", "Zürich"]
    write(tmp_path, "euro.csv", "item,y\n5 \u20ac,1\n".encode("cp1252"))
    table, _ = read(store, tmp_path, "euro.csv", "encoding: cp1252")
    assert table.column("item").to_pylist() == ["5 €"]


def test_utf16_is_recognised_and_read_when_declared(store: Store, tmp_path: Path) -> None:
    write(tmp_path, "wide.csv", "a,y\n1,2\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"UTF-16 text: add encoding: utf-16"):
        read(store, tmp_path, "wide.csv")
    table, _ = read(store, tmp_path, "wide.csv", "encoding: utf-16")
    assert table.to_pydict() == {"a": [1], "y": [2]}
    with pytest.raises(DataError, match=r"encoding 'klingon' is unknown"):
        read(store, tmp_path, "wide.csv", "encoding: klingon")


def test_decimal_commas_are_named_then_read_as_numbers(store: Store, tmp_path: Path) -> None:
    write(tmp_path, "de.csv", "temp;y\n12,5;1\n-3,25;0\n7;1\n")
    with pytest.raises(DataError) as info:
        read(store, tmp_path, "de.csv")
    assert "column 'temp' holds numbers written with a decimal comma (line 2: '12,5')" in str(
        info.value
    )
    assert "decimal: ','" in str(info.value)
    table, _ = read(store, tmp_path, "de.csv", "decimal: ',', delimiter: ';'")
    assert table.schema.field("temp").type == pa.float64()
    assert table.column("temp").to_pylist() == [12.5, -3.25, 7.0]


def test_quoted_newlines_are_one_row_and_lines_are_still_counted_right(
    store: Store, tmp_path: Path
) -> None:
    write(tmp_path, "notes.csv", 'id,note,y\n1,"two\nlines",3\n2,plain,4\n')
    table, _ = read(store, tmp_path, "notes.csv")
    assert table.column("note").to_pylist() == ["two\nlines", "plain"]
    # The bad value sits on line 5: the quoted newline makes row 3 start one line later.
    write(tmp_path, "late.csv", 'id,note,y\n1,"two\nlines",3\n2,plain,4\n3,x,hot\n4,z,5\n')
    with pytest.raises(DataError) as info:
        read(store, tmp_path, "late.csv")
    message = str(info.value)
    assert "column 'y' holds numbers, but 1 value is not, first at line 5: 'hot'" in message
    assert "types: {y: text}" in message


def test_bad_lines_stop_by_default_and_are_counted_when_skipped(
    store: Store, tmp_path: Path
) -> None:
    write(tmp_path, "rag.csv", "a,y\n1,2\n3,4,5\n6,7\n8\n9,10\n")
    with pytest.raises(DataError) as info:
        read(store, tmp_path, "rag.csv")
    message = str(info.value)
    assert "source 's' (rag.csv): line 3: 3 fields where the header has 2 ('3,4,5')" in message
    assert "bad_lines: skip" in message
    table, record = read(store, tmp_path, "rag.csv", "bad_lines: skip")
    assert table.to_pydict() == {"a": [1, 6, 9], "y": [2, 7, 10]}
    assert record["bad_lines"]["skipped"] == 2
    assert [(b["line"], b["text"]) for b in record["bad_lines"]["lines"]] == [
        (3, "3,4,5"),
        (5, "8"),
    ]


def test_empty_duplicate_and_binary_files_are_named_with_the_fix(
    store: Store, tmp_path: Path
) -> None:
    write(tmp_path, "empty.csv", "")
    with pytest.raises(DataError, match=r"\(empty.csv\) is empty \(no header, no rows\)"):
        read(store, tmp_path, "empty.csv")
    write(tmp_path, "dup.csv", "y,temp,hum,temp\n1,2,3,4\n")
    with pytest.raises(DataError, match=r"line 1: columns 2 and 4 are both named 'temp'"):
        read(store, tmp_path, "dup.csv")
    write(tmp_path, "noise.csv", bytes(range(256)) * 40)
    with pytest.raises(DataError, match=r"\(noise.csv\) is not a text file: it holds binary"):
        read(store, tmp_path, "noise.csv")
    pq.write_table(pa.table({"y": [1]}), tmp_path / "really.parquet")
    (tmp_path / "really.csv").write_bytes((tmp_path / "really.parquet").read_bytes())
    with pytest.raises(DataError, match=r"is not a CSV file: it is a Parquet file: set format"):
        read(store, tmp_path, "really.csv")


def test_missing_markers_are_null_and_non_finite_numbers_are_refused(
    store: Store, tmp_path: Path
) -> None:
    write(tmp_path, "m.csv", "x,y\n1.5,1\nNaN,2\n-,3\n,4\nNA,5\n")
    table, _ = read(store, tmp_path, "m.csv")
    assert table.schema.field("x").type == pa.float64()
    assert table.column("x").to_pylist() == [1.5, None, None, None, None]
    for bad, line in (("inf", 3), ("1e400", 4)):
        rows = ["x,y", "1.5,1", "2.5,2", "3.5,3", "4.5,4"]
        rows[line - 1] = f"{bad},{line}"
        write(tmp_path, "f.csv", "\n".join(rows) + "\n")
        with pytest.raises(DataError) as info:
            read(store, tmp_path, "f.csv")
        message = str(info.value)
        assert f"'x' has 1 value that is not a finite number, first at line {line}" in message
        assert "missing:" in message
    # Once "NaN" is no longer a missing marker, it is a value that is not a finite number.
    with pytest.raises(DataError, match=r"not a finite number, first at line 3: 'NaN'"):
        read(store, tmp_path, "m.csv", "missing: ['-', '', NA]")
    write(tmp_path, "t.csv", "x,y\n1,a\n2,b\n")
    table, _ = read(store, tmp_path, "t.csv", "types: {x: text}")
    assert table.column("x").to_pylist() == ["1", "2"]  # types: keeps text as text


def test_codes_with_leading_zeros_stay_text(store: Store, tmp_path: Path) -> None:
    write(tmp_path, "zip.csv", "zip,y\n02134,1\n10001,2\n00501,3\n")
    table, _ = read(store, tmp_path, "zip.csv")
    assert table.column("zip").to_pylist() == ["02134", "10001", "00501"]


def test_a_bad_value_past_the_type_sample_is_named_by_line(store: Store, tmp_path: Path) -> None:
    rows = ["x,y", *(f"{i},{i % 2}" for i in range(30_000)), "oops,1"]
    write(tmp_path, "big.csv", "\n".join(rows) + "\n")
    with pytest.raises(DataError) as info:
        read(store, tmp_path, "big.csv")
    message = str(info.value)
    assert "line 30002, column 'x': 'oops' is not a bigint like the values before it" in message
    assert "types: {x: text}" in message


def test_csv_options_are_checked_in_the_spec() -> None:
    base = "name: t\ndataset: {from: s}\ntarget: y\nsources:\n  s: "
    with pytest.raises(SpecError, match=r"encoding applies to CSV sources only"):
        parse_spec(base + "{path: a.parquet, encoding: latin-1}\n")
    with pytest.raises(SpecError, match=r"delimiter and decimal are both ','"):
        parse_spec(base + "{path: a.csv, delimiter: ',', decimal: ','}\n")
    with pytest.raises(SpecError, match=r"only a glob of files has"):
        parse_spec(base + "{path: a.csv, filename: file}\n")
    with pytest.raises(SpecError, match=r"sources.s.bad_lines"):
        parse_spec(base + "{path: a.csv, bad_lines: ignore}\n")


def test_globs_of_csv_ndjson_and_json_files_with_their_names(store: Store, tmp_path: Path) -> None:
    (tmp_path / "months").mkdir()
    write(tmp_path, "months/2024-02.csv", "day,y\n3,30\n4,40\n")
    write(tmp_path, "months/2024-01.csv", "day,y\n1,10\n2,20\n")
    table, record = read(store, tmp_path, "months/*.csv", "filename: file")
    assert table.to_pydict() == {
        "day": [1, 2, 3, 4],
        "y": [10, 20, 30, 40],
        "file": ["months/2024-01.csv"] * 2 + ["months/2024-02.csv"] * 2,
    }
    assert [f["name"] for f in record["files"]] == ["months/2024-01.csv", "months/2024-02.csv"]
    write(tmp_path, "months/2024-03.csv", "day,y\n5,oops\n6,60\n7,70\n")
    with pytest.raises(DataError, match=r"source 's' \(months/2024-03.csv\): column 'y'"):
        read(store, tmp_path, "months/*.csv")
    (tmp_path / "logs").mkdir()
    write(tmp_path, "logs/a.ndjson", '{"k": 1, "y": 2}\n{"k": 3, "y": 4}\n')
    write(tmp_path, "logs/b.json", json.dumps([{"k": 5, "y": 6}]))
    table, _ = read(store, tmp_path, "logs/*json", "format: json")
    assert table.to_pydict() == {"k": [1, 3, 5], "y": [2, 4, 6]}
    with pytest.raises(SpecError, match=r"logs/\*.parquet matches no file"):
        read(store, tmp_path, "logs/*.parquet")


def _project(root: Path, data: str, dataset: str = "{from: d}", extra: str = "") -> Any:
    from mlcrew.project import Project

    root.mkdir(exist_ok=True)
    (root / "d.csv").write_text(data)
    (root / "mlcrew.yaml").write_text(
        f"name: t\nsources: {{d: {{path: d.csv}}}}\ndataset: {dataset}\ntarget: y\n"
        f"training: {{budget: {{trials: 1, rounds: 20}}}}\n{extra}"
    )
    return Project.open(root, db_url=f"sqlite:///{root / 'm.db'}")


def test_a_target_without_values_is_refused_before_training_or_dropped(tmp_path: Path) -> None:
    from mlcrew.pipeline.runner import Runner

    rows = "x,y\n" + "".join(f"{i},{'' if i % 50 == 7 else i * 2}\n" for i in range(120))
    proj = _project(tmp_path / "a", rows)
    runner = Runner(proj.root, proj.store, proj.spec, proj.spec_text)
    with pytest.raises(DataError) as info:
        runner.run()
    message = str(info.value)
    assert "target 'y' has no value in 3 of 120 rows (rows 8 (empty), 58 (empty), 108" in message
    assert "dataset.missing_target: drop" in message
    assert [o.name for o in info.value.run.stages] == ["ingest"]  # type: ignore[attr-defined]
    proj.close()
    proj = _project(tmp_path / "b", rows, "{from: d, missing_target: drop}")
    result = Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
    split = next(o for o in result.stages if o.name == "split")
    assert split.record["dropped_missing_target"] == 3
    assert split.record["train_rows"] + split.record["test_rows"] == 117
    proj.close()
    proj = _project(tmp_path / "c", "x,y\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(40)),
                    extra="task: regression\n")  # fmt: skip
    with pytest.raises(DataError, match=r"task: regression needs a numeric target, but 'y'"):
        Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
    proj.close()


def test_source_digests_are_cached_by_file_stamp_and_verify_rehashes(tmp_path: Path) -> None:
    import os

    from mlcrew.pipeline.sources import digest_cache, source_digest

    proj = _project(tmp_path / "p", "x,y\n1,2\n")
    src = proj.spec.sources["d"]

    def digest(verify: bool = False) -> tuple[str, int]:
        cache = digest_cache(proj.root, verify)
        found = source_digest(proj.root, proj.store, "d", src, cache, keep=False)
        cache.save()
        return found, cache.hashed

    first, hashed = digest()
    assert hashed == 1
    assert digest() == (first, 0)  # the stamp is unchanged: nothing is read
    assert digest(verify=True) == (first, 1)
    path = proj.root / "d.csv"
    path.write_text("x,y\n1,3\n")  # same size, new content and modification time
    changed, hashed = digest()
    assert changed != first and hashed == 1
    stat = path.stat()
    path.write_text("x,y\n1,2\n")  # the old content again, with the old stamp forged
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert digest() == (changed, 0)  # trusted: same path, size, time and inode...
    assert digest(verify=True) == (first, 1)  # ...until --verify reads the bytes
    proj.close()
