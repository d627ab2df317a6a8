"""Where a source's data is read from: its file, or (for `labels: consensus`) the project's
consensus labels exported to a file under .mlcrew/labels/, rewritten on each read so it always
holds the labels as they are now."""

from __future__ import annotations

from pathlib import Path

from mlcrew.spec import Source
from mlcrew.store import Store

LABELS_DIR = Path(".mlcrew") / "labels"


def source_path(project: Path, path: str) -> Path:
    return Path(path) if Path(path).is_absolute() else project / path


def source_file(project: Path, store: Store, name: str, src: Source) -> Path:
    """The file holding the source's data now (None-free: a labels source is exported)."""
    if src.labels is None:
        return source_path(project, src.file)
    from mlcrew.labeling.export import export_labels

    return export_labels(store, project / LABELS_DIR / f"{name}.parquet").path
