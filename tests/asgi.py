"""Calling an ASGI application in process from a test, whatever event loop the test's thread
already runs (Playwright's sync API leaves one running in the main thread)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def in_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine `make()` returns to its end on a fresh event loop in its own thread."""
    out: list[T] = []
    errors: list[BaseException] = []

    def main() -> None:
        try:
            out.append(asyncio.run(make()))
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=main, name="asgi-test")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return out[0]
