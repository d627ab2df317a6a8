"""A small text-labeling project (pets: cat, dog, bird) on both metadata backends, with labelers
who hold tokens."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcrew.labeling.importer import import_tasks
from mlcrew.people import tokens, users
from mlcrew.project import Project

SPEC = """\
name: pets
sources:
  items: {path: data/items.csv}
dataset: {from: items}
target: truth
labeling:
  from: items
  id: id
  show: text
  column: text
  hidden: [truth]
  classes:
    - {name: cat, key: "1", description: a cat}
    - {name: dog, key: "2"}
    - {name: bird, key: "3"}
  guidelines: guidelines.md
  overlap: OVERLAP
  gold: {path: data/gold.csv, share: GOLD}
"""
CLASSES = ("cat", "dog", "bird")


def write_project(root: Path, items: int = 60, overlap: int = 2, gold: float = 0.1) -> Path:
    """Items i0..i{n-1}; their truth in a hidden column; every 10th item is gold."""
    rng = random.Random(7)
    (root / "data").mkdir(parents=True, exist_ok=True)
    truth = [rng.choice(CLASSES) for _ in range(items)]
    lines = ["id,text,truth"] + [f"i{i},animal number {i},{t}" for i, t in enumerate(truth)]
    (root / "data" / "items.csv").write_text("\n".join(lines) + "\n")
    gold_lines = ["id,label"] + [f"i{i},{truth[i]}" for i in range(0, items, 10)]
    (root / "data" / "gold.csv").write_text("\n".join(gold_lines) + "\n")
    (root / "guidelines.md").write_text("# Pets\n\nPick the **animal** in the text.\n")
    spec = SPEC.replace("OVERLAP", str(overlap)).replace("GOLD", str(gold))
    (root / "mlcrew.yaml").write_text(spec)
    return root


@pytest.fixture()
def pets(tmp_path: Path, db_url: str) -> Iterator[Project]:
    """The pets project, imported, on SQLite and on PostgreSQL."""
    root = write_project(tmp_path / "pets")
    proj = Project.open(root, db_url=db_url)
    import_tasks(proj.store, proj.spec, proj.root, actor="test")
    yield proj
    proj.close()


def add_labelers(proj: Project, names: list[str], external: bool = False) -> dict[str, str]:
    """Labelers with tokens: {name: token}. An admin is added first (people need one)."""
    name = proj.spec.name
    if not users.count_users(proj.store, name)[1]:
        users.add_user(proj.store, name, "boss", "admin", actor="test")
    out = {}
    for who in names:
        users.add_user(proj.store, name, who, "labeler", actor="test", external=external)
        out[who], _ = tokens.create_token(proj.store, name, who, actor="test")
    return out
