"""One thread that interrupts queries past their time limit.

A `threading.Timer` per query starts a thread per query (a few milliseconds under load, on the
request's path); this keeps one thread for all of them, sleeping until the nearest deadline.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable


class Watchdog:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], object]]] = []
        self._cancelled: set[int] = set()
        self._ids = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def after(self, seconds: float, action: Callable[[], object]) -> int:
        """Call `action` in `seconds` unless cancelled; return the handle for `cancel`."""
        handle = next(self._ids)
        with self._wake:
            heapq.heappush(self._heap, (time.monotonic() + seconds, handle, action))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="mlcrew-watchdog")
                self._thread.daemon = True
                self._thread.start()
            self._wake.notify()
        return handle

    def cancel(self, handle: int) -> None:
        with self._wake:
            self._cancelled.add(handle)

    def _loop(self) -> None:
        while True:
            with self._wake:
                while True:
                    while self._heap and self._heap[0][1] in self._cancelled:
                        self._cancelled.discard(heapq.heappop(self._heap)[1])
                    if not self._heap:
                        self._cancelled.clear()
                        self._wake.wait()
                        continue
                    due, _, action = self._heap[0]
                    wait = due - time.monotonic()
                    if wait <= 0:
                        heapq.heappop(self._heap)
                        break
                    self._wake.wait(wait)
            with contextlib.suppress(Exception):  # a closed connection cannot be interrupted
                action()


WATCHDOG = Watchdog()
