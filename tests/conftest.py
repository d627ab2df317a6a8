"""Shared fixtures: example projects, both metadata backends, and the CI no-skip rule."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcrew.pipeline.runner import Runner
from mlcrew.project import EXAMPLES, Project
from tests.s3 import s3_bucket, s3_endpoint  # noqa: F401 - fixtures for every test module

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_URL = os.environ.get("MLCREW_TEST_PG_URL")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI a skipped test is a failure: PostgreSQL and browser tests must really run there."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which is not allowed: {report.longrepr}"


@pytest.fixture()
def example_dir(tmp_path: Path) -> Path:
    """A fresh copy of the bikeshare example."""
    target = tmp_path / "bikeshare"
    shutil.copytree(EXAMPLES / "bikeshare", target, ignore=shutil.ignore_patterns(".mlcrew"))
    return target


def _pg_database() -> str:
    if not PG_URL:
        pytest.skip("no PostgreSQL: run the suite with 'make test' (it starts a throwaway server)")
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = PG_URL.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same tests on the embedded default and on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    return _pg_database()


@pytest.fixture()
def project(example_dir: Path, db_url: str) -> Iterator[Project]:
    proj = Project.open(example_dir, db_url=db_url)
    yield proj
    proj.close()


def run_pipeline(proj: Project, **kwargs: object) -> dict[str, object]:
    """Re-read the spec (tests edit it) and run; return the --json document."""
    fresh = Project(proj.root, *_reload(proj), proj.store)
    return Runner(fresh.root, fresh.store, fresh.spec, fresh.spec_text).run(**kwargs).to_json()  # type: ignore[arg-type]


def edit_spec(proj: Project, old: str, new: str) -> None:
    """Edit the project's mlcrew.yaml in place (the text must be there)."""
    path = proj.root / "mlcrew.yaml"
    text = path.read_text()
    assert old in text, f"{old!r} is not in the spec"
    path.write_text(text.replace(old, new))


def current_status(proj: Project) -> dict[str, dict[str, str]]:
    """`status` against the spec as it is on disk now, by stage name."""
    from mlcrew.pipeline.status import status

    spec, _ = _reload(proj)
    return {r["name"]: r for r in status(proj.root, proj.store, spec)}  # type: ignore[arg-type]


def _reload(proj: Project) -> tuple[object, str]:
    from mlcrew.spec import parse_spec

    text = (proj.root / "mlcrew.yaml").read_text()
    return parse_spec(text, proj.root / "mlcrew.yaml"), text


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """One trained bikeshare project (SQLite), shared read-mostly by serving/monitor/page tests."""
    root = tmp_path_factory.mktemp("trained") / "bikeshare"
    shutil.copytree(EXAMPLES / "bikeshare", root, ignore=shutil.ignore_patterns(".mlcrew"))
    proj = Project.open(root, db_url=f"sqlite:///{root.parent / 'meta.db'}")
    Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
    yield proj
    proj.close()
