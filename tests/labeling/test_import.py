"""`mlcrew label import`: items become tasks once; gold comes from the gold file; bad input
names the file, row or line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlcrew.errors import DataError
from mlcrew.labeling.importer import import_tasks
from mlcrew.labeling.status import label_status
from mlcrew.project import Project
from tests.labeling.conftest import write_project


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", *args, "-p", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_twice_adds_nothing_the_second_time(pets: Project) -> None:
    first = label_status(pets.store)
    assert (first.tasks, first.gold, first.labels, first.labelled_items) == (60, 6, 0, 0)
    again = import_tasks(pets.store, pets.spec, pets.root, actor="test")
    assert (again.added, again.kept, again.gold) == (0, 60, 6)
    assert label_status(pets.store).tasks == 60


def test_new_rows_are_added_and_a_new_overlap_applies_to_old_tasks(pets: Project) -> None:
    data = pets.root / "data" / "items.csv"
    data.write_text(data.read_text() + "i60,a new animal,cat\n")
    spec = pets.root / "mlcrew.yaml"
    spec.write_text(spec.read_text().replace("overlap: 2", "overlap: 3"))
    proj = Project.open(pets.root, db_url=pets.store.db_url)
    result = import_tasks(proj.store, proj.spec, proj.root, actor="test")
    assert (result.added, result.kept) == (1, 60)
    assert label_status(proj.store).open_items == 55  # 61 items, 6 of them gold
    proj.close()


def test_cli_import_and_status_json(tmp_path: Path) -> None:
    root = write_project(tmp_path / "pets")
    done = cli(root, "label", "import")
    assert done.returncode == 0, done.stderr
    assert "imported 60 items: 60 new" in done.stdout
    status = cli(root, "label", "status", "--json")
    doc = json.loads(status.stdout)
    assert {"tasks": 60, "labels": 0, "labelled_items": 0}.items() <= doc.items()


def test_a_repeated_item_id_names_both_rows(tmp_path: Path) -> None:
    root = write_project(tmp_path / "pets")
    data = root / "data" / "items.csv"
    data.write_text(data.read_text() + "i3,again,cat\n")
    proj = Project.open(root)
    with pytest.raises(DataError, match=r"row 61: item id 'i3' .* repeats row 4"):
        import_tasks(proj.store, proj.spec, proj.root, actor="test")
    assert label_status(proj.store).tasks == 0  # nothing half-imported from the bad table
    proj.close()


def test_a_gold_answer_that_is_not_a_class_names_the_line(tmp_path: Path) -> None:
    root = write_project(tmp_path / "pets")
    gold = root / "data" / "gold.csv"
    gold.write_text(gold.read_text() + "i5,horse\n")
    done = cli(root, "label", "import")
    assert done.returncode == 1
    assert "gold.csv: line 8: 'horse' is not a class; valid: cat, dog, bird" in done.stderr


def test_an_unknown_column_and_missing_guidelines_are_clear(tmp_path: Path) -> None:
    root = write_project(tmp_path / "pets")
    spec = root / "mlcrew.yaml"
    spec.write_text(spec.read_text().replace("column: text", "column: txt"))
    done = cli(root, "label", "import")
    assert "labeling.column names column 'txt'" in done.stderr and "id, text, truth" in done.stderr
    spec.write_text(spec.read_text().replace("column: txt", "column: text"))
    (root / "guidelines.md").unlink()
    done = cli(root, "label", "import")
    assert done.returncode == 2 and "guidelines names 'guidelines.md'" in done.stderr


def test_images_are_stored_by_digest(tmp_path: Path) -> None:
    from PIL import Image

    root = write_project(tmp_path / "pics", items=3, gold=0.0)
    (root / "images").mkdir()
    for i in range(3):
        Image.new("L", (8, 8), color=i * 80).save(root / "images" / f"i{i}.png")
    data = root / "data" / "items.csv"
    data.write_text("id,image,truth\n" + "".join(f"i{i},images/i{i}.png,cat\n" for i in range(3)))
    spec = root / "mlcrew.yaml"
    text = spec.read_text().replace("show: text\n  column: text", "show: image\n  column: image")
    spec.write_text(text.replace("  gold: {path: data/gold.csv, share: 0.0}\n", ""))
    proj = Project.open(root)
    import_tasks(proj.store, proj.spec, proj.root, actor="test")
    from mlcrew.labeling import queue
    from mlcrew.labeling.labelspec import latest

    spec_now = latest(proj.store)
    assert spec_now is not None
    views = queue.next_tasks(proj.store, spec_now, queue.Labeler("ann"), 3)
    images = [v.payload["image"] for v in views]
    assert all(img["type"] == "image/png" for img in images)
    assert proj.store.artifacts.read_bytes(images[0]["digest"])[:4] == b"\x89PNG"
    proj.close()
