"""Artifact roots on object stores (S3 and other fsspec URLs): opening the filesystem with the
right endpoint, checking once that the bucket can be used, and turning the client's failures
into one-line `StoreError`s that name the URL and what to set, instead of botocore tracebacks.

Credentials are never read or written here: s3fs asks botocore, which reads the standard AWS
variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ...). The endpoint comes from
AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL when set, else from the spec's `store.endpoint_url`.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Any

from mlcrew.errors import StoreError

S3_PROTOCOLS = ("s3", "s3a")
# Uploads go in parts of this size (S3's minimum is 5 MiB): memory per writer stays bounded and
# a blob is only visible once its last part is in.
UPLOAD_PART = 8 << 20
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


def is_local(root: str) -> bool:
    return "://" not in root or root.startswith("file://")


def protocol_of(root: str) -> str:
    return root.split("://", 1)[0].lower()


def redact_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    if "://" in url and "@" in url.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def resolve_endpoint(spec_endpoint: str | None) -> str | None:
    """The environment wins over the spec, as MLCREW_DB_URL wins over `store.db`."""
    for name in ENDPOINT_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    return spec_endpoint


class RemoteRoot:
    """One artifact root on an object store. The filesystem is opened on first use and again in
    a forked child (a client's connections and event loop belong to the process that made them);
    the first use also checks that the bucket is there and reachable."""

    def __init__(self, root: str, endpoint_url: str | None = None) -> None:
        self.root = root.rstrip("/")
        self.protocol = protocol_of(root)
        self.s3 = self.protocol in S3_PROTOCOLS
        self.endpoint_url = resolve_endpoint(endpoint_url) if self.s3 else None
        self._fs: Any = None
        self._base = ""
        self._pid = 0

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (to ship a store to another process): the client is opened again there."""
        return {**self.__dict__, "_fs": None, "_pid": 0}

    # -- naming things in messages
    @property
    def label(self) -> str:
        return redact_url(self.root)

    @property
    def endpoint_label(self) -> str:
        if self.endpoint_url:
            return redact_url(self.endpoint_url)
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return f"AWS S3 ({region})" if region else "AWS S3"

    @property
    def bucket(self) -> str:
        return self.root.split("://", 1)[1].split("/", 1)[0]

    # -- the filesystem
    @property
    def fs(self) -> Any:
        if self._fs is None or self._pid != os.getpid():
            self._open()
        return self._fs

    def url(self, rel: str) -> str:
        self.fs  # noqa: B018 - opens the filesystem, which sets the base path
        return f"{self._base}/{rel}" if rel else self._base

    def _open(self) -> None:
        try:
            import fsspec
        except ImportError as exc:  # pragma: no cover - fsspec is a dependency
            raise StoreError(f"the artifact store {self.label} needs fsspec") from exc
        options: dict[str, Any] = {}
        if self.s3:
            # Another process may have written since we last looked: never answer from a
            # cached listing.
            options["use_listings_cache"] = False
            options["skip_instance_cache"] = True
            if self.endpoint_url:
                options["endpoint_url"] = self.endpoint_url
        try:
            fs, base = fsspec.core.url_to_fs(self.root, **options)
        except ImportError as exc:
            need = "s3fs: pip install 'mlcrew[s3]'" if self.s3 else f"a package ({exc})"
            raise StoreError(
                f"the artifact store {self.label}: {self.protocol}:// URLs need {need}"
            ) from exc
        except ValueError as exc:
            raise StoreError(
                f"the artifact store {self.label}: {exc}; use a local folder, "
                "s3://bucket/prefix or another fsspec URL"
            ) from exc
        base = base.rstrip("/")
        if self.s3:
            self._probe(fs, base)
        self._fs, self._base, self._pid = fs, base, os.getpid()

    def _probe(self, fs: Any, base: str) -> None:
        """Fail at once, with the fix, when the bucket is missing or cannot be reached."""
        bucket, _, prefix = base.partition("/")
        with self.errors():
            fs.call_s3(
                "list_objects_v2",
                Bucket=bucket,
                Prefix=f"{prefix}/" if prefix else "",
                MaxKeys=1,
            )

    @contextmanager
    def errors(self, missing: Callable[[], Exception] | None = None) -> Iterator[None]:
        """Translate what the object store client raises; `missing` makes the error of an
        object that is not there (else it is raised as FileNotFoundError)."""
        try:
            yield
        except StoreError:
            raise
        except FileNotFoundError as exc:
            if self.s3 and _is_missing_bucket(exc):
                raise StoreError(
                    f"the artifact store {self.label}: bucket {self.bucket!r} does not exist "
                    f"at {self.endpoint_label}; create it (for example 'aws s3 mb "
                    f"s3://{self.bucket}') or point store.artifacts (or MLCREW_ARTIFACTS) at "
                    "a bucket that exists"
                ) from None
            if missing is not None:
                raise missing() from None
            raise
        except PermissionError as exc:
            raise StoreError(
                f"the artifact store {self.label}: access denied at {self.endpoint_label} "
                f"({_short(exc)}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or "
                "AWS_PROFILE) and that they may list, read and write under this prefix"
            ) from None
        except Exception as exc:
            translated = self._translate(exc)
            if translated is None:
                raise
            raise translated from None

    def _translate(self, exc: Exception) -> StoreError | None:
        name = type(exc).__name__
        module = type(exc).__module__
        if name == "NoCredentialsError" or name == "PartialCredentialsError":
            return StoreError(
                f"the artifact store {self.label}: no AWS credentials found; set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the "
                "environment of this process"
            )
        connection = (
            "EndpointConnectionError",
            "ConnectTimeoutError",
            "ReadTimeoutError",
            "ConnectionClosedError",
            "ClientConnectorError",
            "ServerDisconnectedError",
        )
        if name in connection or (module.startswith("aiohttp") and isinstance(exc, OSError)):
            return StoreError(
                f"the artifact store {self.label}: cannot reach the S3 endpoint "
                f"{self.endpoint_label}; start it or set AWS_ENDPOINT_URL (or store.endpoint_url "
                "in mlcrew.yaml) to its address"
            )
        if module.startswith(("botocore", "aiobotocore", "s3fs")) or isinstance(exc, OSError):
            return StoreError(f"the artifact store {self.label}: {name}: {_short(exc)}")
        return None

    # -- operations (paths relative to the root)
    def exists(self, rel: str) -> bool:
        with self.errors():
            return bool(self.fs.exists(self.url(rel)))

    def cat(self, rel: str, missing: Callable[[], Exception]) -> bytes:
        with self.errors(missing):
            return bytes(self.fs.cat_file(self.url(rel)))

    def cat_many(self, rels: list[str], missing: Callable[[], Exception]) -> list[bytes]:
        """Several objects at once (fetched concurrently), in the order asked."""
        if not rels:
            return []
        urls = [self.url(r) for r in rels]
        with self.errors(missing):
            found = self.fs.cat(urls, on_error="raise")
        return [bytes(found[u]) for u in urls]

    def read_chunks(
        self, rel: str, chunk: int, missing: Callable[[], Exception]
    ) -> Iterator[bytes]:
        """The object's bytes in chunks; errors are translated while reading, too."""
        with self.errors(missing), self.fs.open(self.url(rel), "rb") as f:
            while data := f.read(chunk):
                yield data

    def write_atomic(self, rel: str, write: Callable[[IO[bytes]], object]) -> None:
        """Write a temporary object, then move it to `rel`: readers see all of it or nothing.
        A writer killed mid-way leaves at most an unfinished upload under `tmp/`."""
        tmp = self.new_tmp()
        with self.errors():
            with self.fs.open(self.url(tmp), "wb", block_size=UPLOAD_PART) as out:
                write(out)
            self.move(tmp, rel)

    def upload_file(self, local: str, rel: str) -> None:
        """A local file to `rel`, by way of a temporary object."""
        tmp = self.new_tmp()
        with self.errors():
            self.fs.put_file(local, self.url(tmp))
            self.move(tmp, rel)

    def new_tmp(self) -> str:
        """A temporary name that carries its writer's start time, so a cleaner can tell its
        age without trusting the server's dates (S3-compatible servers differ there)."""
        return f"tmp/{time.time_ns() // 1_000_000}-{uuid.uuid4().hex}"

    def move(self, tmp: str, rel: str) -> None:
        with self.errors():
            self.fs.mv(self.url(tmp), self.url(rel))

    def remove(self, rel: str) -> None:
        with self.errors():
            self.fs.rm(self.url(rel))

    def glob(self, pattern: str) -> list[str]:
        """Relative paths of the objects matching `pattern`."""
        prefix = self.url("") + "/"
        with self.errors():
            found = self.fs.glob(self.url(pattern))
        return sorted(str(p).removeprefix(prefix) for p in found)

    def clean_tmp(self, older_than: float) -> int:
        """Remove temporary objects and abandoned uploads under `tmp/` older than `older_than`
        seconds (a killed writer's; a live writer's are newer)."""
        cutoff = time.time() - older_than
        removed = 0
        with self.errors():
            try:
                entries = self.fs.ls(self.url("tmp"), detail=True)
            except FileNotFoundError:
                entries = []
            for entry in entries:
                started = _started(entry["name"], entry.get("LastModified") or entry.get("mtime"))
                if entry.get("type") == "file" and started < cutoff:
                    self.fs.rm(entry["name"])
                    removed += 1
            if self.s3:
                # Not granted? Then the bucket's lifecycle rule is the backstop.
                with contextlib.suppress(PermissionError):
                    removed += self._abort_uploads(cutoff)
        return removed

    def _abort_uploads(self, cutoff: float) -> int:
        """Abort multipart uploads of killed writers (invisible, but they hold storage)."""
        bucket, _, key = self.url("tmp/").partition("/")
        answer = self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key)
        aborted = 0
        for upload in answer.get("Uploads", []):
            if _started(upload["Key"], upload.get("Initiated")) < cutoff:
                self.fs.call_s3(
                    "abort_multipart_upload",
                    Bucket=bucket,
                    Key=upload["Key"],
                    UploadId=upload["UploadId"],
                )
                aborted += 1
        return aborted


def _started(name: str, fallback: Any) -> float:
    """When a temporary's writer started: from its name (see `new_tmp`), else `fallback`."""
    stamp = name.rsplit("/", 1)[-1].split("-", 1)[0]
    if stamp.isdigit():
        return int(stamp) / 1000
    value = fallback
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return float("inf")  # unknown age: keep it


def _is_missing_bucket(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc.__context__
    code = ""
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
    return code == "NoSuchBucket" or "bucket does not exist" in str(exc).lower()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
