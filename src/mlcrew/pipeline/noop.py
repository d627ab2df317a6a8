"""The cached no-op `mlcrew run`, answered without importing the store, the spec or Typer.

A run that changes nothing still costs a Python process that imports SQLAlchemy, pydantic and
the CLI (about a second). Most runs in a working day are such no-ops (a scheduler, a make
target, CI). So a successful run leaves a *fingerprint* in `.mlcrew/noop.json`: the spec's
bytes, the stamp (size, modification time, inode) of every file whose digest it used, a stamp
of mlcrew's code and of the installed packages, and each stage's cache key. The next
`mlcrew run` with the same plain options compares the fingerprint with the world and, if nothing
moved, replays the run with the standard library's `sqlite3`:

- under the same project lock as a full run, it looks up each key's latest execution (as the
  runner does), checks the outputs and inputs are still in the store and that no other run of
  the project came in between;
- it writes the same records as the runner (the run, its cached stage executions, the audit
  event, the project's spec) in one transaction, and prints the same document.

Anything it cannot vouch for (another database than the embedded SQLite, an object store, SQL,
remote, glob or labels sources, freshness checks, a changed file, an unknown key) falls back to
the full path, which is always right. `MLCREW_NO_FASTPATH=1` turns the replay off.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FORMAT = "mlcrew.noop/1"
FINGERPRINT = Path(".mlcrew") / "noop.json"
SPEC_FILE = "mlcrew.yaml"
# Environment variables that change where a run reads or writes, or how it executes.
ENV = ("MLCREW_DB_URL", "MLCREW_ARTIFACTS", "MLCREW_CACHE", "RAY_ADDRESS")
# Gates failed (or a promotion refused): the exit code `mlcrew run` uses.
GATES_FAILED = 3
_OWN = ("format", "environment", "env")  # keys remember() computes itself


def stamp(path: str | Path) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def environment_stamp() -> str:
    """mlcrew's code, the installed packages and the interpreter: a stage's version and its
    libraries' versions (parts of every cache key) can only change with one of them."""
    h = hashlib.sha256()
    h.update(f"{sys.version}\0{sys.executable}\0".encode())
    package = Path(__file__).resolve().parents[1]
    for folder, dirs, files in os.walk(package):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                h.update(f"{path}\0{stamp(path)}\0".encode())
    for entry in sys.path:
        if entry.endswith(("site-packages", "dist-packages")) and os.path.isdir(entry):
            # Installing, upgrading or removing a distribution adds or removes its
            # *.dist-info folder, which changes the folder's modification time.
            h.update(f"{entry}\0{os.stat(entry).st_mtime_ns}\0".encode())
    return h.hexdigest()


def _now() -> str:
    """A timestamp as SQLAlchemy stores one in SQLite (UTC, no zone)."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def forget(project_root: Path) -> None:
    """Drop the fingerprint: a run is starting, so what it vouched for may change."""
    with suppress(FileNotFoundError):
        (project_root / FINGERPRINT).unlink()


def remember(project_root: Path, doc: dict[str, Any]) -> None:
    """Write the fingerprint atomically (the runner calls this after a successful run)."""
    path = project_root / FINGERPRINT
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "format": FORMAT,
        "environment": environment_stamp(),
        "env": {k: os.environ.get(k) for k in ENV},
        **doc,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".noop-")
    with os.fdopen(fd, "w") as f:
        json.dump(body, f, sort_keys=True)
    os.replace(tmp, path)


class _Stale(Exception):
    """Something the fingerprint vouched for moved: take the full path."""


def _options(argv: list[str]) -> tuple[Path, bool] | None:
    """(project folder, --json) for `run` with no options beyond -p/--project and --json."""
    if not argv or argv[0] != "run":
        return None
    project, json_out, rest = ".", False, argv[1:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--json":
            json_out = True
        elif arg in ("-p", "--project") and i + 1 < len(rest):
            project = rest[i + 1]
            i += 1
        elif arg.startswith("--project="):
            project = arg.split("=", 1)[1]
        else:
            return None  # --force, --verify, --executor, --help, ...: the full CLI decides
        i += 1
    return Path(project), json_out


@contextmanager
def _lock(path: str) -> Iterator[None]:
    """The project's run lock (the same file `NamedLock` takes on SQLite); a run in progress
    means the full path, which waits for it and says so."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _Stale("another run holds the lock") from None
        yield
    finally:
        os.close(fd)


def _check_world(root: Path, fp: dict[str, Any], spec_bytes: bytes) -> None:
    if fp.get("format") != FORMAT or fp.get("root") != str(root):
        raise _Stale("fingerprint of another format or folder")
    if hashlib.sha256(spec_bytes).hexdigest() != fp["spec_sha256"]:
        raise _Stale("the spec changed")
    if fp["env"] != {k: os.environ.get(k) for k in ENV}:
        raise _Stale("the environment changed")
    for path, was in fp["files"].items():
        if stamp(path) != was:
            raise _Stale(f"{path} changed")
    for path in fp["blobs"]:
        if not os.path.exists(path):
            raise _Stale(f"{path} is no longer in the store")
    if fp["environment"] != environment_stamp():
        raise _Stale("mlcrew, the packages or the interpreter changed")


def _connect(db: str) -> sqlite3.Connection:
    from urllib.parse import quote

    # mode=rw: a database that is gone is an error here, never a new empty file.
    con = sqlite3.connect(f"file:{quote(db)}?mode=rw", uri=True, isolation_level=None, timeout=30.0)
    con.execute("PRAGMA busy_timeout=30000")
    con.execute("PRAGMA foreign_keys=ON")
    return con


