"""The sign-in rate limit: failed attempts per user name and per client address in a sliding
window. Kept in the server process (each worker counts its own)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from mlcrew.errors import RateLimited

WINDOW_SECONDS = 300.0
PER_USER = 5
PER_ADDRESS = 20


class LoginLimiter:
    def __init__(
        self,
        per_user: int = PER_USER,
        per_address: int = PER_ADDRESS,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self.limits = {"user": per_user, "address": per_address}
        self.window = window
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, user: str, address: str) -> None:
        """Raise RateLimited if either the user or the address used up its failures."""
        at = time.monotonic()
        with self._lock:
            for key in (("user", user), ("address", address)):
                seen = self._recent(key, at)
                if len(seen) >= self.limits[key[0]]:
                    wait = max(1, math.ceil(seen[0] + self.window - at))
                    who = f"user {user[:64]}" if key[0] == "user" else f"address {address}"
                    raise RateLimited(
                        f"too many failed sign-ins for {who}: try again in {wait} s", wait
                    )

    def failed(self, user: str, address: str) -> None:
        at = time.monotonic()
        with self._lock:
            for key in (("user", user[:64]), ("address", address)):
                self._failures.setdefault(key, deque()).append(at)

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(("user", user[:64]), None)

    def _recent(self, key: tuple[str, str], at: float) -> deque[float]:
        seen = self._failures.get((key[0], key[1][:64]), deque())
        while seen and seen[0] <= at - self.window:
            seen.popleft()
        return seen
