"""The stage contract: every pipeline step is a plain function over read-only artifacts.

A stage declares its name, code version, a typed config built from the spec (only what it
reads), the artifacts it takes, the artifacts it makes and the libraries whose versions can
change its output. Its function receives that config and a read-only view of its inputs (never
the whole spec, never a path into the store), so a re-run from the recorded config and input
digests is a faithful re-execution. Implementations are imported lazily, so that a cached run
never pays for importing LightGBM or DuckDB.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from mlcrew.errors import NotFoundError
from mlcrew.pipeline.executors import Executor, LocalExecutor

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcrew.spec import Spec
    from mlcrew.store import Store

ConfigT = TypeVar("ConfigT", bound=BaseModel)
S = TypeVar("S")
U = TypeVar("U")
R = TypeVar("R")


class InputView:
    """A stage's inputs, read-only: their bytes, text, tables or a private copy on disk.

    Every read is checked against the input's digest, so a blob changed in the store is
    never fed to a stage."""

    def __init__(self, store: Store, digests: dict[str, str], scratch: Path) -> None:
        self._store = store
        self._digests = dict(digests)
        self._scratch = scratch

    def __contains__(self, ref: object) -> bool:
        return ref in self._digests

    @property
    def digests(self) -> dict[str, str]:
        return dict(self._digests)

    def digest(self, ref: str) -> str:
        try:
            return self._digests[ref]
        except KeyError:
            raise NotFoundError(
                f"input {ref!r} is not declared by this stage; declared: "
                f"{', '.join(sorted(self._digests)) or 'none'}"
            ) from None

    def bytes(self, ref: str) -> bytes:
        return self._store.artifacts.read_bytes(self.digest(ref))

    def text(self, ref: str) -> str:
        return self.bytes(ref).decode("utf-8")

    def json(self, ref: str) -> Any:
        return json.loads(self.bytes(ref))

    def table(self, ref: str) -> pa.Table:
        import pyarrow as pa
        import pyarrow.parquet as pq

        return pq.read_table(pa.BufferReader(self.bytes(ref)))

    def files(self, ref: str) -> list[tuple[str, Path]]:
        """The files of a glob source's manifest input, as (name, private copy): the manifest's
        digest is the input's, and each file is checked against the digest listed in it."""
        from mlcrew.pipeline.sources import read_manifest

        out = []
        for i, entry in enumerate(read_manifest(self.bytes(ref), ref)):
            target = self._scratch / self.digest(ref)[:16] / str(i) / Path(entry["name"]).name
            if not target.exists():
                self._store.artifacts.copy_to(entry["digest"], target)
            out.append((entry["name"], target))
        return out

    def tree(self, ref: str) -> Path:
        """A manifest input (a Python transform's code) laid out as a folder: each file at its
        relative name, checked against its digest."""
        from mlcrew.pipeline.sources import read_manifest

        root = self._scratch / f"tree-{self.digest(ref)[:16]}"
        for entry in read_manifest(self.bytes(ref), ref):
            rel = Path(entry["name"])
            if rel.is_absolute() or ".." in rel.parts:
                raise NotFoundError(f"{ref}: {entry['name']!r} is not a relative path")
            target = root / rel
            if not target.exists():
                self._store.artifacts.copy_to(entry["digest"], target)
        root.mkdir(parents=True, exist_ok=True)
        return root

    def artifact(self, ref: str, digest: str) -> Path:
        """A private copy of an artifact listed by a catalog input (`ref`), by its digest."""
        if digest not in self.bytes(ref).decode():
            raise NotFoundError(f"{digest[:12]} is not listed by input {ref!r}")
        target = self._scratch / digest
        if not target.exists():
            self._store.artifacts.copy_to(digest, target)
        return target

    def path(self, ref: str) -> Path:
        """A private copy of the input as a file, for readers that need a path (DuckDB)."""
        digest = self.digest(ref)
        target = self._scratch / digest
        if not target.exists():
            self._store.artifacts.copy_to(digest, target)
        return target


