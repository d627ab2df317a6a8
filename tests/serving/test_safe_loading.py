"""Loading a model never runs code from the artifact: planted payloads raise clear errors."""

from __future__ import annotations

import base64
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from mlcrew.errors import DataError
from mlcrew.project import EXAMPLES
from mlcrew.registry.versions import register_version
from mlcrew.serving.package import load_package
from mlcrew.store import Store
from mlcrew.training.model import TabularModel, base_params


class Payload:
    """Unpickling this calls open(marker, "w"): the marker file appears if anything unpickles."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def real_document() -> dict[str, Any]:
    table = pa.table({"x": [1.0, 2.0, 3.0, 4.0] * 10, "y": [1.0, 2.0, 3.0, 4.0] * 10})
    model = TabularModel("regression", base_params("regression", 0, 0, 1), 3)
    return json.loads(model.fit(table, "y", ["x"]).to_json())  # type: ignore[no-any-return]


def test_the_payload_is_live(tmp_path: Path) -> None:
    """Control: the planted payload does create its marker when something unpickles it."""
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(marker)))  # the control: this one does unpickle
    assert marker.exists()


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root = tmp_path / "p"
    shutil.copytree(EXAMPLES / "bikeshare", root, ignore=shutil.ignore_patterns(".mlcrew"))
    return root


def plant(root: Path, blob: bytes) -> int:
    """Put `blob` in the project's store and register it as a version of bike-demand."""
    store = Store.open(root)
    digest = store.artifacts.put_bytes(blob)
    info, _ = register_version(
        store,
        "bike-demand",
        digest,
        run_id="planted",
        spec_digest="0" * 64,
        data_digests={},
        metrics={},
        verdict={"passed": True, "reasons": []},
    )
    store.close()
    return info.version


def test_a_pickle_in_the_store_is_refused_without_running(project: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    version = plant(project, pickle.dumps(Payload(marker)))
    store = Store.open(project)
    with pytest.raises(DataError, match=r"is not a JSON document \(mlcrew never loads pickles"):
        load_package(store, "bike-demand", version)
    store.close()
    env = {k: v for k, v in os.environ.items() if k != "MLCREW_DB_URL"}
    (project / "rows.csv").write_text("hr,temp\n1,0.5\n")
    for args in (
        ["score", "--data", str(project / "rows.csv"), "--out", str(tmp_path / "o.csv")],
        ["export", "bike-demand", str(version), "--format", "mlflow", str(tmp_path / "m")],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "mlcrew.cli.main", *args, "--version", str(version)]
            if args[0] == "score"
            else [sys.executable, "-m", "mlcrew.cli.main", *args],
            cwd=project,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 1, done.stderr
        assert "is not a JSON document" in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists()
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        # jsonpickle-style object in the schema: refused by shape, never interpreted
        ("jsonpickle", r"field 'schema\.0\.\S+' of the model document is invalid"),
        # a __reduce__ tuple smuggled into the parameters
        ("reduce", r"field 'params\.__reduce__\S*' of the model document is invalid"),
        # a pickle (base64) where LightGBM's text model belongs
        ("pickle", r"field 'lightgbm' is not a LightGBM text model"),
        # Python source where LightGBM's text model belongs
        ("python", r"field 'lightgbm' is not a LightGBM text model"),
    ],
)
def test_payloads_inside_a_model_document_are_refused(
    tmp_path: Path, payload: str, message: str
) -> None:
    marker = tmp_path / "pwned"
    doc = real_document()
    pickled = base64.b64encode(pickle.dumps(Payload(marker))).decode()
    if payload == "jsonpickle":
        doc["schema"][0] = {
            "py/reduce": [{"py/function": "builtins.open"}, {"py/tuple": [str(marker), "w"]}]
        }
    elif payload == "reduce":
        doc["params"]["__reduce__"] = ["builtins.open", [str(marker), "w"]]
    elif payload == "pickle":
        doc["lightgbm"] = pickled
    else:
        doc["lightgbm"] = f"__import__('builtins').open({str(marker)!r}, 'w')"
    with pytest.raises(DataError, match=message):
        TabularModel.from_json(json.dumps(doc))
    assert not marker.exists()


def test_a_pickle_in_lightgbms_trailer_is_not_unpickled(tmp_path: Path) -> None:
    """LightGBM's text ends with a `pandas_categorical:` line that its Python package parses:
    a pickle there is not executed (JSON only), and the model still reads its schema."""
    marker = tmp_path / "pwned"
    doc = real_document()
    text = doc["lightgbm"].rsplit("pandas_categorical:", 1)[0]
    doc["lightgbm"] = text + "pandas_categorical:" + pickle.dumps(Payload(marker), 0).decode()
    try:
        model = TabularModel.from_json(json.dumps(doc))
    except DataError as exc:
        assert "model" in str(exc)
    else:
        assert model.predict_rows([{"x": 2.0}])[0] == pytest.approx(2.0, abs=1.5)
    assert not marker.exists()
