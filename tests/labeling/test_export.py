"""Labels feed training: `mlcrew label export` writes the consensus with lineage, and a
pipeline source `labels: consensus` re-runs the stages downstream exactly when labels change."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from mlcrew.labeling import queue
from mlcrew.labeling.importer import import_tasks
from mlcrew.labeling.labelspec import latest
from mlcrew.pipeline.runner import Runner
from mlcrew.project import Project
from tests.labeling.conftest import write_project

PIPELINE = """\
  labels: {labels: consensus}
transforms:
  training: |
    select i.id, length(i.text) as size, cast(substr(i.id, 2) as integer) as n, l.label
    from items i join labels l on i.id = l.id
dataset: {from: training}
target: label
task: classification
objective: {metric: accuracy, beat_baseline: false}
training: {budget: {trials: 1, rounds: 5}}
"""


def trained_on_labels(tmp_path: Path, items: int) -> tuple[Path, Project]:
    """The pets project whose pipeline trains on its consensus labels, imported."""
    root = write_project(tmp_path / "pets", items=items, overlap=1, gold=0.0)
    spec_file = root / "mlcrew.yaml"
    text = spec_file.read_text()
    head, labeling = text.split("dataset:", 1)[0], "labeling:" + text.split("labeling:", 1)[1]
    spec_file.write_text(head + PIPELINE + labeling)
    proj = Project.open(root)
    import_tasks(proj.store, proj.spec, proj.root, actor="test")
    return root, proj


def label_all(proj: Project, names: list[str]) -> None:
    spec = latest(proj.store)
    assert spec is not None
    for name in names:
        who = queue.Labeler(name)
        while views := queue.next_tasks(proj.store, spec, who):
            task = views[0]
            n = int(task.item[1:])
            queue.submit(proj.store, spec, who, task.id, ("cat", "dog", "bird")[n % 3])


def test_a_reviewers_correction_is_the_exported_label(tmp_path: Path) -> None:
    from mlcrew.labeling.export import export_labels
    from mlcrew.labeling.review import review

    root = write_project(tmp_path / "pets", items=12, gold=0.0)
    proj = Project.open(root)
    import_tasks(proj.store, proj.spec, proj.root, actor="test")
    label_all(proj, ["ann", "bob"])  # both say i4 is a dog (4 % 3 == 1)
    spec = latest(proj.store)
    assert spec is not None
    with proj.store.session() as s:
        from sqlalchemy import select

        from mlcrew.labeling.tables import LabelTask

        i4 = s.scalars(select(LabelTask.id).where(LabelTask.item == "i4")).one()
    review(proj.store, spec, i4, "ann", "rev", "correct", label="bird")
    rows = pq.read_table(export_labels(proj.store, tmp_path / "l.parquet").path).to_pylist()
    row = next(r for r in rows if r["id"] == "i4")
    assert (row["label"], row["source"], row["votes"]) == ("bird", "review", 2)
    proj.close()


def test_export_has_lineage_to_tasks_labelers_and_spec(tmp_path: Path) -> None:
    root = write_project(tmp_path / "pets", items=30)
    proj = Project.open(root)
    import_tasks(proj.store, proj.spec, proj.root, actor="test")
    label_all(proj, ["ann", "bob"])
    out = tmp_path / "labels.parquet"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlcrew.cli.main",
            "label",
            "export",
            "-o",
            str(out),
            "--json",
            "-p",
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    spec = latest(proj.store)
    assert spec is not None
    assert doc["rows"] == 30 and doc["label_spec"] == spec.digest
    assert doc["labelers"] == ["ann", "bob"]
    table = pq.read_table(out).to_pylist()
    row = next(r for r in table if r["id"] == "i4")
    assert row["label"] == "dog" and row["votes"] == 2 and row["labelers"] == "ann,bob"
    assert row["source"] == "majority" and row["task_id"] > 0
    gold = next(r for r in table if r["id"] == "i0")
    assert gold["source"] == "gold"  # a gold item carries its known answer
    from mlcrew.people.audit import events

    exports = [e for e in events(proj.store, proj.spec.name) if e.action == "label_export"]
    assert exports and exports[0].details["digest"] == doc["digest"]
    proj.close()


def test_a_label_change_reruns_the_stages_downstream(tmp_path: Path) -> None:
    root, proj = trained_on_labels(tmp_path, items=90)
    label_all(proj, ["ann"])

    def run() -> dict[str, str]:
        p = Project.open(root)
        result = Runner(p.root, p.store, p.spec, p.spec_text).run()
        p.close()
        return {st.name: st.state for st in result.stages}

    first = run()
    assert set(first.values()) == {"executed"}
    assert set(run().values()) == {"cached"}  # labels unchanged: nothing runs
    # A new guideline text alone changes no label: still cached.
    (root / "guidelines.md").write_text("# Pets\n\nLook twice.\n")
    import_tasks(proj.store, Project.open(root).spec, root, actor="test")
    assert set(run().values()) == {"cached"}
    # One label changes: ingest and everything after it run again.
    spec = latest(proj.store)
    assert spec is not None
    undone = queue.undo(proj.store, spec, queue.Labeler("ann"))
    assert undone is not None
    other = next(c for c in ("cat", "dog", "bird") if c != undone.label)
    queue.submit(proj.store, spec, queue.Labeler("ann"), undone.id, other)
    again = run()
    assert again["ingest"] == "executed" and again["train"] == "executed"
    proj.close()


def test_a_run_before_any_label_says_to_label_first(tmp_path: Path) -> None:
    import pytest

    from mlcrew.errors import DataError

    _, proj = trained_on_labels(tmp_path, items=9)
    with pytest.raises(DataError, match="has no labels yet: import the tasks"):
        Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
    proj.close()
