"""Cache keys: a stage execution is known by exactly what it reads.

key = sha256(stage name, code version, canonical config, input digests, library versions)
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import metadata
from typing import Any

from mlcrew.spec import canonical_json


@lru_cache(maxsize=64)
def _version(dist: str) -> str:
    if dist == "python":  # the interpreter, for stages whose output records it
        import platform

        return platform.python_version()
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def library_versions(dists: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of the named distributions (read from metadata, not imported);
    "python" names the interpreter."""
    return {d: _version(d) for d in dists}


def cache_key(
    name: str,
    version: str,
    config: dict[str, Any],
    inputs: dict[str, str],
    libraries: dict[str, str],
) -> str:
    payload = {
        "stage": name,
        "version": version,
        "config": config,
        "inputs": dict(sorted(inputs.items())),
        "libraries": dict(sorted(libraries.items())),
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()
