"""The access log: one line per request, errors included, written off the request path.

A request appends a tuple to a deque (no formatting, no I/O); a thread formats and writes the
lines every 0.2 s, so logging costs the hot path about a microsecond.
"""

from __future__ import annotations

import atexit
import sys
import threading
import time
from collections import deque
from typing import TextIO

FLUSH_SECONDS = 0.2
PATH_CHARS = 200


class AccessLog:
    def __init__(self, stream: TextIO | None = None, interval: float = FLUSH_SECONDS) -> None:
        self.stream = stream
        self.interval = interval
        self._lines: deque[tuple[float, str, str, str, int, float, str]] = deque(maxlen=100_000)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def record(
        self, client: str, method: str, path: str, status: int, seconds: float, request_id: str
    ) -> None:
        self._lines.append((time.time(), client, method, path, status, seconds, request_id))
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="mlcrew-access-log", daemon=True
                    )
                    self._thread.start()
                    atexit.register(self.close)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> None:
        lines = self._lines
        if not lines:
            return
        out = []
        second, stamp = -1, ""
        while lines:
            at, client, method, path, status, seconds, rid = lines.popleft()
            if int(at) != second:
                second = int(at)
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at))
            if len(path) > PATH_CHARS:
                path = path[:PATH_CHARS] + "..."
            if not path.isprintable():  # no forged lines from a crafted URL
                path = path.encode("unicode_escape").decode("ascii")
            out.append(
                f'{stamp}.{int(at % 1 * 1000):03d}Z {client} "{method} {path}" {status} '
                f"{seconds * 1000:.1f}ms {rid}\n"
            )
        stream = self.stream or sys.stderr
        try:
            stream.write("".join(out))
            stream.flush()
        except (OSError, ValueError):  # a closed stream must not kill the service
            pass

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.flush()
