"""Where a project's prediction logs live in the (shared) artifact store.

Segments are files under `predictions/{project}/{model}/`, so projects sharing one artifact
store never read each other's logs. A store made before projects existed kept them under
`predictions/{model}/`; `adopt_unscoped_logs` moves them under the project that upgrades it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlcrew.store.artifacts import ArtifactStore

FOLDER = "predictions"


def log_folder(project: str, model: str) -> str:
    """The folder (relative to the artifact store) of `model`'s prediction log in `project`."""
    return f"{FOLDER}/{project}/{model}"


def adopt_unscoped_logs(artifacts: ArtifactStore, project: str) -> int:
    """Move the log segments of a single-project store under `project`; return how many moved.
    Run once, right after the metadata moved under the project (migration 0003). The old
    layout is one level shallower (`predictions/{model}/{day}/{segment}`), so only its
    segments match; each move is a rename, on a local disk or an object store alike."""
    old = artifacts.list_files(f"{FOLDER}/*/*/*.parquet")
    for rel in old:
        artifacts.move_file(rel, f"{FOLDER}/{project}/{rel.removeprefix(FOLDER + '/')}")
    return len(old)
