"""Join single-row-group Parquet files into one file without decoding or re-encoding them.

PyArrow's writer encodes a file on one thread. To use every core while the bytes stay a
function of the rows alone, each row group is encoded as a small Parquet file of its own, on a
pool of threads, and the parts are then laid end to end: their page bytes are copied as they
are, and one footer is made from theirs, with every file offset moved by where the part's pages
now start. The footer is Thrift's compact protocol (Apache Thrift's own codec reads and writes
it); it is walked generically, field by field, so that what a newer writer adds is kept. Page
indexes are refused: their page locations are absolute offsets inside the copied bytes, and
mlcrew's writer does not make them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any, Protocol

from mlcrew.errors import DataError

MAGIC = b"PAR1"

# Field ids in parquet.thrift (Apache Parquet format) of the offsets a join must move.
FILE_NUM_ROWS, FILE_ROW_GROUPS, FILE_ENCRYPTION = 3, 4, 8
GROUP_COLUMNS, GROUP_FILE_OFFSET, GROUP_ORDINAL = 1, 5, 7
CHUNK_FILE_PATH, CHUNK_FILE_OFFSET, CHUNK_META = 1, 2, 3
CHUNK_OFFSETS = (CHUNK_FILE_OFFSET,)
CHUNK_PAGE_INDEX = (4, 6)  # offset_index_offset, column_index_offset
META_OFFSETS = (9, 10, 11, 14)  # data, index, dictionary page; bloom filter

Field = tuple[int, int, Any]  # (field id, Thrift type, value) in the order they were read


class Sink(Protocol):
    def write(self, data: bytes | memoryview, /) -> int: ...


class ParquetJoinError(DataError):
    """A part this module cannot join (encrypted, with page indexes, or pointing into other
    files)."""


def split(part: bytes | memoryview) -> tuple[memoryview, list[Field]]:
    """A Parquet file's page bytes (between the magic and the footer) and its footer."""
    view = memoryview(part)
    if len(view) < 12 or view[:4] != MAGIC or view[-4:] != MAGIC:
        raise ParquetJoinError("not a Parquet file")
    (length,) = struct.unpack("<I", view[-8:-4])
    start = len(view) - 8 - length
    if start < 4:
        raise ParquetJoinError("a Parquet footer longer than its file")
    return view[4:start], decode(bytes(view[start:-8]))


def join(parts: Iterable[bytes | memoryview], sink: Sink) -> int:
    """Write `parts` (Parquet files of one row group each, with the same schema and settings)
    to `sink` as one Parquet file whose row groups are theirs, in order; return the row count."""
    sink.write(MAGIC)
    offset = len(MAGIC)
    footer: list[Field] | None = None
    groups: list[Any] = []
    rows = 0
    for part in parts:
        pages, meta = split(part)
        if field(meta, FILE_ENCRYPTION) is not None:
            raise ParquetJoinError("encrypted Parquet files cannot be joined")
        shift = offset - len(MAGIC)
        for group in field(meta, FILE_ROW_GROUPS)[1]:
            groups.append(move_group(group, shift, len(groups)))
        rows += field(meta, FILE_NUM_ROWS)
        if footer is None:
            footer = meta
        sink.write(pages)
        offset += len(pages)
    if footer is None:
        raise ParquetJoinError("no parts to join")
    footer = replace(footer, FILE_NUM_ROWS, rows)
    element_type = field(footer, FILE_ROW_GROUPS)[0]
    footer = replace(footer, FILE_ROW_GROUPS, (element_type, groups))
    encoded = encode(footer)
    sink.write(encoded)
    sink.write(struct.pack("<I", len(encoded)))
    sink.write(MAGIC)
    return int(rows)


def move_group(group: list[Field], shift: int, ordinal: int) -> list[Field]:
    """A RowGroup with its offsets moved by `shift` and its ordinal set."""
    columns_type, columns = field(group, GROUP_COLUMNS)
    moved_columns = []
    for chunk in columns:
        if field(chunk, CHUNK_FILE_PATH) is not None:
            raise ParquetJoinError("column chunks in other files cannot be joined")
        if any(field(chunk, fid) is not None for fid in CHUNK_PAGE_INDEX):
            raise ParquetJoinError("Parquet files with page indexes cannot be joined")
        chunk = shifted(chunk, CHUNK_OFFSETS, shift)
        meta = field(chunk, CHUNK_META)
        if meta is not None:
            chunk = replace(chunk, CHUNK_META, shifted(meta, META_OFFSETS, shift))
        moved_columns.append(chunk)
    group = replace(group, GROUP_COLUMNS, (columns_type, moved_columns))
    group = shifted(group, (GROUP_FILE_OFFSET,), shift)
    if field(group, GROUP_ORDINAL) is not None:
        group = replace(group, GROUP_ORDINAL, ordinal)
    return group


