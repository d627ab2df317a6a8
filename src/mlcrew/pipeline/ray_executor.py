"""The Ray executor: a stage's units run as Ray tasks on a cluster; the driver keeps the rest.

Imported only when a run asks for `ray`. The shared value (training tables) goes once into Ray's
object store (`ray.put`) and every task gets it from there; a task returns its result and never
touches the artifact store or the database. Results are read in unit order, never in completion
order, so the driver combines them exactly as the local executor does. Each task also reports
the versions of the stage's libraries on its worker: they are in the stage's cache key as the
driver sees them, so a worker with other versions is refused rather than trusted.

Connecting is lazy (a fully cached run never touches the cluster) and checks that the address
answers on TCP first, so an unreachable cluster is a clear error in seconds instead of Ray's
own minute of retries.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from mlcrew.errors import ExecutorError
from mlcrew.pipeline.keys import library_versions

S = TypeVar("S")
U = TypeVar("U")
R = TypeVar("R")

CONNECT_TIMEOUT = 5.0  # seconds for the TCP check of the head's address
PENDING_WAIT = 600.0  # seconds to let a failed stage's other units finish before raising


def _run_unit(
    fn: Callable[[Any, Any], Any], shared: Any, unit: Any, libraries: tuple[str, ...]
) -> tuple[Any, dict[str, str], str]:
    """What a Ray worker runs: the unit, plus this worker's library versions and its name."""
    result = fn(shared, unit)
    return result, library_versions(libraries), f"{socket.gethostname()} pid {os.getpid()}"


def host_port(address: str) -> tuple[str, int]:
    """`HOST:PORT` or `ray://HOST:PORT` -> (host, port)."""
    bare = address.removeprefix("ray://").rstrip("/")
    host, sep, port = bare.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ExecutorError(
            f"Ray address {address!r} is not HOST:PORT (or ray://HOST:PORT for Ray Client); "
            "fix execution.address in mlcrew.yaml or --address"
        )
    return host.strip("[]"), int(port)


class RayExecutor:
    """Units as Ray tasks on the cluster at `address` (the head's HOST:PORT, or ray://...)."""

    def __init__(self, address: str) -> None:
        host_port(address)  # a malformed address is refused before anything runs
        self.address = address
        self.units_run = 0  # units this executor ran on the cluster (tests and benches read it)
        self._ray: Any = None
        self._owned = False  # we called ray.init, so close() calls ray.shutdown
        self._remote: Any = None

    @property
    def description(self) -> str:
        return f"ray@{self.address}"

    def _connect(self) -> Any:
        if self._ray is not None:
            return self._ray
        try:
            import ray
        except ImportError:
            raise ExecutorError(
                "the ray executor needs Ray, which is not installed: pip install 'mlcrew[ray]' "
                "(or run with --executor local)"
            ) from None
        if not ray.is_initialized():
            host, port = host_port(self.address)
            try:
                socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
            except OSError as exc:
                raise ExecutorError(
                    f"cannot reach the Ray cluster at {self.address}: {exc.strerror or exc}; "
                    "start its head (ray start --head --port PORT) or fix execution.address / "
                    "--address"
                ) from None
            try:
                ray.init(
                    address=self.address,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                    configure_logging=True,
                )
            except Exception as exc:  # ConnectionError, RuntimeError, AuthenticationError, ...
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise ExecutorError(
                    f"cannot connect to the Ray cluster at {self.address}: "
                    f"{exc.__class__.__name__}: {first}; with token authentication "
                    "(RAY_AUTH_MODE=token) this process needs the cluster's token "
                    "(RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)"
                ) from None
            self._owned = True
        self._ray = ray
        self._remote = ray.remote(_run_unit)
        return ray

    def map(
        self,
        fn: Callable[[S, U], R],
        shared: S,
        units: Sequence[U],
        *,
        label: str,
        cpus: int = 1,
        libraries: tuple[str, ...] = (),
    ) -> list[R]:
        if not units:
            return []
        ray = self._connect()
        largest = max(
            (n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=0.0
        )
        if cpus > largest:
            # Ray would queue such a task forever, waiting for a node that never comes.
            raise ExecutorError(
                f"{label}: a unit needs {cpus} CPUs (training.threads), but the largest node of "
                f"the Ray cluster at {self.address} has {largest:g}; lower training.threads or "
                "add a bigger node"
            )
        shared_ref = ray.put(shared)
        task = self._remote.options(num_cpus=cpus)
        refs = [task.remote(fn, shared_ref, unit, libraries) for unit in units]
        expected = library_versions(libraries)
        results: list[R] = []
        try:
            for index, ref in enumerate(refs):
                try:
                    value, versions, worker = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    raise ExecutorError(
                        f"{label}: unit {index} failed on a Ray worker at {self.address}: "
                        f"{_cause(exc)}"
                    ) from None
                except ray.exceptions.RayError as exc:
                    raise ExecutorError(
                        f"{label}: unit {index} was lost on the Ray cluster at {self.address}: "
                        f"{exc.__class__.__name__}: {str(exc).strip().splitlines()[0]}"
                    ) from None
                differ = {k: v for k, v in versions.items() if v != expected.get(k)}
                if differ:
                    theirs = ", ".join(f"{k} {v}" for k, v in sorted(differ.items()))
                    ours = ", ".join(f"{k} {expected[k]}" for k in sorted(differ))
                    raise ExecutorError(
                        f"{label}: unit {index} ran on a Ray worker ({worker}) with {theirs}, "
                        f"but this driver has {ours}; the stage's cache key records the "
                        "driver's versions, so install the same versions on every node"
                    )
                results.append(value)
                self.units_run += 1
        except BaseException:
            # The other units are let finish, not cancelled: Ray 2.60's driver aborts the whole
            # process (a failed RAY_CHECK, "Tried to complete task that was not pending") when
            # a cancelled task's reply arrives after the cancellation, which is what killed
            # the test process in CI. A failed stage so costs the rest of its units' time.
            pending = refs[len(results) :]
            with contextlib.suppress(Exception):
                ray.wait(pending, num_returns=len(pending), timeout=PENDING_WAIT)
            raise
        return results

    def close(self) -> None:
        if self._ray is not None and self._owned:
            self._ray.shutdown()
        self._ray = None
        self._remote = None
        self._owned = False


def _cause(exc: Exception) -> str:
    """The worker's own exception as `Type: message`, without Ray's traceback wrapping."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{cause.__class__.__name__}: {cause}"
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else exc.__class__.__name__
