"""A project folder: its spec, its store, and creating one from a shipped example."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcrew.errors import ProjectError
from mlcrew.pipeline.reproduce import reproduce
from mlcrew.pipeline.runner import Progress, Runner
from mlcrew.pipeline.runs import RunResult
from mlcrew.pipeline.status import status
from mlcrew.registry.promotion import AliasMove, history, promote, rollback
from mlcrew.spec import SPEC_FILE, Spec, parse_spec
from mlcrew.spec_yaml import read_utf8
from mlcrew.store import Store

EXAMPLES = Path(__file__).parent / "examples"


@dataclass
class Project:
    root: Path
    spec: Spec
    spec_text: str
    store: Store

    @classmethod
    def open(cls, root: Path | str = ".", db_url: str | None = None) -> Project:
        """Load the spec (failing fast with file:line on errors) and open the store."""
        root = Path(root).resolve()
        path = root / SPEC_FILE
        if not path.exists():
            raise ProjectError(
                f"{path}: no {SPEC_FILE} here; create a project with "
                "'mlcrew init --example bikeshare DIR' or pass --project DIR"
            )
        text = read_utf8(path)
        spec = parse_spec(text, path)
        # Precedence: an explicit URL, then the environment, then the spec, then the defaults.
        url = db_url or os.environ.get("MLCREW_DB_URL") or _db_url(spec.store.db, root)
        artifacts = os.environ.get("MLCREW_ARTIFACTS") or _location(spec.store.artifacts, root)
        store = Store.open(
            root,
            db_url=url,
            artifacts=artifacts,
            name=spec.name,
            endpoint_url=spec.store.endpoint_url,
        )
        return cls(root, spec, text, store)

    def run(self, *, force: bool = False, progress: Progress | None = None) -> RunResult:
        """Run the pipeline (cached stages are reused unless `force`)."""
        return Runner(self.root, self.store, self.spec, self.spec_text, progress).run(force=force)

    def status(self) -> list[dict[str, Any]]:
        """Each stage as fresh, stale (with why) or never run."""
        return status(self.root, self.store, self.spec)

    def reproduce(self, run_id: str) -> dict[str, Any]:
        """Re-execute a run with the cache bypassed and compare every output digest."""
        return reproduce(self.store, run_id)

    def promote(
        self, version: int, *, reason: str, alias: str = "champion", force: bool = False
    ) -> AliasMove | None:
        """Gated promotion of one of this project's versions (see `mlcrew.promote`)."""
        return promote(
            self.store,
            self.spec.name,
            version,
            reason=reason,
            alias=alias,
            force=force,
            margin=self.spec.registry.margin,
        )

    def rollback(self, *, alias: str = "champion", reason: str = "") -> AliasMove:
        """Move `alias` back to its previous holder."""
        return rollback(self.store, self.spec.name, alias=alias, reason=reason)

    def history(self, alias: str | None = None) -> list[AliasMove]:
        """The alias audit log of this project's model, newest first."""
        return history(self.store, self.spec.name, alias)

    def close(self) -> None:
        self.store.close()


def _db_url(url: str | None, root: Path) -> str | None:
    """A relative SQLite path in the spec is relative to the project, not to the shell."""
    prefix = "sqlite:///"
    if url and url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        return prefix + str(root / url[len(prefix) :])
    return url


def _location(path: str | None, root: Path) -> str | None:
    if path and "://" not in path and not Path(path).is_absolute():
        return str(root / path)
    return path


def examples() -> list[str]:
    return sorted(p.name for p in EXAMPLES.iterdir() if (p / SPEC_FILE).exists())


def init_project(directory: Path | str, example: str = "bikeshare", force: bool = False) -> Path:
    """Copy a shipped example into `directory` (which must be empty unless `force`)."""
    source = EXAMPLES / example
    if not (source / SPEC_FILE).exists():
        raise ProjectError(
            f"no example named {example!r}; available: {', '.join(examples()) or 'none'}"
        )
    target = Path(directory).resolve()
    if target.exists() and any(target.iterdir()) and not force:
        raise ProjectError(
            f"{target} is not empty; choose an empty folder or use --force to overwrite"
        )
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name in (".mlcrew", "__pycache__"):
            continue
        dest = target / item.name
        if item.is_dir():
            shutil.copytree(item, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(item, dest)
    return target
