"""The shipped examples of the scientist's and the domain expert's tour pass their own gates."""

from __future__ import annotations

from pathlib import Path

from mlcrew.pipeline.runner import Runner
from mlcrew.project import Project, examples, init_project
from mlcrew.training.report import evaluation


def test_caravan_passes_its_gates_and_is_valued(tmp_path: Path) -> None:
    assert {"bikeshare", "caravan", "credit-default"} <= set(examples())
    root = init_project(tmp_path / "caravan", example="caravan")
    proj = Project.open(root, db_url=f"sqlite:///{tmp_path / 'meta.db'}")
    try:
        result = Runner(proj.root, proj.store, proj.spec, proj.spec_text).run().to_json()
        assert result["verdict"]["passed"], result["verdict"]
        assert result["champion"] == {"name": "caravan", "version": 1}
        training = result["training"]
        assert training["task"] == "classification" and training["trials"] == 10
        doc = evaluation(proj.store, "caravan")
        value = doc["value"]
        # A mailing chosen by the model earns more than mailing nobody (the dummy's choice).
        assert value["currency"] == "€" and value["total"] > value["baseline_total"] == 0
        assert doc["slices"][0]["rows"] > 0
    finally:
        proj.close()
