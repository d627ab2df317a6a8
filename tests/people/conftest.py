"""A trained project with one person per role (and an external labeler), each with a token."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlcrew.people import tokens, users
from mlcrew.people.roles import ROLES
from mlcrew.pipeline.runner import Runner
from mlcrew.project import EXAMPLES, Project

PASSWORD = "correct horse battery"


@dataclass
class People:
    project: Project
    tokens: dict[str, str]  # identity name -> bearer token


def trained_copy(target: Path) -> Project:
    shutil.copytree(EXAMPLES / "bikeshare", target, ignore=shutil.ignore_patterns(".mlcrew"))
    spec = target / "mlcrew.yaml"
    spec.write_text(spec.read_text().replace("rounds: 300", "rounds: 40"))
    proj = Project.open(target, db_url=f"sqlite:///{target.parent / 'meta.db'}")
    Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
    return proj


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Iterator[People]:
    proj = trained_copy(tmp_path_factory.mktemp("people") / "bikeshare")
    name = proj.spec.name
    secrets: dict[str, str] = {}
    for role in ROLES:
        users.add_user(proj.store, name, role, role, actor="test", password=PASSWORD)
        secrets[role], _ = tokens.create_token(proj.store, name, role, actor="test")
    users.add_user(proj.store, name, "outsider", "labeler", actor="test", external=True)
    secrets["labeler (external)"], _ = tokens.create_token(proj.store, name, "outsider", actor="t")
    yield People(proj, secrets)
    proj.close()
