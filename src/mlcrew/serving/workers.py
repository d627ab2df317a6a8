"""Several worker processes on one listening socket, forked from a parent that has already
imported everything.

uvicorn's own `--workers` starts each worker as a fresh interpreter that imports FastAPI,
SQLAlchemy, NumPy and LightGBM again (over a second each, all at once on a small machine).
Forking after the imports shares them: a worker only opens the store and loads its model.
The parent holds no thread, connection or event loop when it forks; each worker builds its own.
A worker that dies is replaced; SIGINT or SIGTERM stops them all gracefully (each flushes its
prediction log).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

log = logging.getLogger("mlcrew.serving")

# Worker processes find the project to serve in this variable (api.app.app_from_env reads it).
PROJECT_ENV = "MLCREW_PROJECT"

# A worker that dies this soon after starting, this many times in a row, stops the service.
EARLY_EXIT_SECONDS = 5.0
MAX_EARLY_EXITS = 3


def can_fork() -> bool:
    return hasattr(os, "fork")


def serve_forked(
    factory: Callable[[], Any],
    *,
    host: str,
    port: int,
    workers: int,
    on_worker_exit: Callable[[int], None] | None = None,
    **uvicorn_options: Any,
) -> int:
    """Serve `factory()`'s app from `workers` forked processes until SIGINT/SIGTERM; the exit
    code is 0 after a requested stop, 1 if workers kept dying at start."""
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)

    children: dict[int, float] = {}
    stopping = False

    def start_one() -> None:
        pid = os.fork()
        if pid:
            children[pid] = time.monotonic()
            return
        code = 0
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            config = uvicorn.Config(factory(), **uvicorn_options)
            uvicorn.Server(config).run(sockets=[sock])
        except BaseException:  # the worker reports and exits; the parent decides what next
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    # What the parent imported stays untouched by the workers' collectors, so its memory pages
    # stay shared instead of being copied into every worker.
    gc.collect()
    gc.freeze()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    early_exits = 0
    code = 0
    try:
        for _ in range(workers):
            start_one()
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            started = children.pop(pid, None)
            if started is None:
                continue
            if on_worker_exit is not None:
                on_worker_exit(pid)
            if stopping:
                continue
            lived = time.monotonic() - started
            early_exits = early_exits + 1 if lived < EARLY_EXIT_SECONDS else 0
            if early_exits >= MAX_EARLY_EXITS:
                log.error("workers keep exiting at start (last status %s); stopping", status)
                code = 1
                stop(signal.SIGTERM, None)
                continue
            log.warning("worker %s exited (status %s); starting another", pid, status)
            start_one()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()
    return code
