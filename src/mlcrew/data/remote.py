"""Sources on object stores (s3://, gs://, ... any fsspec URL): listed, stamped and
downloaded through fsspec; DuckDB's httpfs extension downloads itself at run time, which fails
offline. The stamp of a remote file (size, ETag or modification time) plays the part of a
local file's (size, mtime, inode) in the digest cache, so an unchanged object is not fetched
again to learn its digest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlcrew.errors import DataError
from mlcrew.store.remote import S3_PROTOCOLS, protocol_of, redact_url, resolve_endpoint


def is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def open_fs(url: str, endpoint_url: str | None, label: str) -> tuple[Any, str]:
    import fsspec

    options: dict[str, Any] = {}
    if protocol_of(url) in S3_PROTOCOLS:
        options = {"use_listings_cache": False, "skip_instance_cache": True}
        endpoint = resolve_endpoint(endpoint_url)
        if endpoint:
            options["endpoint_url"] = endpoint
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError) as exc:
        raise DataError(f"{label}: cannot open {redact_url(url)}: {exc}") from None
    return fs, path


def list_remote(url: str, endpoint_url: str | None, label: str) -> list[tuple[str, dict[str, Any]]]:
    """(URL, info) of the object or of every object a glob matches, sorted by name."""
    fs, path = open_fs(url, endpoint_url, label)
    protocol = protocol_of(url)
    try:
        if any(c in path for c in "*?["):
            found = fs.glob(path, detail=True)
            items = sorted(found.items()) if isinstance(found, dict) else []
        else:
            items = [(path, fs.info(path))]
    except FileNotFoundError:
        raise DataError(f"{label}: {redact_url(url)} does not exist") from None
    except Exception as exc:  # botocore / aiohttp errors: name the URL, not a traceback
        raise DataError(
            f"{label}: cannot read {redact_url(url)}: {exc.__class__.__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}; check the URL, "
            "the credentials (AWS_ACCESS_KEY_ID, ...) and the endpoint (AWS_ENDPOINT_URL)"
        ) from None
    files = [(f"{protocol}://{p}", info) for p, info in items if info.get("type") != "directory"]
    if not files:
        raise DataError(f"{label}: {redact_url(url)} matches no object")
    return files


def stamp_of(info: dict[str, Any]) -> list[int | str]:
    tag = info.get("ETag") or info.get("etag") or info.get("md5") or ""
    modified = info.get("LastModified") or info.get("mtime") or info.get("updated") or ""
    return [int(info.get("size") or 0), str(tag), str(modified)]


def download(url: str, endpoint_url: str | None, target: Path, label: str) -> Path:
    fs, path = open_fs(url, endpoint_url, label)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    try:
        fs.get_file(path, str(tmp))
    except Exception as exc:
        raise DataError(f"{label}: cannot download {redact_url(url)}: {exc}") from None
    os.replace(tmp, target)
    return target
