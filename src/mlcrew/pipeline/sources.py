"""Where a source's data is read from, and its digest: a file, a glob of files (a manifest of
their names and digests), or (for `labels: consensus`) the project's consensus labels exported
to a file under .mlcrew/labels/, rewritten on each read so it always holds the labels as they
are now.

A source's digest is an input of the ingest stage: the same data gives the same digest, so an
unchanged source keeps the pipeline cached. File digests come from a `DigestCache`.
"""

from __future__ import annotations

import glob
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from mlcrew.data.digests import DigestCache
from mlcrew.errors import DataError, SpecError
from mlcrew.spec import Source, Spec, Transform
from mlcrew.store import Store, file_digest

LABELS_DIR = Path(".mlcrew") / "labels"
DIGESTS_FILE = Path(".mlcrew") / "digests.json"
MANIFEST = "mlcrew.files/1"


def source_path(project: Path, path: str) -> Path:
    return Path(path) if Path(path).is_absolute() else project / path


def source_file(project: Path, store: Store, name: str, src: Source) -> Path:
    """The file holding the source's data now (a labels source is exported first)."""
    if src.labels is None:
        return source_path(project, src.file)
    from mlcrew.labeling.export import export_labels

    return export_labels(store, project / LABELS_DIR / f"{name}.parquet").path


def digest_cache(project: Path | None, verify: bool = False) -> DigestCache:
    return DigestCache(project / DIGESTS_FILE if project is not None else None, verify)


def glob_files(project: Path, name: str, src: Source) -> list[tuple[str, Path]]:
    """(name as the spec sees it, path) of each file a glob matches, in sorted order."""
    pattern = src.file
    if Path(pattern).is_absolute():
        found = sorted(glob.glob(pattern, recursive=True))
        files = [(f, Path(f)) for f in found if Path(f).is_file()]
    else:  # matched from the project folder, whose own name may hold [, * or ?
        found = sorted(glob.glob(pattern, root_dir=project, recursive=True))
        files = [(f, project / f) for f in found if (project / f).is_file()]
    if not files:
        raise SpecError(
            f"source {name!r}: {pattern} matches no file (relative to {project}); fix "
            f"sources.{name}.path in mlcrew.yaml"
        )
    return files


def manifest_bytes(files: list[tuple[str, str]]) -> bytes:
    """The canonical manifest of a glob source: each file's name and digest."""
    doc = {"format": MANIFEST, "files": [{"name": n, "digest": d} for n, d in files]}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def read_manifest(data: bytes, label: str) -> list[dict[str, str]]:
    try:
        doc: dict[str, Any] = json.loads(data)
    except ValueError:
        doc = {}
    if doc.get("format") != MANIFEST:
        raise DataError(f"{label}: the stored file list is not a {MANIFEST} manifest")
    files: list[dict[str, str]] = doc["files"]
    return files


def source_digest(
    project: Path, store: Store, name: str, src: Source, cache: DigestCache, *, keep: bool
) -> str:
    """The source's digest now; with `keep`, its data is also copied into the artifact store so
    any run can be reproduced from the store alone."""
    if src.is_sql:
        return _sql_digest(project, store, name, src, keep=keep)
    if src.is_remote:
        return _remote_digest(store, name, src, cache, keep=keep)
    if src.is_glob:
        pairs = [(n, p, cache.digest(p)) for n, p in glob_files(project, name, src)]
        return _manifest_digest(store, pairs, "source", keep=keep)
    path = source_file(project, store, name, src)
    if src.labels is not None and keep and _no_rows(path):
        raise DataError(
            f"source {name!r} (labels: {src.labels}) has no labels yet: import the tasks "
            "with `mlcrew label import`, label some at /label (`mlcrew serve`), then run"
        )
    if not path.is_file():
        raise SpecError(
            f"source {name!r}: file {src.described} does not exist (relative to {project}); "
            f"fix sources.{name}.path in mlcrew.yaml"
        )
    digest = cache.digest(path)
    if keep and not store.artifacts.exists(digest):
        with store.session() as s:
            store.put_artifact(path, "source", s)
    return digest


