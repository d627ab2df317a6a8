"""Export a model version to other tools' formats. Today: an MLflow pyfunc model.

The MLflow model holds the mlcrew model document exactly as stored (`data/mlcrew/model.json`,
the same sha256 as in the registry), the package manifest beside it (`package.json`: metrics,
verdict, lineage, library versions), and a small loader module (`code/mlcrew_pyfunc.py`) that
needs only NumPy, pandas and LightGBM, so the model serves where mlcrew is not installed.
Writing is atomic: the model is built in a hidden sibling folder and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Literal

from mlcrew.errors import DataError, MlcrewError
from mlcrew.serving.package import ModelPackage

ExportFormat = Literal["mlflow"]
LOADER = Path(__file__).with_name("mlcrew_pyfunc.py")


def export_mlflow(package: ModelPackage, target: Path) -> Path:
    """Write `package` as an MLflow model folder (python_function flavor) at `target`."""
    try:
        import mlflow.pyfunc
    except ImportError:
        raise MlcrewError(
            "exporting to MLflow needs MLflow; install it with: pip install 'mlcrew[mlflow]'"
        ) from None
    model = package.model
    if model.is_ensemble or model.calibration_ or model.decision_:
        what = (
            "an ensemble or a scikit-learn model"
            if model.is_ensemble
            else "a calibrated model or one with a value-optimal decision"
        )
        raise DataError(
            f"this version is {what}; the MLflow export's standalone loader reads a single "
            "LightGBM model with plain probabilities only. Serve it with 'mlcrew serve', or "
            "train one without training.search ensembles, calibration and objective.value"
        )
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DataError(f"{target} already exists; remove it or choose another folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.part"
    lightgbm_version = package.model.libraries_.get("lightgbm")
    requirements = [
        f"lightgbm=={lightgbm_version}" if lightgbm_version else "lightgbm",
        "numpy",
        "pandas",
    ]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "mlcrew"
            data.mkdir()
            (data / "model.json").write_bytes(package.document)
            (data / "package.json").write_text(
                json.dumps(package.manifest(), indent=2, sort_keys=True) + "\n"
            )
            mlflow.pyfunc.save_model(
                path=str(staging),
                loader_module=LOADER.stem,
                data_path=str(data),
                code_paths=[str(LOADER)],
                pip_requirements=requirements,
            )
        if target.exists():
            target.rmdir()  # an empty folder the user made for it
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def export_model(package: ModelPackage, fmt: ExportFormat, target: Path) -> Path:
    if fmt == "mlflow":
        return export_mlflow(package, target)
    raise DataError(f"unknown export format {fmt!r}; known: mlflow")
