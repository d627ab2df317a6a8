"""The digits example end to end: labels given through the queue become the training data of a
digit classifier, which then pre-labels the rest (`prelabel: champion`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from mlcrew.labeling import queue
from mlcrew.labeling.importer import import_tasks
from mlcrew.labeling.labelspec import latest
from mlcrew.project import EXAMPLES, Project
from tests.labeling.scenario import read_csv


def test_labels_train_the_digit_classifier_which_then_pre_labels(tmp_path: Path) -> None:
    root = tmp_path / "digits"
    shutil.copytree(EXAMPLES / "digits-labeling", root, ignore=shutil.ignore_patterns(".mlcrew"))
    db_url = f"sqlite:///{tmp_path / 'meta.db'}"
    truth = read_csv(root / "data" / "truth.csv")
    proj = Project.open(root, db_url=db_url)
    try:
        import_tasks(proj.store, proj.spec, proj.root, actor="test")
        spec = latest(proj.store)
        assert spec is not None
        # Two careful labelers label 600 items each: overlap 2, so ~600 items get consensus.
        for name in ("ann", "bob"):
            who = queue.Labeler(name)
            for _ in range(600):
                task = queue.next_tasks(proj.store, spec, who)[0]
                queue.submit(proj.store, spec, who, task.id, truth[task.item])
    finally:
        proj.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCREW_")}
    env["MLCREW_DB_URL"] = db_url

    def cli(*args: str) -> dict[str, object]:
        proc = subprocess.run(
            [sys.executable, "-m", "mlcrew.cli.main", *args, "--json", "-p", str(root)],
            capture_output=True, text=True, env=env, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr + proc.stdout[-3000:]
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    run = cli("run")
    verdict = run["verdict"]
    assert isinstance(verdict, dict) and verdict["passed"] is True, verdict
    spec_text = (root / "mlcrew.yaml").read_text()
    (root / "mlcrew.yaml").write_text(spec_text.replace("prelabel: labels", "prelabel: champion"))
    refreshed = cli("label", "refresh")
    assert refreshed["model"] == "given" and refreshed["prelabels"] == 1797
