"""`refresh` on both metadata backends: it reads the labels so far from the store and writes
every task's pre-label and priority, which the queue then serves."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import select

from mlcrew.labeling import queue
from mlcrew.labeling.importer import import_tasks
from mlcrew.labeling.labelspec import latest
from mlcrew.labeling.refresh import refresh
from mlcrew.labeling.tables import LabelTask
from mlcrew.project import EXAMPLES, Project
from tests.labeling.scenario import read_csv


def test_refresh_writes_suggestions_the_queue_serves(tmp_path: Path, db_url: str) -> None:
    root = tmp_path / "digits"
    shutil.copytree(EXAMPLES / "digits-labeling", root, ignore=shutil.ignore_patterns(".mlcrew"))
    truth = read_csv(root / "data" / "truth.csv")
    gold = set(read_csv(root / "data" / "gold.csv"))
    proj = Project.open(root, db_url=db_url)
    try:
        import_tasks(proj.store, proj.spec, proj.root, actor="test")
        spec = latest(proj.store)
        assert spec is not None
        ann = queue.Labeler("ann")
        labelled: list[str] = []
        while len(labelled) < 40:
            task = queue.next_tasks(proj.store, spec, ann)[0]
            queue.submit(proj.store, spec, ann, task.id, truth[task.item])
            if task.item not in gold:
                labelled.append(task.item)
        result = refresh(proj.store, proj.spec, proj.root, actor="test")
        assert result.model == "logistic" and result.labelled == 40
        with proj.store.session() as s:
            rows = {
                item: (priority, prelabel, is_open)
                for item, priority, prelabel, is_open in s.execute(
                    select(LabelTask.item, LabelTask.priority, LabelTask.prelabel, LabelTask.open)
                ).all()
            }
        # Every item has a suggestion; the half-labelled ones (overlap 2) come first.
        assert all(prelabel is not None for _, prelabel, _ in rows.values())
        assert {i for i, (p, _, _) in rows.items() if p < 0} == set(labelled)
        # Another labeler is served those first, with the suggestion shown.
        bob = queue.Labeler("bob")
        task = queue.next_tasks(proj.store, spec, bob)[0]
        while task.item in gold:
            queue.submit(proj.store, spec, bob, task.id, truth[task.item])
            task = queue.next_tasks(proj.store, spec, bob)[0]
        assert task.item in labelled
        assert task.suggestion == {
            "label": rows[task.item][1]["label"],
            "score": rows[task.item][1]["score"],
        }
        # Gold items keep their own order (served apart); the rest were re-ordered.
        open_items = [i for i, (_, _, is_open) in rows.items() if is_open and i not in labelled]
        priorities = sorted(rows[i][0] for i in open_items)
        assert priorities == [float(k) for k in range(len(open_items))]
    finally:
        proj.close()