def field(fields: list[Field], fid: int) -> Any:
    return next((value for i, _, value in fields if i == fid), None)


def replace(fields: list[Field], fid: int, value: Any) -> list[Field]:
    return [(i, t, value if i == fid else v) for i, t, v in fields]


def shifted(fields: list[Field], ids: tuple[int, ...], shift: int) -> list[Field]:
    return [(i, t, v + shift if i in ids and v is not None else v) for i, t, v in fields]


# --- Thrift compact protocol, walked without an IDL -------------------------------------------


def decode(data: bytes) -> list[Field]:
    from thrift.protocol.TCompactProtocol import TCompactProtocol
    from thrift.transport.TTransport import TMemoryBuffer

    return _read_struct(TCompactProtocol(TMemoryBuffer(data)))


def encode(fields: list[Field]) -> bytes:
    from thrift.protocol.TCompactProtocol import TCompactProtocol
    from thrift.transport.TTransport import TMemoryBuffer

    buffer = TMemoryBuffer()
    _write_struct(TCompactProtocol(buffer), fields)
    return bytes(buffer.getvalue())


def _read_struct(p: Any) -> list[Field]:
    from thrift.Thrift import TType

    p.readStructBegin()
    fields: list[Field] = []
    while True:
        _, ttype, fid = p.readFieldBegin()
        if ttype == TType.STOP:
            break
        fields.append((fid, ttype, _read(p, ttype)))
        p.readFieldEnd()
    p.readStructEnd()
    return fields


def _read(p: Any, ttype: int) -> Any:
    from thrift.Thrift import TType

    if ttype == TType.STRUCT:
        return _read_struct(p)
    if ttype in (TType.LIST, TType.SET):
        etype, size = p.readListBegin() if ttype == TType.LIST else p.readSetBegin()
        items = [_read(p, etype) for _ in range(size)]
        p.readListEnd() if ttype == TType.LIST else p.readSetEnd()
        return (etype, items)
    if ttype == TType.MAP:
        ktype, vtype, size = p.readMapBegin()
        pairs = [(_read(p, ktype), _read(p, vtype)) for _ in range(size)]
        p.readMapEnd()
        return (ktype, vtype, pairs)
    return _scalar(p, ttype, "read")()


def _write_struct(p: Any, fields: list[Field]) -> None:
    p.writeStructBegin("")
    for fid, ttype, value in fields:
        p.writeFieldBegin("", ttype, fid)
        _write(p, ttype, value)
        p.writeFieldEnd()
    p.writeFieldStop()
    p.writeStructEnd()


def _write(p: Any, ttype: int, value: Any) -> None:
    from thrift.Thrift import TType

    if ttype == TType.STRUCT:
        _write_struct(p, value)
    elif ttype in (TType.LIST, TType.SET):
        etype, items = value
        (p.writeListBegin if ttype == TType.LIST else p.writeSetBegin)(etype, len(items))
        for item in items:
            _write(p, etype, item)
        p.writeListEnd() if ttype == TType.LIST else p.writeSetEnd()
    elif ttype == TType.MAP:
        ktype, vtype, pairs = value
        p.writeMapBegin(ktype, vtype, len(pairs))
        for k, v in pairs:
            _write(p, ktype, k)
            _write(p, vtype, v)
        p.writeMapEnd()
    else:
        _scalar(p, ttype, "write")(value)


def _scalar(p: Any, ttype: int, verb: str) -> Any:
    from thrift.Thrift import TType

    names = {
        TType.BOOL: "Bool",
        TType.BYTE: "Byte",
        TType.I16: "I16",
        TType.I32: "I32",
        TType.I64: "I64",
        TType.DOUBLE: "Double",
        TType.STRING: "Binary",
    }
    if ttype not in names:
        raise ParquetJoinError(f"unexpected Thrift type {ttype} in a Parquet footer")
    return getattr(p, verb + names[ttype])
