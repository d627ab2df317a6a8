"""Executors: where a stage's independent units of work (training trials) run.

The runner hands each stage execution to an executor (`execute_stage(..., executor=)`), and a
stage hands its units to the same executor through `StageContext.map`, so a stage never imports
Ray. `local` runs units one after another in this process (the default; it imports nothing).
`ray` (pipeline/ray_executor.py, imported only when chosen) runs them as Ray tasks.

Whatever the executor, a unit is a pure function of (shared value, unit value); results come
back in unit order, and only the driver (this process) writes to the store and the database.
The executor is therefore not part of any cache key: a run on Ray and a run in-process are the
same run and give the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

from mlcrew.errors import SpecError

if TYPE_CHECKING:
    from mlcrew.spec import Execution

S = TypeVar("S")
U = TypeVar("U")
R = TypeVar("R")

Engine = Literal["local", "ray"]
ENGINES: tuple[Engine, ...] = ("local", "ray")


class Executor(Protocol):
    """Runs a stage's units: `fn(shared, unit)` for each unit, results in unit order."""

    @property
    def description(self) -> str:
        """What a run records as its executor ("local", "ray@HOST:PORT")."""
        ...

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
        """`[fn(shared, u) for u in units]`, wherever the executor runs them.

        `label` names the work in errors ("train trials"); `cpus` is what one unit uses;
        `libraries` are distributions whose versions must match the driver's wherever a unit
        runs (they are in the stage's cache key)."""
        ...

    def close(self) -> None:
        """Release what the executor holds (a Ray connection); it may not be used after."""
        ...


class LocalExecutor:
    """Units run one after another in this process: today's behaviour, no new import."""

    description = "local"

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
        return [fn(shared, unit) for unit in units]

    def close(self) -> None:
        return None


def make_executor(
    execution: Execution, engine: str | None = None, address: str | None = None
) -> Executor:
    """The executor the spec's `execution` section names, with `--executor`/`--address` winning.

    A Ray address comes from `address`, then `execution.address`, then `RAY_ADDRESS`."""
    chosen = engine or execution.engine
    if chosen not in ENGINES:
        raise SpecError(f"--executor {chosen!r} is not an executor; valid: {', '.join(ENGINES)}")
    if chosen == "local":
        if address:
            raise SpecError(
                f"--address {address} is for the ray executor; add --executor ray, or set "
                "execution.engine: ray in mlcrew.yaml"
            )
        return LocalExecutor()
    where = address or execution.address or os.environ.get("RAY_ADDRESS")
    if not where:
        raise SpecError(
            "the ray executor needs the cluster's address: set execution.address in mlcrew.yaml "
            "(HOST:PORT of the head, as printed by `ray start --head`), pass --address HOST:PORT, "
            "or set RAY_ADDRESS"
        )
    from mlcrew.pipeline.ray_executor import RayExecutor

    return RayExecutor(where)
