"""Where a project's prediction logs live in the (shared) artifact store.

Segments are files under `predictions/{project}/{model}/`, so projects sharing one artifact
store never read each other's logs. A store made before projects existed kept them under
`predictions/{model}/`; `adopt_unscoped_logs` moves them under the project that upgrades it.
"""

from __future__ import annotations

import os
from pathlib import Path

FOLDER = "predictions"


def log_folder(project: str, model: str) -> str:
    """The folder (relative to the artifact store) of `model`'s prediction log in `project`."""
    return f"{FOLDER}/{project}/{model}"


def adopt_unscoped_logs(root: str, project: str) -> int:
    """Move the log folders of a single-project store under `project`; return how many moved.
    Run once, right after the metadata moved under the project (migration 0003). Each folder
    is first renamed aside, as the model is usually named like the project."""
    if "://" in root and not root.startswith("file://"):
        import fsspec

        fs, base_url = fsspec.core.url_to_fs(root)
        base = f"{base_url.rstrip('/')}/{FOLDER}"
        if not fs.exists(base):
            return 0
        models = [str(e).rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(base, detail=False)]
        models = [m for m in models if not m.startswith(".")]
        for m in models:
            fs.mv(f"{base}/{m}", f"{base}/.adopt-{m}", recursive=True)
        for m in models:
            fs.mv(f"{base}/.adopt-{m}", f"{base}/{project}/{m}", recursive=True)
        return len(models)
    base_dir = Path(root.removeprefix("file://")) / FOLDER
    if not base_dir.is_dir():
        return 0
    names = [e.name for e in base_dir.iterdir() if e.is_dir() and not e.name.startswith(".")]
    for m in names:
        os.replace(base_dir / m, base_dir / f".adopt-{m}")
    (base_dir / project).mkdir(exist_ok=True)
    for m in names:
        os.replace(base_dir / f".adopt-{m}", base_dir / project / m)
    return len(names)
