"""Joining single-row-group Parquet files: the pages are copied, the footers merged."""

from __future__ import annotations

import datetime
import io
import struct

import pytest


def _part(table: object) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", store_schema=True)
    return bytes(sink.getvalue().to_pybytes())


def _table(n: int) -> object:
    import pyarrow as pa

    return pa.table(
        {
            "id": pa.array(range(n)),
            "tag": pa.array([f"t{i % 7}" for i in range(n)]),
            "x": pa.array([i / 3 if i % 5 else None for i in range(n)]),
            "day": pa.array([datetime.date(2026, 1, 1 + i % 28) for i in range(n)]),
            "pair": pa.array([[i, i + 1] for i in range(n)]),
            "ok": pa.array([i % 3 == 0 if i % 4 else None for i in range(n)]),
        }
    )


def test_a_footer_reencodes_to_the_same_bytes() -> None:
    from mlcrew.data.parquetjoin import encode, split

    part = _part(_table(500))
    (length,) = struct.unpack("<I", part[-8:-4])
    _, footer = split(part)
    assert encode(footer) == part[-8 - length : -8]


def test_joined_parts_read_back_as_the_whole_in_pyarrow_and_duckdb(tmp_path: object) -> None:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcrew.data.parquetjoin import join

    table = _table(3_000)
    sink = io.BytesIO()
    assert join([_part(table.slice(i, 1_000)) for i in (0, 1_000, 2_000)], sink) == 3_000
    data = sink.getvalue()
    back = pq.read_table(pa.BufferReader(data))
    assert back.equals(table)
    meta = pq.ParquetFile(pa.BufferReader(data)).metadata
    assert meta.num_row_groups == 3 and meta.num_rows == 3_000
    assert [meta.row_group(i).column(0).statistics.min for i in range(3)] == [0, 1_000, 2_000]
    path = f"{tmp_path}/joined.parquet"
    with open(path, "wb") as f:
        f.write(data)
    got = duckdb.sql(f"SELECT count(*), count(x), sum(id) FROM '{path}' WHERE id >= 2500")
    assert got.fetchall() == [(500, 400, sum(range(2_500, 3_000)))]


def test_what_is_not_parquet_is_refused() -> None:
    from mlcrew.data.parquetjoin import ParquetJoinError, join

    with pytest.raises(ParquetJoinError, match="not a Parquet file"):
        join([b"a,b\n1,2\n3,4\n"], io.BytesIO())
    with pytest.raises(ParquetJoinError, match="footer longer than its file"):
        join([b"PAR1" + b"\xff\xff\x00\x00" + b"PAR1"], io.BytesIO())
    with pytest.raises(ParquetJoinError, match="no parts"):
        join([], io.BytesIO())


def test_parts_with_page_indexes_are_refused() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcrew.data.parquetjoin import ParquetJoinError, join

    sink = pa.BufferOutputStream()
    pq.write_table(_table(100), sink, write_page_index=True)
    part = bytes(sink.getvalue().to_pybytes())
    with pytest.raises(ParquetJoinError, match="page indexes"):
        join([part, part], io.BytesIO())
