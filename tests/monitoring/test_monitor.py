"""Drift on the real second half of 2011 versus the January-June training reference."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from mlcrew.errors import DataError
from mlcrew.monitoring.judge import judge
from mlcrew.monitoring.monitor import monitor
from mlcrew.monitoring.profile import profile_table
from mlcrew.project import Project


def test_summer_and_autumn_drift_from_spring(trained_project: Project) -> None:
    data = trained_project.root / "data" / "bikeshare-jul-dec.csv"
    report = monitor(trained_project.store, trained_project.spec, data)
    by_feature = {f["feature"]: f for f in report["features"]}
    assert by_feature["temp"]["drifted"] and by_feature["temp"]["psi"] > 0.2
    assert by_feature["temp"]["method"] == "wasserstein" and by_feature["temp"]["score"] > 0.5
    assert report["judged"] and report["reference"]["profile"]
    assert not by_feature["hr"]["drifted"]  # hours of the day do not drift
    assert report["data"]["rows"] == 4395
    assert report["performance"]["current"]["mae"] > 0
    saved = json.loads(Path(report["report_file"]).read_text())
    assert saved["drifted"] == report["drifted"]


def test_training_period_itself_shows_no_drift(trained_project: Project, tmp_path: Path) -> None:
    # May-June of the training source, as Parquet with the model's columns already in place.
    table = pcsv.read_csv(trained_project.root / "data" / "bikeshare-jan-jun.csv")
    path = tmp_path / "may-june.parquet"
    pq.write_table(table.slice(table.num_rows - 1400), path)
    report = monitor(trained_project.store, trained_project.spec, path)
    assert not by_name(report, "hr")["drifted"]
    assert not by_name(report, "workingday")["drifted"]


def by_name(report: dict[str, object], name: str) -> dict[str, object]:
    return next(f for f in report["features"] if f["feature"] == name)  # type: ignore[attr-defined,index]


def test_missing_file_is_a_clear_error(trained_project: Project, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        monitor(trained_project.store, trained_project.spec, tmp_path / "nope.csv")


def test_scores_and_tests_on_known_samples() -> None:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(0)
    reference = profile_table(pa.table({"x": rng.normal(size=5000)}))

    def verdict(x: object) -> dict[str, object]:
        window = pa.table({"x": x})
        return judge(reference, profile_table(window, like=reference))["columns"][0]  # type: ignore[no-any-return]

    same, shifted = verdict(rng.normal(size=5000)), verdict(rng.normal(1.0, size=5000))
    assert same["method"] == "wasserstein" and not same["drifted"] and same["score"] < 0.05  # type: ignore[operator]
    assert shifted["drifted"] and 0.9 < shifted["score"] < 1.1  # type: ignore[operator]
    small = verdict(rng.normal(1.0, size=200))
    assert small["method"] == "ks" and small["drifted"] and small["p_value"] < 1e-10  # type: ignore[operator]
    cats = profile_table(pa.table({"c": ["a"] * 90 + ["b"] * 10}))
    window = profile_table(pa.table({"c": ["a"] * 10 + ["b"] * 80 + ["c"] * 10}), like=cats)
    (col,) = judge(cats, window)["columns"]
    assert col["method"] == "chi2" and col["drifted"] and col["new_values"] == 10
    assert col["psi"] > 1


def test_raw_files_go_through_the_transforms(example_dir: Path) -> None:
    """A transform that rescales a column: monitoring the raw training file must not see drift
    that is only the difference between raw and transformed values."""
    from mlcrew.pipeline.runner import Runner

    spec_path = example_dir / "mlcrew.yaml"
    spec_path.write_text(
        spec_path.read_text()
        .replace("weathersit, temp, atemp,", "weathersit, temp * 41 as temp, atemp,")
        .replace(
            "{column: temp, not_null: true, between: [0, 1]}", "{column: temp, not_null: true}"
        )
    )
    proj = Project.open(example_dir, db_url=f"sqlite:///{example_dir / 'm.db'}")
    Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
    report = monitor(proj.store, proj.spec, example_dir / "data" / "bikeshare-jan-jun.csv")
    assert report["data"]["prepared"] == "through the transforms"
    # Training data plus its test weeks: some seasonal drift, not the scale change of 41x.
    assert by_name(report, "temp")["psi"] < 0.5
    raw = monitor(
        proj.store, proj.spec, example_dir / "data" / "bikeshare-jan-jun.csv", as_given=True
    )
    assert raw["data"]["prepared"] == "as given" and by_name(raw, "temp")["psi"] > 5
    proj.close()


def test_file_in_neither_shape_names_what_is_missing(
    trained_project: Project, tmp_path: Path
) -> None:
    raw = (trained_project.root / "data" / "bikeshare-jul-dec.csv").read_text().splitlines()
    header = raw[0].split(",")
    keep = [i for i, c in enumerate(header) if c.strip('"') not in ("temp", "hum")]
    path = tmp_path / "partial.csv"
    path.write_text("\n".join(",".join(line.split(",")[i] for i in keep) for line in raw[:50]))
    with pytest.raises(DataError) as info:
        monitor(trained_project.store, trained_project.spec, path)
    msg = str(info.value)
    assert "it lacks ['temp', 'hum'] of source 'rides'" in msg
    assert "model features ['temp', 'hum']" in msg and "--as-given" in msg


def test_labels_arrive_late(trained_project: Project, tmp_path: Path) -> None:
    lines = (trained_project.root / "data" / "bikeshare-jul-dec.csv").read_text().splitlines()
    header = lines[0].split(",")
    target = header.index("bikers")
    rows = [line.split(",") for line in lines[1:201]]
    for row in rows[100:]:
        row[target] = ""  # not labelled yet
    path = tmp_path / "late.csv"
    path.write_text("\n".join([lines[0], *(",".join(r) for r in rows)]) + "\n")
    report = monitor(trained_project.store, trained_project.spec, path)
    perf = report["performance"]
    assert perf["labelled_rows"] == 100 and perf["unlabelled_rows"] == 100
    assert perf["current"]["mae"] > 0


def test_the_prediction_log_is_new_data(trained_project: Project) -> None:
    """`--from-log`: the inputs the service logged, read back from the artifact store."""
    import httpx

    from mlcrew.api.app import create_app
    from mlcrew.serving.predlog import read_predictions
    from mlcrew.serving.server import BackgroundServer

    proj = trained_project
    with pytest.raises(DataError, match="give new data with --data FILE, or use the prediction"):
        monitor(proj.store, proj.spec, None)
    row = {"hr": 3, "holiday": 0, "weekday": 2, "workingday": 1, "weathersit": "clear"}
    row |= {"temp": 0.9, "atemp": 0.8, "hum": 0.5, "windspeed": 0.1}
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url) as client:
        for _ in range(5):
            r = client.post(f"/v1/models/{proj.spec.name}/predict", json={"rows": [row] * 40})
            assert r.status_code == 200
    logged = read_predictions(proj.store, proj.spec.name).num_rows
    report = monitor(proj.store, proj.spec, None, from_log=True)
    assert report["data"]["rows"] == logged >= 200
    assert report["data"]["file"].endswith("/predictions/bike-demand/bike-demand/")  # project/model
    assert by_name(report, "temp")["drifted"]  # hot nights, unlike January to June


def test_new_files_go_through_the_recorded_spec_after_it_changed(example_dir: Path) -> None:
    from mlcrew.pipeline.runner import Runner
    from mlcrew.spec import parse_spec

    spec_path = example_dir / "mlcrew.yaml"
    original = spec_path.read_text()
    # v1 learns temperature in degrees Celsius (x 41)...
    spec_path.write_text(
        original.replace(
            "weathersit, temp, atemp,", "weathersit, temp * 41 as temp, atemp,"
        ).replace(
            "{column: temp, not_null: true, between: [0, 1]}", "{column: temp, not_null: true}"
        )
    )
    proj = Project.open(example_dir, db_url=f"sqlite:///{example_dir / 'm.db'}")
    Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
    # ...then the spec on disk goes back to the normalised scale, with nothing retrained.
    today = parse_spec(original, spec_path)
    spec_path.write_text(original)
    new = example_dir / "data" / "bikeshare-jan-jun.csv"
    report = monitor(proj.store, today, new)
    # Prepared as v1 was trained (x 41): the same data shows no scale change.
    assert report["data"]["prepared"] == "through the transforms"
    assert by_name(report, "temp")["psi"] < 0.5
    assert report["reference"]["rows"] > 0
    # A file the recorded transforms cannot read is an error, never a silent fallback.
    odd = example_dir / "odd.csv"
    odd.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"lacks .* of source 'rides'"):
        monitor(proj.store, today, odd)
    proj.close()
