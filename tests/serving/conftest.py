"""Serving fixtures: a served trained project, rows, and a project with two versions."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlcrew.pipeline.runner import Runner
from mlcrew.project import EXAMPLES, Project
from mlcrew.registry.versions import set_alias
from tests.conftest import run_pipeline

GOOD_ROW: dict[str, Any] = {
    "hr": 17,
    "holiday": 0,
    "weekday": 5,
    "workingday": 1,
    "weathersit": "clear",
    "temp": 0.8,
    "atemp": 0.72,
    "hum": 0.45,
    "windspeed": 0.2,
}


def copy_example(target: Path) -> Path:
    shutil.copytree(EXAMPLES / "bikeshare", target, ignore=shutil.ignore_patterns(".mlcrew"))
    return target


def set_rounds(root: Path, rounds: int) -> None:
    spec = root / "mlcrew.yaml"
    text = spec.read_text()
    spec.write_text(text.replace("rounds: 300", f"rounds: {rounds}"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def two_versions(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Project]:
    """A project with versions 1 (300 rounds) and 2 (60 rounds); champion is version 1.
    On both metadata backends (PostgreSQL when the suite runs with one)."""
    root = copy_example(tmp_path_factory.mktemp("two") / "bikeshare")
    if request.param == "postgresql":
        from tests.conftest import _pg_database

        url = _pg_database()
        # `mlcrew serve` subprocesses find the same database through the spec.
        spec = root / "mlcrew.yaml"
        spec.write_text(spec.read_text() + f"\nstore: {{db: '{url}'}}\n")
    proj = Project.open(root)
    Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
    set_rounds(root, 60)
    run_pipeline(proj)
    set_alias(proj.store, proj.spec.name, "champion", 1)
    yield proj
    proj.close()
