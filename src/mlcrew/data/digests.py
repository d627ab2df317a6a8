"""A cache of file digests keyed by what the file system says about the file.

Hashing every source on every `run`, `status` and page view costs a full read of the data. A
file whose path, size, modification time (in nanoseconds) and inode are unchanged is taken to
hold the same bytes, as `make` and `git` assume; `--verify` re-hashes anyway. The cache is a
JSON file of the project folder (inodes are this machine's), written atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from mlcrew.store import file_digest


class DigestCache:
    def __init__(self, path: Path | None, verify: bool = False) -> None:
        self.path = path
        self.verify = verify
        self.hashed = 0  # files read in full by this cache (tests and `--verify` read it)
        self._entries: dict[str, list[int | str]] = {}
        self._dirty = False
        # Each file digested through this cache: resolved path -> (size, mtime_ns, inode, digest).
        self.used: dict[str, list[int | str]] = {}
        if path is not None and path.is_file():
            try:
                loaded = json.loads(path.read_text())
                self._entries = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self._entries = {}  # a damaged cache only costs a re-hash

    def digest(self, file: Path) -> str:
        st = file.stat()
        key = str(file.resolve())
        stamp: list[int | str] = [st.st_size, st.st_mtime_ns, st.st_ino]
        known = self.lookup(key, stamp)
        if known is None:
            known = file_digest(file)
            self.hashed += 1
            self.remember(key, stamp, known)
        self.used[key] = [*stamp, known]
        return known

    def lookup(self, key: str, stamp: list[int | str]) -> str | None:
        """The digest recorded for `key` with this exact stamp (None under --verify)."""
        entry = self._entries.get(key)
        if self.verify or entry is None or entry[:-1] != stamp:
            return None
        return str(entry[-1])

    def remember(self, key: str, stamp: list[int | str], digest: str) -> None:
        if self._entries.get(key) != [*stamp, digest]:
            self._entries[key] = [*stamp, digest]
            self._dirty = True

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".digests-")
        with os.fdopen(fd, "w") as f:
            json.dump(self._entries, f, sort_keys=True)
        os.replace(tmp, self.path)
        self._dirty = False
