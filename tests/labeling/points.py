"""The points project served over real HTTP: 60 points in three clusters to label a/b/c, a
few gold items, overlap 2, and people with tokens (three labelers, a reviewer, a manager, an
external labeler)."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from mlcrew.api.app import create_app
from mlcrew.labeling.importer import import_tasks
from mlcrew.labeling.votes import Vote
from mlcrew.people import tokens, users
from mlcrew.project import Project
from mlcrew.serving.server import BackgroundServer

SPEC = """\
name: points
sources:
  points: {path: data/points.csv}
dataset: {from: points, split: {by: random, test: 0.2}}
target: code
labeling:
  from: points
  id: id
  show: rows
  columns: [x, y]
  hidden: [z, code, truth]
  classes:
    - {name: a, key: a}
    - {name: b, key: b}
    - {name: c, key: c}
  guidelines: Pick the cluster.
  overlap: 2
  gold: {path: gold.csv, share: 0.1}
"""
CENTRES = {"a": (0.0, 0.0), "b": (6.0, 0.0), "c": (0.0, 6.0)}
GOLD = ("p000", "p001", "p002")
PASSWORD = "correct horse battery"
PEOPLE = {
    "ada": ("admin", False),
    "ann": ("labeler", False),
    "bob": ("labeler", False),
    "cy": ("labeler", False),
    "rita": ("reviewer", False),
    "max": ("manager", False),
    "eve": ("labeler", True),
}


@dataclass
class LabelProject:
    project: Project
    url: str
    tokens: dict[str, str]
    truth: dict[str, str]
    db_url: str

    @property
    def env(self) -> dict[str, str]:
        """The environment for `mlcrew` commands on this project's store."""
        return {**os.environ, "MLCREW_DB_URL": self.db_url}

    def client(self, who: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=60, headers={"authorization": f"Bearer {self.tokens[who]}"}
        )


def write_project(root: Path, task: str = "single") -> dict[str, str]:
    (root / "data").mkdir(parents=True)
    rng = np.random.default_rng(5)
    truth = {}
    with (root / "data" / "points.csv").open("w", newline="") as f:
        out = csv.writer(f)
        # z: a hidden numeric column (a feature labelers never see); code: the answer as a
        # number, the spec's target, which must never be a feature.
        out.writerow(["id", "x", "y", "z", "code", "truth"])
        for i in range(60):
            cls = "abc"[i % 3]
            x, y = rng.normal(CENTRES[cls], 1.0)
            z = rng.normal(0.0, 1.0)
            row = [f"p{i:03d}", round(float(x), 4), round(float(y), 4), round(float(z), 4)]
            out.writerow([*row, "abc".index(cls), cls])
            truth[f"p{i:03d}"] = cls
    with (root / "gold.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "label"])
        for item in GOLD:
            out.writerow([item, truth[item]])
    (root / "mlcrew.yaml").write_text(SPEC.replace("overlap: 2", f"overlap: 2\n  task: {task}"))
    return truth


@contextmanager
def serve_label_project(
    tmp_path: Path, db_url: str, task: str = "single"
) -> Iterator[LabelProject]:
    """The project imported, its people added, and its service running on loopback."""
    root = tmp_path / "points"
    truth = write_project(root, task)
    proj = Project.open(root, db_url=db_url)
    import_tasks(proj.store, proj.spec, proj.root, actor="test")
    secrets = {}
    for name, (role, external) in PEOPLE.items():
        # Only those who sign in on pages get a password (hashing is slow on purpose).
        password = PASSWORD if role in ("admin", "reviewer") else None
        users.add_user(
            proj.store, "points", name, role, actor="test", external=external, password=password
        )
        secrets[name], _ = tokens.create_token(proj.store, "points", name, actor="test")
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    try:
        with BackgroundServer(app) as srv:
            yield LabelProject(proj, srv.url, secrets, truth, db_url)
    finally:
        proj.close()


def wrong(label: str) -> str:
    return {"a": "b", "b": "c", "c": "a"}[label]


def answer(who: str, item: str, truth: str) -> str:
    """ann and cy are always right; bob is wrong on every fifth item (p000, p005, ...)."""
    return wrong(truth) if who == "bob" and int(item[1:]) % 5 == 0 else truth


def label_everything(lp: LabelProject, who: tuple[str, ...] = ("ann", "bob", "cy")) -> list[Vote]:
    """Each labeler takes tasks over REST until their queue is dry; returns what was submitted."""
    votes = []
    clients = {name: lp.client(name) for name in who}
    try:
        active = list(who)
        while active:
            for name in list(active):
                got = clients[name].get("/v1/labeling/next")
                assert got.status_code == 200, got.text
                task = got.json()["task"]
                if task is None:
                    active.remove(name)
                    continue
                label: str | list[str] = answer(name, task["item"], lp.truth[task["item"]])
                if lp.project.spec.labeling and lp.project.spec.labeling.task == "multi":
                    # multi-label: bob's wrong answers add a class rather than swap it
                    right = lp.truth[task["item"]]
                    label = sorted({right, str(label)})
                sent = clients[name].post(
                    f"/v1/labeling/tasks/{task['id']}/labels", json={"label": label}
                )
                assert sent.status_code == 201, sent.text
                value = label if isinstance(label, str) else frozenset(label)
                votes.append(Vote(task["item"], name, value))
    finally:
        for c in clients.values():
            c.close()
    return votes