def code_digest(
    project: Path, store: Store, name: str, transform: Transform, cache: DigestCache, *, keep: bool
) -> str:
    """A Python transform's code (its module and the project modules it imports) as a manifest
    of relative names and digests; with `keep`, the files go into the store."""
    from mlcrew.data.pycode import module_files

    files = module_files(project, str(transform.python))
    pairs = [(rel, path, cache.digest(path)) for rel, path in files]
    return _manifest_digest(store, pairs, "code", keep=keep)


def _manifest_digest(
    store: Store, pairs: list[tuple[str, Path, str]], kind: str, *, keep: bool
) -> str:
    """The digest of the manifest of (name, digest) pairs; with `keep`, the files and the
    manifest go into the store."""
    data = manifest_bytes([(n, d) for n, _, d in pairs])
    if not keep:
        return hashlib.sha256(data).hexdigest()
    with store.session() as s:
        for _, path, digest in pairs:
            if not store.artifacts.exists(digest):
                store.put_artifact(path, kind, s)
        digest = store.artifacts.put_bytes(data)
        store.record_artifact(digest, len(data), kind, s)
    return digest


def snapshot_inputs(
    project: Path,
    spec: Spec,
    store: Store,
    *,
    keep: bool,
    verify: bool = False,
    cache: DigestCache | None = None,
) -> dict[str, str]:
    """Every source's digest and every Python transform's code digest (`source.NAME`,
    `code.NAME`). With `keep`, what they digest is kept in the store. A caller that passes
    `cache` can read which files were digested (`cache.used`)."""
    cache = cache or digest_cache(project, verify)
    try:
        found = {
            f"source.{name}": source_digest(project, store, name, src, cache, keep=keep)
            for name, src in spec.sources.items()
        }
        for name, transform in spec.transforms.items():
            if transform.python is not None:
                found[f"code.{name}"] = code_digest(
                    project, store, name, transform, cache, keep=keep
                )
        return found
    finally:
        cache.save()


def _sql_digest(project: Path, store: Store, name: str, src: Source, *, keep: bool) -> str:
    """The digest of the table or query's rows as Parquet: read on every call, since a database
    has no stamp to trust."""
    from mlcrew.data.sqlsource import read_sql, resolve_url

    label = f"source {name!r} ({src.described})"
    with tempfile.TemporaryDirectory(prefix="mlcrew-sql-") as tmp:
        out = Path(tmp) / f"{name}.parquet"
        read_sql(resolve_url(str(src.url), project, label), src.table, src.query, out, label)
        digest = file_digest(out)
        if keep and not store.artifacts.exists(digest):
            with store.session() as s:
                store.put_artifact(out, "source", s)
    return digest


def _remote_digest(store: Store, name: str, src: Source, cache: DigestCache, *, keep: bool) -> str:
    """An object (or a glob of objects) on an object store: downloaded only when its stamp is
    new to the digest cache or the store lacks its bytes."""
    from mlcrew.data.remote import download, list_remote, stamp_of

    label = f"source {name!r}"
    entries: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="mlcrew-remote-") as tmp:
        for i, (url, info) in enumerate(list_remote(src.file, src.endpoint_url, label)):
            stamp = stamp_of(info)
            digest = cache.lookup(url, stamp)
            if digest is None or (keep and not store.artifacts.exists(digest)):
                local = download(url, src.endpoint_url, Path(tmp) / str(i), label)
                digest = file_digest(local)
                cache.hashed += 1
                cache.remember(url, stamp, digest)
                if keep and not store.artifacts.exists(digest):
                    with store.session() as s:
                        store.put_artifact(local, "source", s)
            entries.append((url, digest))
    if not src.is_glob:
        return entries[0][1]
    data = manifest_bytes(entries)
    if not keep:
        return hashlib.sha256(data).hexdigest()
    digest = store.artifacts.put_bytes(data)
    with store.session() as s:
        store.record_artifact(digest, len(data), "source", s)
    return digest


def _no_rows(path: Path) -> bool:
    import pyarrow.parquet as pq

    return bool(pq.read_metadata(path).num_rows == 0)
