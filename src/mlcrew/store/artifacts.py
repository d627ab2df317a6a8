"""Content-addressed artifact store (sha256): a local folder by default, or an object store
(`s3://bucket/prefix`, any fsspec URL) through fsspec.

A blob is first written under `tmp/` and only then moved to `sha256/ab/abcd...`, so a reader never
sees a half-written artifact: on a local disk the move is an atomic rename; on an object store
the temporary object is complete (its upload finished) before it is copied to its final name,
and an upload killed mid-way never completes, so it is never visible. Blobs read from an object
store are checked against their sha256 as they arrive; `local_path` keeps verified downloads in
a local cache shared by every process of the machine (see `default_cache_dir`).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from mlcrew.errors import NotFoundError, StoreError
from mlcrew.store.remote import UPLOAD_PART, RemoteRoot, is_local, redact_url

CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """Where downloads from an object store are kept: MLCREW_CACHE, else the user's cache
    folder (XDG_CACHE_HOME or ~/.cache) + mlcrew. Blobs there are named by digest and verified
    when downloaded, so projects, CLIs and server workers of one user can share it, and it can
    be deleted at any time."""
    env = os.environ.get("MLCREW_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mlcrew"


class ArtifactStore:
    def __init__(
        self,
        root: str | Path,
        *,
        endpoint_url: str | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.root = str(root)
        self._local = is_local(self.root)
        self._cache_dir = cache_dir
        self._base = Path(self.root.removeprefix("file://"))
        self._remote = None if self._local else RemoteRoot(self.root, endpoint_url)

    @property
    def is_local(self) -> bool:
        return self._local

    # -- paths
    def _rel(self, digest: str) -> str:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise NotFoundError(f"{digest!r} is not a sha256 digest")
        return f"sha256/{digest[:2]}/{digest}"

    def _missing(self, digest: str) -> Callable[[], NotFoundError]:
        return lambda: NotFoundError(
            f"artifact {digest[:12]} is not in the store at {redact_url(self.root)}; "
            "'mlcrew store verify' lists what is missing"
        )

    def exists(self, digest: str) -> bool:
        if self._remote is None:
            return (self._base / self._rel(digest)).exists()
        return self._remote.exists(self._rel(digest))

    def blob_path(self, digest: str) -> Path:
        """Where a local store keeps the blob (whether or not it is there)."""
        if self._remote is not None:
            raise StoreError(f"{self.root} is an object store: its blobs have no local path")
        return self._base / self._rel(digest)

    def local_path(self, digest: str, cache_dir: Path | None = None) -> Path:
        """A local file holding the artifact: the blob itself in a local store; for an object
        store a verified download in the cache (written under a temporary name and renamed, so
        concurrent processes never see a partial file)."""
        rel = self._rel(digest)
        if self._remote is None:
            path = self._base / rel
            if not path.exists():
                raise self._missing(digest)()
            return path
        cache = (cache_dir or self._cache_dir or default_cache_dir()) / "artifacts"
        target = cache / rel
        if target.exists():
            return target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            (cache / "tmp").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the download cache at {cache}: {exc.strerror}; set MLCREW_CACHE "
                "to a writable folder"
            ) from exc
        part = cache / "tmp" / f"{uuid.uuid4().hex}.part"
        try:
            self._download(digest, part)
            os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)
        return target

    def _download(self, digest: str, target: Path) -> None:
        """Stream the blob to `target`, hashing as it comes; a mismatch is a corrupt blob."""
        if self._remote is None:  # pragma: no cover - callers only download remote blobs
            raise StoreError("a local store has nothing to download")
        h = hashlib.sha256()
        with open(target, "wb") as out:
            for chunk in self._remote.read_chunks(self._rel(digest), CHUNK, self._missing(digest)):
                h.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if h.hexdigest() != digest:
            raise self.corrupt(digest)

    def read_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        """The artifact's bytes; with `verify` (the default) its sha256 is checked first, so a
        blob changed on disk or in the bucket is never loaded as a model or fed to a stage."""
        if self._remote is None:
            data = self.local_path(digest).read_bytes()
        else:
            data = self._remote.cat(self._rel(digest), self._missing(digest))
        if verify and hashlib.sha256(data).hexdigest() != digest:
            raise self.corrupt(digest)
        return data

    def copy_to(self, digest: str, target: Path) -> Path:
        """A private, verified copy of the artifact at `target` (a stage may do as it likes
        with it; the store's blob is never handed out)."""
        tmp = target.with_name(target.name + ".part")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if self._remote is not None:
                self._download(digest, tmp)
            else:
                h = hashlib.sha256()
                with open(self.local_path(digest), "rb") as src, open(tmp, "wb") as out:
                    for chunk in iter(lambda: src.read(CHUNK), b""):
                        h.update(chunk)
                        out.write(chunk)
                if h.hexdigest() != digest:
                    raise self.corrupt(digest)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def check(self, digest: str) -> bool | None:
        """True if the blob matches its digest, False if it does not, None if it is missing."""
        h = hashlib.sha256()
        if self._remote is None:
            path = self._base / self._rel(digest)
            if not path.exists():
                return None
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(CHUNK), b""):
                    h.update(chunk)
            return h.hexdigest() == digest

        class Missing(Exception):
            pass

        try:
            for chunk in self._remote.read_chunks(self._rel(digest), CHUNK, Missing):
                h.update(chunk)
        except Missing:
            return None
        return h.hexdigest() == digest

    def location(self, digest: str) -> str:
        return f"{redact_url(self.root).rstrip('/')}/{self._rel(digest)}"

    def corrupt(self, digest: str) -> StoreError:
        return StoreError(
            f"artifact {digest[:12]} is corrupt: its content no longer matches its sha256 "
            f"({self.location(digest)}); restore it from a backup, or delete it and re-create it "
            "with 'mlcrew run --force'. 'mlcrew store verify' checks every artifact."
        )

    # -- writes
    def put_bytes(self, data: bytes) -> str:
        if self._remote is not None:
            digest = hashlib.sha256(data).hexdigest()
            if not self._remote.exists(self._rel(digest)):
                self._remote.write_atomic(self._rel(digest), lambda out: out.write(data))
            return digest
        return self.put_stream(io.BytesIO(data))

    def put_file(self, path: Path | str) -> str:
        if self._remote is not None:
            # Hashing the local file first means a blob the store holds is never uploaded again.
            digest = file_digest(path)
            if not self._remote.exists(self._rel(digest)):
                self._remote.upload_file(str(path), self._rel(digest))
            return digest
        with open(path, "rb") as f:
            return self.put_stream(f)

    def scratch_file(self, suffix: str = "") -> Path | None:
        """A new file name beside a local store's blobs (None for an object store): a file
        written there can be adopted by renaming it, never copied."""
        if self._remote is not None:
            return None
        tmp_dir = self._base / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        return tmp_dir / f"{uuid.uuid4().hex}{suffix}"

    def adopt_file(self, path: Path) -> str:
        """Store a file its caller no longer needs and return its sha256: in a local store on
        the same file system it is hashed where it lies and renamed into place (a large
        dataset is written once, not twice); otherwise copied. The file is gone afterwards."""
        if self._remote is not None:
            digest = self.put_file(path)
            path.unlink(missing_ok=True)
            return digest
        try:
            digest = written_digest(path) or _hash_and_sync(path)
            final = self._base / self._rel(digest)
            if final.exists():
                path.unlink()
                return digest
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, final)
            return digest
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # anything but "another file system"
                raise StoreError(
                    f"cannot write to the artifact store at {self.root}: {exc}"
                ) from exc
        digest = self.put_file(path)
        path.unlink(missing_ok=True)
        return digest

    def put_stream(self, stream: IO[bytes]) -> str:
        """Copy a stream into the store; return its sha256. Atomic: all or nothing is visible."""
        h = hashlib.sha256()
        if self._remote is not None:
            return self._put_stream_remote(stream)
        tmp_dir = self._base / "tmp"
        tmp = tmp_dir / uuid.uuid4().hex
        try:
            tmp_dir.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as out:
                for chunk in iter(lambda: stream.read(CHUNK), b""):
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = h.hexdigest()
            final = self._base / self._rel(digest)
            if final.exists():
                tmp.unlink()
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
            return digest
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write to the artifact store at {self.root}: {exc}") from exc

    def _put_stream_remote(self, stream: IO[bytes]) -> str:
        """Upload into a temporary object while hashing (the digest is known only at the end),
        then move it to its name, or drop it when the store already holds that blob."""
        remote = self._remote
        if remote is None:  # pragma: no cover
            raise StoreError("not an object store")
        h = hashlib.sha256()
        tmp = remote.new_tmp()
        with remote.errors(), remote.fs.open(remote.url(tmp), "wb", block_size=UPLOAD_PART) as out:
            for chunk in iter(lambda: stream.read(CHUNK), b""):
                h.update(chunk)
                out.write(chunk)
        digest = h.hexdigest()
        if remote.exists(self._rel(digest)):
            remote.remove(tmp)
        else:
            remote.move(tmp, self._rel(digest))
        return digest

    def digests(self) -> Iterator[str]:
        """Every complete artifact in the store (temporaries are never listed)."""
        if self._remote is None:
            base = self._base / "sha256"
            if base.exists():
                for p in sorted(base.glob("*/*")):
                    yield p.name
            return
        for rel in self._remote.glob("sha256/*/*"):
            yield rel.rsplit("/", 1)[-1]

    def clean_tmp(self, older_than: float = 3600.0) -> int:
        """Remove leftovers of writers that died mid-write (never visible). Only files untouched
        for `older_than` seconds go, so a concurrent writer's file is left alone."""
        if self._remote is not None:
            return self._remote.clean_tmp(older_than)
        tmp_dir = self._base / "tmp"
        if not tmp_dir.exists():
            return 0
        cutoff = time.time() - older_than
        removed = 0
        for part in tmp_dir.iterdir():
            try:
                if part.stat().st_mtime < cutoff:
                    part.unlink()
                    removed += 1
            except FileNotFoundError:  # its writer just finished or another cleaner got it
                continue
        return removed

    # -- files by path under the root (the prediction log), not by digest
    def write_file(self, rel: str, data: bytes) -> None:
        """Write `data` at `rel` under the root atomically (a temporary first, then moved)."""
        if self._remote is not None:
            self._remote.write_atomic(rel, lambda out: out.write(data))
            return
        final = self._base / rel
        tmp = self._base / "tmp" / f"{uuid.uuid4().hex}.part"
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            final.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(
                f"cannot write {rel} to the artifact store at {self.root}: {exc}"
            ) from exc

    def move_file(self, rel: str, new_rel: str) -> None:
        """Give a file (a path relative to the root, not an artifact) another path."""
        if self._remote is not None:
            self._remote.move(rel, new_rel)
            return
        target = self._base / new_rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._base / rel, target)

    def list_files(self, pattern: str) -> list[str]:
        """Paths (relative to the root) of the files matching a glob `pattern`."""
        if self._remote is not None:
            return self._remote.glob(pattern)
        return sorted(p.relative_to(self._base).as_posix() for p in self._base.glob(pattern))

    def read_files(self, rels: list[str]) -> list[bytes]:
        """Several files at once: from an object store they are fetched concurrently."""
        if self._remote is not None:

            def missing() -> NotFoundError:
                return NotFoundError(
                    f"one of {len(rels)} files is no longer in the artifact store at "
                    f"{redact_url(self.root)}"
                )

            return self._remote.cat_many(rels, missing)
        return [self.read_file(rel) for rel in rels]

    def read_file(self, rel: str) -> bytes:
        def missing() -> NotFoundError:
            return NotFoundError(f"{rel} is not in the artifact store at {redact_url(self.root)}")

        if self._remote is not None:
            return self._remote.cat(rel, missing)
        try:
            return (self._base / rel).read_bytes()
        except FileNotFoundError:
            raise missing() from None


