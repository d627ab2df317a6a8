"""A project to track runs in, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcrew.project import Project, init_project


@pytest.fixture()
def proj(tmp_path: Path, db_url: str) -> Iterator[Project]:
    root = init_project(tmp_path / "bikes")
    project = Project.open(root, db_url=db_url)
    yield project
    project.close()
