"""Two labeling projects in one database: each queue, status and label stays in its project
(the queue's Core statements name their project themselves)."""

from __future__ import annotations

from pathlib import Path

from mlcrew.labeling import queue
from mlcrew.labeling.importer import import_tasks
from mlcrew.labeling.labelspec import latest
from mlcrew.labeling.status import label_status
from mlcrew.project import Project
from tests.labeling.conftest import write_project


def test_projects_sharing_a_database_never_see_each_others_tasks(
    tmp_path: Path, db_url: str
) -> None:
    first = write_project(tmp_path / "a", items=20, overlap=1, gold=0.0)
    second = write_project(tmp_path / "b", items=30, overlap=1, gold=0.0)
    spec = second / "mlcrew.yaml"
    spec.write_text(spec.read_text().replace("name: pets", "name: birds"))
    a, b = Project.open(first, db_url=db_url), Project.open(second, db_url=db_url)
    for proj in (a, b):
        import_tasks(proj.store, proj.spec, proj.root, actor="test")
    spec_a = latest(a.store)
    assert spec_a is not None
    ann = queue.Labeler("ann", any_task=True)
    ids = []
    while views := queue.next_tasks(a.store, spec_a, ann):
        ids.append(views[0].id)
        queue.submit(a.store, spec_a, ann, views[0].id, "cat")
    assert len(ids) == 20  # only project a's tasks, though b's share the table
    assert label_status(a.store).labels == 20 and label_status(b.store).labels == 0
    assert label_status(b.store).tasks == 30
    assert queue.progress(b.store, ann).labeled == 0
    # A task id of the other project is not found, even for someone who may label any task.
    spec_b = latest(b.store)
    assert spec_b is not None
    other = queue.next_tasks(b.store, spec_b, queue.Labeler("bob"))[0].id
    try:
        queue.task_view(a.store, spec_a, ann, other)
        raise AssertionError("a task of another project was shown")
    except Exception as exc:
        assert type(exc).__name__ == "NotFoundError"
    a.close()
    b.close()
