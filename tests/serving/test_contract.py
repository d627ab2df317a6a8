"""The API keeps its contract: schemathesis, every check, over the whole OpenAPI document.

It generates requests from /openapi.json (examples, boundary coverage, fuzzing, stateful
sequences) and checks each answer: no 5xx, a documented status, the documented schema and
content type, invalid input refused, valid input accepted, 405 with Allow for other methods.
Deterministic mode, so a run repeats exactly.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcrew.api.app import create_app
from mlcrew.pipeline.runner import Runner
from mlcrew.project import Project
from mlcrew.serving.server import BackgroundServer


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, str, str]]:
    from tests.serving.conftest import copy_example

    root = copy_example(tmp_path_factory.mktemp("contract") / "bikeshare")
    proj = Project.open(root)
    Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
    # Generated requests come as an admin: people the run adds must not lock it out.
    from mlcrew.people.tokens import create_token
    from mlcrew.people.users import add_user

    add_user(proj.store, proj.spec.name, "contract-admin", "admin", actor="test")
    token, _ = create_token(proj.store, proj.spec.name, "contract-admin", actor="test")
    with BackgroundServer(create_app(proj.root, proj.spec, proj.store, access_log=False)) as srv:
        yield proj, srv.url, token
    proj.close()


def test_schemathesis_finds_no_failure(served: tuple[Project, str, str], tmp_path: Path) -> None:
    proj, url, token = served
    if shutil.which("schemathesis", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("schemathesis is not installed: pip install -e '.[dev]'")
    config = tmp_path / "schemathesis.toml"
    # The model's real name, so generated requests reach validation and prediction, not 404.
    # A query's SQL can be schema-valid and still not be SQL (400), or ask for more rows than
    # this server allows (413): those are answers, documented, not rejections of valid data.
    config.write_text(
        f'[parameters]\n"path.name" = "{proj.spec.name}"\n\n'
        '[[operations]]\ninclude-path = "/v1/query"\n'
        "checks.positive_data_acceptance.expected-statuses = "
        "[200, 400, 401, 403, 404, 408, 413]\n"
    )
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "--config-file",
            str(config),
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "50",
            "--workers",
            "1",
            "--generation-deterministic",
            "--header",
            f"Authorization: Bearer {token}",
            "--report-dir",
            str(tmp_path / "report"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    summary = proc.stdout[proc.stdout.find("SUMMARY") :]
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert "generated" in summary and "failed" not in summary.split("Test cases:")[-1]
