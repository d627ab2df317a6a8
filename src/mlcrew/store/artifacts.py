"""Content-addressed artifact store (sha256) over fsspec, local by default.

A blob is first written under `tmp/` and only then moved to `sha256/ab/abcd...`, so a reader never
sees a half-written artifact: on a local disk the move is an atomic rename, and on object stores
the upload of the temporary object completes before the copy to its final name.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from mlcrew.errors import NotFoundError, StoreError

CHUNK = 1 << 20


class ArtifactStore:
    def __init__(self, root: str | Path) -> None:
        self.root = str(root)
        self._local = "://" not in self.root or self.root.startswith("file://")
        if self._local:
            self._base = Path(self.root.removeprefix("file://"))
            self._fs: Any = None
        else:
            import fsspec

            self._fs, self._base_url = fsspec.core.url_to_fs(self.root)

    # -- paths
    def _rel(self, digest: str) -> str:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise NotFoundError(f"{digest!r} is not a sha256 digest")
        return f"sha256/{digest[:2]}/{digest}"

    def exists(self, digest: str) -> bool:
        if self._local:
            return (self._base / self._rel(digest)).exists()
        return bool(self._fs.exists(f"{self._base_url}/{self._rel(digest)}"))

    def local_path(self, digest: str, cache_dir: Path | None = None) -> Path:
        """A local file holding the artifact (downloaded into `cache_dir` for remote stores)."""
        if self._local:
            path = self._base / self._rel(digest)
            if not path.exists():
                raise NotFoundError(f"artifact {digest[:12]} is not in the store at {self.root}")
            return path
        target = (cache_dir or Path(".mlcrew/cache")) / digest
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".{uuid.uuid4().hex}.part")
            self._fs.get(f"{self._base_url}/{self._rel(digest)}", str(tmp))
            os.replace(tmp, target)
        return target

    def read_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        """The artifact's bytes; with `verify` (the default) its sha256 is checked first, so a
        blob changed on disk is never loaded as a model or fed to a stage."""
        if self._local:
            data = self.local_path(digest).read_bytes()
        else:
            with self._fs.open(f"{self._base_url}/{self._rel(digest)}", "rb") as f:
                data = bytes(f.read())
        if verify and hashlib.sha256(data).hexdigest() != digest:
            raise self.corrupt(digest)
        return data

    def copy_to(self, digest: str, target: Path) -> Path:
        """A private, verified copy of the artifact at `target` (a stage may do as it likes
        with it; the store's blob is never handed out)."""
        h = hashlib.sha256()
        tmp = target.with_name(target.name + ".part")
        target.parent.mkdir(parents=True, exist_ok=True)
        src: IO[bytes]
        if self._local:
            src = open(self.local_path(digest), "rb")  # noqa: SIM115 - closed below
        else:
            src = self._fs.open(f"{self._base_url}/{self._rel(digest)}", "rb")
        with src, open(tmp, "wb") as out:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                h.update(chunk)
                out.write(chunk)
        if h.hexdigest() != digest:
            tmp.unlink(missing_ok=True)
            raise self.corrupt(digest)
        os.replace(tmp, target)
        return target

    def check(self, digest: str) -> bool | None:
        """True if the blob matches its digest, False if it does not, None if it is missing."""
        if not self.exists(digest):
            return None
        h = hashlib.sha256()
        if self._local:
            f: IO[bytes] = open(self._base / self._rel(digest), "rb")  # noqa: SIM115
        else:
            f = self._fs.open(f"{self._base_url}/{self._rel(digest)}", "rb")
        with f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(chunk)
        return h.hexdigest() == digest

    def location(self, digest: str) -> str:
        return f"{self.root.rstrip('/')}/{self._rel(digest)}"

    def corrupt(self, digest: str) -> StoreError:
        return StoreError(
            f"artifact {digest[:12]} is corrupt: its content no longer matches its sha256 "
            f"({self.location(digest)}); restore it from a backup, or delete it and re-create it "
            "with 'mlcrew run --force'. 'mlcrew store verify' checks every artifact."
        )

    # -- writes
    def put_bytes(self, data: bytes) -> str:
        import io

        return self.put_stream(io.BytesIO(data))

    def put_file(self, path: Path | str) -> str:
        with open(path, "rb") as f:
            return self.put_stream(f)

    def put_stream(self, stream: IO[bytes]) -> str:
        """Copy a stream into the store; return its sha256. Atomic: all or nothing is visible."""
        h = hashlib.sha256()
        if self._local:
            tmp_dir = self._base / "tmp"
            tmp_dir.mkdir(parents=True, exist_ok=True)
            tmp = tmp_dir / uuid.uuid4().hex
            try:
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
                raise StoreError(
                    f"cannot write to the artifact store at {self.root}: {exc}"
                ) from exc
        tmp_url = f"{self._base_url}/tmp/{uuid.uuid4().hex}"
        try:
            with self._fs.open(tmp_url, "wb") as out:
                for chunk in iter(lambda: stream.read(CHUNK), b""):
                    h.update(chunk)
                    out.write(chunk)
            digest = h.hexdigest()
            final_url = f"{self._base_url}/{self._rel(digest)}"
            if not self._fs.exists(final_url):
                self._fs.mv(tmp_url, final_url)
            else:
                self._fs.rm(tmp_url)
            return digest
        except OSError as exc:
            raise StoreError(f"cannot write to the artifact store at {self.root}: {exc}") from exc

    def digests(self) -> Iterator[str]:
        """Every complete artifact in the store (temporaries are never listed)."""
        if self._local:
            base = self._base / "sha256"
            if base.exists():
                for p in sorted(base.glob("*/*")):
                    yield p.name
            return
        for p in sorted(self._fs.glob(f"{self._base_url}/sha256/*/*")):
            yield p.rsplit("/", 1)[-1]

    def clean_tmp(self, older_than: float = 3600.0) -> int:
        """Remove leftovers of writers that died mid-write (never visible). Only files untouched
        for `older_than` seconds go, so a concurrent writer's file is left alone."""
        if not self._local:
            return 0
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


def file_digest(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