@dataclass
class StageContext(Generic[ConfigT]):
    """What a stage function may see."""

    config: ConfigT
    inputs: InputView
    workdir: Path
    store: Store
    run_id: str
    dry_run: bool = False  # reproduce: compute outputs, change nothing in the registry
    fresh: bool = False  # run --force: recompute what the stage caches inside (data nodes)
    executor: Executor = field(default_factory=LocalExecutor)
    stage: str = ""
    libraries: tuple[str, ...] = ()  # the stage's declared libraries: units check them

    def map(
        self, fn: Callable[[S, U], R], shared: S, units: Sequence[U], *, cpus: int = 1
    ) -> list[R]:
        """`[fn(shared, u) for u in units]` on the run's executor (in-process or Ray tasks).

        `fn` must be a module-level function whose result depends only on its arguments;
        `shared` is sent once, each unit separately; results come back in unit order."""
        return self.executor.map(
            fn, shared, units, label=self.stage or "stage", cpus=cpus, libraries=self.libraries
        )


@dataclass
class StageResult:
    outputs: dict[str, Path]
    record: dict[str, Any] = field(default_factory=dict)


StageFn = Callable[[StageContext[Any]], StageResult]


@dataclass(frozen=True)
class StageDef:
    """A stage's declaration. `impl` is "module:function", imported on first execution."""

    name: str
    version: str
    config_model: type[BaseModel]
    build_config: Callable[[Spec], BaseModel]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    impl: str
    # Distributions whose versions can change the stage's output; part of the cache key.
    libraries: tuple[str, ...] = ()
    description: str = ""
    # "module:function(store, record)" run when the stage is served from the cache.
    on_cached: str | None = None

    def config(self, spec: Spec) -> BaseModel:
        return self.build_config(spec)

    def load_config(self, recorded: dict[str, Any]) -> BaseModel:
        """A recorded config, validated again (re-execution gets the same typed object)."""
        return self.config_model.model_validate(recorded)

    def input_refs(self, spec: Spec) -> tuple[str, ...]:
        """The declared inputs, with `sources` standing for every `source.NAME` and `code`
        for every Python transform's `code.NAME`."""
        refs: list[str] = []
        for ref in self.inputs:
            if ref == "sources":
                refs += [f"source.{n}" for n in spec.sources]
            elif ref == "code":
                refs += [f"code.{n}" for n, t in spec.transforms.items() if t.python is not None]
            else:
                refs.append(ref)
        return tuple(refs)

    def function(self) -> StageFn:
        fn: StageFn = self.hook(self.impl)
        return fn

    @staticmethod
    def hook(path: str) -> Any:
        module, _, attr = path.partition(":")
        return getattr(importlib.import_module(module), attr)


def dump_config(config: BaseModel) -> dict[str, Any]:
    """The canonical JSON form of a stage config: what is recorded and hashed."""
    data: dict[str, Any] = config.model_dump(mode="json", by_alias=True)
    return data


def check_stage(stage: StageDef, spec: Spec | None = None) -> None:
    """Tell a stage author which part of the contract their declaration breaks."""
    problems: list[str] = []
    if not stage.name.isidentifier():
        problems.append(f"name {stage.name!r} must be an identifier")
    if not stage.version:
        problems.append("version must be set; bump it whenever the stage's code changes output")
    if not stage.outputs:
        problems.append("a stage must declare at least one output")
    if not (isinstance(stage.config_model, type) and issubclass(stage.config_model, BaseModel)):
        problems.append("config_model must be a pydantic model class")
    for ref in stage.inputs:
        if ref not in ("sources", "code") and ref.count(".") != 1:
            problems.append(f"input {ref!r} must read 'stage.output'")
    for lib in stage.libraries:
        from mlcrew.pipeline.keys import library_versions

        if library_versions((lib,))[lib] == "not installed":
            problems.append(f"library {lib!r} is not an installed distribution")
    if ":" not in stage.impl:
        problems.append(f"impl {stage.impl!r} must read 'module:function'")
    else:
        try:
            stage.function()
        except (ImportError, AttributeError) as exc:
            problems.append(f"impl {stage.impl!r} cannot be imported: {exc}")
    if spec is not None and not problems:
        built = stage.config(spec)
        if not isinstance(built, stage.config_model):
            problems.append(
                f"build_config returns {type(built).__name__}, not {stage.config_model.__name__}"
            )
        elif stage.load_config(dump_config(built)) != built:
            problems.append("the config does not survive a JSON round trip (dump -> validate)")
    if problems:
        raise TypeError(f"stage {stage.name!r} breaks the stage contract: " + "; ".join(problems))