def _hash_and_sync(path: Path) -> str:
    with open(path, "rb") as f:
        h = hashlib.sha256()
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
        os.fsync(f.fileno())
    return h.hexdigest()


# Digests of files this process hashed while writing them (HashingFile), with each file's
# stamp (size, mtime, inode) then: storing such a file need not read it again.
_WRITTEN: dict[str, tuple[int, int, int, str]] = {}
_WRITTEN_LOCK = threading.Lock()


class HashingFile:
    """A file opened for writing that hashes what goes into it, then fsyncs it on close, so
    adopting it into the store (`ArtifactStore.adopt_file`) reads none of it back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = open(path, "wb")  # noqa: SIM115 - closed by close() / the with block
        self._h = hashlib.sha256()
        self._n = 0

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data)
        self._h.update(view)
        self._f.write(view)
        self._n += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self._n

    def flush(self) -> None:
        self._f.flush()

    @property
    def closed(self) -> bool:
        return self._f.closed

    def close(self) -> None:
        if self._f.closed:
            return
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        st = os.stat(self.path)
        with _WRITTEN_LOCK:
            _WRITTEN[str(self.path)] = (st.st_size, st.st_mtime_ns, st.st_ino, self._h.hexdigest())
            while len(_WRITTEN) > 256:  # files never adopted (stored by copy, or dropped)
                del _WRITTEN[next(iter(_WRITTEN))]

    def __enter__(self) -> HashingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def written_digest(path: Path) -> str | None:
    """The digest HashingFile took of this file, if the file is still as it left it."""
    with _WRITTEN_LOCK:
        known = _WRITTEN.pop(str(path), None)
    if known is None:
        return None
    st = os.stat(path)
    return known[3] if (st.st_size, st.st_mtime_ns, st.st_ino) == known[:3] else None


def file_digest(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
