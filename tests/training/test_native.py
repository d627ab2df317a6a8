"""Loaded models predict through LightGBM's C library directly: same numbers as the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from mlcrew.training.native import NativeBooster, NativeLightGBMError


def _trained(objective: str, classes: int = 0) -> tuple[str, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(600, 5))
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values take LightGBM's default branch
    score = X[:, 0] * 2 - np.nan_to_num(X[:, 1]) + rng.normal(scale=0.1, size=600)
    if objective == "regression":
        y = score
    else:
        y = np.digitize(score, np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]))
    params = {"objective": objective, "verbosity": -1, "deterministic": True, "seed": 1}
    if classes > 2:
        params["num_class"] = classes
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=20)
    return booster.model_to_string(), rng.normal(size=(257, 5))


@pytest.mark.parametrize(
    ("objective", "classes"), [("regression", 0), ("binary", 2), ("multiclass", 4)]
)
def test_same_predictions_as_lightgbm(objective: str, classes: int) -> None:
    text, X = _trained(objective, classes)
    X[::7, 2] = np.nan
    expected = lgb.Booster(model_str=text).predict(X, num_threads=1)
    native = NativeBooster(text)
    got = native.predict(X, num_threads=1)
    assert got.shape == expected.shape
    assert np.array_equal(got, expected)  # bit for bit, not approximately
    assert np.array_equal(native.predict(X[:1]), expected[:1])
    assert native.num_feature() == 5
    assert native.num_model_per_iteration() == (classes if classes > 2 else 1)
    assert native.model_to_string() == text
    # A column-major or integer matrix is converted, as LightGBM's own predict does.
    assert np.array_equal(native.predict(np.asfortranarray(X)), expected)


def test_a_wrong_width_or_a_broken_model_is_a_clear_error() -> None:
    text, X = _trained("regression")
    with pytest.raises(NativeLightGBMError, match="expected a 2-D array of 5 columns"):
        NativeBooster(text).predict(X[:, :3])
    with pytest.raises(NativeLightGBMError):
        NativeBooster("tree\nversion=v4\nnum_class=banana\n")


def test_loading_and_predicting_never_import_the_lightgbm_package(tmp_path: Path) -> None:
    text, X = _trained("regression")
    (tmp_path / "model.txt").write_text(text)
    np.save(tmp_path / "x.npy", X)
    code = (
        "import sys, numpy as np\n"
        "from mlcrew.training.native import NativeBooster\n"
        f"b = NativeBooster(open({str(tmp_path / 'model.txt')!r}).read())\n"
        f"print(b.predict(np.load({str(tmp_path / 'x.npy')!r}))[0])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightgbm', 'scipy')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert float(out[0]) == lgb.Booster(model_str=text).predict(X[:1])[0]
    assert out[1] == "[]"