def _replay(root: Path, fp: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Write the replayed run and return (its JSON document, the RunResult)."""
    from mlcrew.people.identity import os_user
    from mlcrew.pipeline.results import RunResult, StageOutcome, new_run_id

    project = fp["project"]
    con = _connect(fp["db"])
    try:
        revision = con.execute("SELECT version_num FROM alembic_version").fetchone()
        if revision is None or revision[0] != fp["revision"]:
            raise _Stale("the store was migrated")
        con.execute("BEGIN IMMEDIATE")
        try:
            last = con.execute(
                "SELECT id FROM runs WHERE project = ? ORDER BY started_at DESC, id DESC LIMIT 1",
                (project,),
            ).fetchone()
            if last is None or last[0] != fp["last_run"]:
                raise _Stale("another run came in between")
            hits: list[tuple[int, dict[str, Any]]] = []
            outcomes: list[StageOutcome] = []
            for stage in fp["stages"]:
                row = con.execute(
                    "SELECT id, outputs, record FROM stage_executions WHERE project = ? AND "
                    "key = ? AND state = 'executed' ORDER BY id DESC LIMIT 1",
                    (project, stage["key"]),
                ).fetchone()
                if row is None or json.loads(row[1]) != stage["outputs"]:
                    raise _Stale(f"stage {stage['name']}: its execution changed")
                record = json.loads(row[2])
                hits.append((row[0], record))
                outcomes.append(
                    StageOutcome(stage["name"], "cached", stage["outputs"], 0.0, record)
                )
            champion = None
            if fp["model"] is not None:
                held = con.execute(
                    "SELECT version FROM aliases WHERE project = ? AND name = ? AND alias = ?",
                    (project, fp["model"], "champion"),
                ).fetchone()
                champion = {"name": fp["model"], "version": held[0]} if held else None
            run_id = new_run_id()
            verdict = next(
                (o.record.get("verdict") for o in outcomes if o.name == "evaluate"), None
            )
            result = RunResult(
                run_id, outcomes, verdict, champion, "ok", None, champion, None, fp["policy"]
            )
            doc = result.to_json()
            started = _now()
            summary = {
                **doc,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "executor": fp["executor"],
                "replayed": True,
            }
            con.execute(
                "INSERT INTO runs (id, kind, of_run, status, spec_digest, started_at, "
                "finished_at, summary, error, project) VALUES (?, 'run', NULL, 'ok', ?, ?, ?, ?, "
                "NULL, ?)",
                (run_id, fp["spec_digest"], started, _now(), json.dumps(summary), project),
            )
            con.execute(
                "INSERT INTO audit_events (project, at, actor, action, target, details) "
                "VALUES (?, ?, ?, 'run', ?, ?)",
                (project, started, os_user()[:128], run_id, json.dumps({"force": False})),
            )
            for (hit, _), stage in zip(hits, fp["stages"], strict=True):
                con.execute(
                    "INSERT INTO stage_executions (run_id, position, stage, key, version, "
                    "config, seed, inputs, outputs, record, state, libraries, seconds, "
                    "finished_at, project) SELECT ?, ?, stage, key, version, config, seed, "
                    "inputs, outputs, record, 'cached', libraries, 0.0, ?, project "
                    "FROM stage_executions WHERE id = ?",
                    (run_id, stage["position"], _now(), hit),
                )
            changed = con.execute(
                "UPDATE projects SET spec_digest = ?, updated_at = ? WHERE name = ?",
                (fp["spec_digest"], _now(), project),
            ).rowcount
            if changed != 1:
                raise _Stale("the project is not registered")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
    finally:
        con.close()
    return doc, result


def replay(argv: list[str]) -> int | None:
    """Answer `mlcrew run` from the fingerprint if nothing changed: the exit code, or None when
    the full CLI must run (nothing was written then)."""
    if os.environ.get("MLCREW_NO_FASTPATH"):
        return None
    options = _options(argv)
    if options is None:
        return None
    folder, json_out = options
    try:
        root = folder.resolve()
        fp_path = root / FINGERPRINT
        raw = fp_path.read_bytes()
        fp = json.loads(raw)
        spec_bytes = (root / SPEC_FILE).read_bytes()
        with _lock(fp["lock"]):
            if fp_path.read_bytes() != raw:
                raise _Stale("a run rewrote the fingerprint")
            _check_world(root, fp, spec_bytes)
            doc, result = _replay(root, fp)
            # Written: from here on this run happened, whatever else fails.
            fp["last_run"] = doc["run_id"]
            try:
                remember(root, {k: v for k, v in fp.items() if k not in _OWN})
            except OSError:
                forget(root)  # the next run takes the full path, which rewrites it
    except (_Stale, OSError, ValueError, KeyError, TypeError, sqlite3.Error):
        return None
    _print(doc, result, json_out)
    refused = result.promotion is not None and not result.promotion.promoted
    return GATES_FAILED if (result.verdict and not result.verdict["passed"]) or refused else 0


def _print(doc: dict[str, Any], result: Any, json_out: bool) -> None:
    if json_out:
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
        sys.stdout.flush()
        return
    from mlcrew.cli.render import err_console, print_run, stage_line

    for stage in result.stages:
        err_console.print(stage_line(stage.name, "cached"))
    print_run(result)
