"""A model version's reference profile: its training data profiled once, on the model's
features, stored as an artifact and named in the version's record (`reference_profile`), so
every later window is judged without reading the training data again."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlcrew.monitoring.profile import TableProfile, profile_table
from mlcrew.registry.versions import VersionInfo
from mlcrew.store import Store

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from mlcrew.training.model import TabularModel

KEY = "reference_profile"


def feature_kinds(schema: list[dict[str, Any]]) -> dict[str, str]:
    """The model's features as numeric or categorical, as the model itself reads them."""
    return {f["name"]: "categorical" if f["type"] == "category" else "numeric" for f in schema}


def reference_profile(store: Store, version: VersionInfo, kinds: dict[str, str]) -> TableProfile:
    """The version's stored profile, or (the first time) its training split profiled and
    stored. A profile of other features (a version recorded before) is made again."""
    from mlcrew.data.tables import read_parquet
    from mlcrew.registry.versions import record_data_digest

    stored = version.data_digests.get(KEY)
    if stored and store.artifacts.exists(stored):
        profile = TableProfile.from_json(json.loads(store.artifacts.read_bytes(stored)))
        if list(profile.columns) == list(kinds):
            return profile
    train = read_parquet(store.artifacts.local_path(version.data_digests["split.train"]))
    profile = profile_table(train.select(list(kinds)), kinds=kinds)
    data = json.dumps(profile.to_json(), sort_keys=True).encode()
    digest = store.artifacts.put_bytes(data)
    with store.session() as s:
        store.record_artifact(digest, len(data), "profile", s)
    record_data_digest(store, version, KEY, digest)
    return profile


EXTRAS_KEY = "reference_extras"
# What monitoring adds to a version's data digests (derived from its data, not data it used).
DERIVED = frozenset({KEY, EXTRAS_KEY})
EXTRAS_FORMAT = "mlcrew.reference-extras/2"
# Reference rows kept for the domain classifier: enough for a stable AUC, cheap to fit.
SAMPLE_ROWS = 5000


@dataclass
class Extras:
    """What else a window is compared with, made once per version from its splits:
    the profile of its predictions on the test split (prediction drift), a calibration of
    its confidence on the test split (estimated accuracy, classifiers), and a sample of its
    training rows (the domain classifier)."""

    predictions: TableProfile
    sample: pa.Table
    # Isotonic steps fitted on the test split: "x"/"y" map the predicted class's probability
    # to P(correct); for a binary model "binary" maps P(positive) to the observed frequency.
    # None for a regression model.
    calibration: dict[str, Any] | None

    def estimated(self, predicted: pa.Table, confidence: np.ndarray) -> dict[str, float] | None:
        """Confidence-based performance estimation (CBPE): accuracy from calibrated
        confidence; for a binary model also precision, recall and F1 from the expected
        confusion matrix of calibrated P(positive), and ROC AUC as the expected one: each row
        counts as a positive with weight P(positive) and as a negative with the rest."""
        import numpy as np

        steps = self.calibration
        if steps is None or not len(confidence):
            return None
        out = {"accuracy": float(np.interp(confidence, steps["x"], steps["y"]).mean())}
        binary = steps.get("binary")
        if binary:
            positive, p_pos = _positive(predicted, confidence, binary["positive"])
            p = np.interp(p_pos, binary["x"], binary["y"])
            tp, fp, fn = p[positive].sum(), (1 - p[positive]).sum(), p[~positive].sum()
            precision = tp / (tp + fp) if tp + fp > 0 else 0.0
            recall = tp / (tp + fn) if tp + fn > 0 else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            out.update(precision=float(precision), recall=float(recall), f1=float(f1))
            if 0 < p.sum() < len(p):  # some expected positives and negatives
                from sklearn.metrics import roc_auc_score

                label = np.r_[np.ones(len(p)), np.zeros(len(p))]
                score = np.r_[p_pos, p_pos]
                out["roc_auc"] = float(roc_auc_score(label, score, sample_weight=np.r_[p, 1 - p]))
        return out


def prediction_column(
    model: TabularModel, table: pa.Table, threads: int = 1
) -> tuple[pa.Table, np.ndarray]:
    """The model's predictions on `table` as a one-column table ("prediction": numbers or
    class labels), and each row's confidence (the predicted class's probability; empty for
    regression). Each row's prediction is its own, so `threads` changes no value."""
    import numpy as np
    import pyarrow as pa

    raw = model.predict_raw(table, threads=threads)
    if model.task == "regression":
        return pa.table({"prediction": pa.array(raw, pa.float64())}), np.empty(0)
    indices = model.class_indices(raw)
    labels = pa.array(np.asarray(model.classes_, dtype=object)[indices], pa.string())
    confidence = model.probabilities(raw)[np.arange(len(indices)), indices]
    return pa.table({"prediction": labels}), confidence


def _positive(
    predicted: pa.Table, confidence: np.ndarray, positive: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Which rows a binary model called `positive`, and each row's P(positive) from the
    predicted class's confidence: the same for the calibration and for its use."""
    import numpy as np

    said = np.asarray(predicted.column("prediction").to_pylist(), dtype=object) == positive
    return said, np.where(said, confidence, 1.0 - confidence)


def _steps(x: np.ndarray, hit: np.ndarray) -> dict[str, Any]:
    """An isotonic fit of how often `hit` is true against `x`, as its steps."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(x, hit.astype(float))
    return {
        "x": [float(v) for v in iso.X_thresholds_],
        "y": [float(v) for v in iso.y_thresholds_],
    }


def reference_extras(store: Store, version: VersionInfo, model: TabularModel) -> Extras:
    """The version's stored extras, or (the first time) made from its splits and stored."""
    import numpy as np
    import pyarrow as pa

    from mlcrew.data.tables import parquet_bytes, read_parquet, read_parquet_bytes
    from mlcrew.registry.versions import record_data_digest

    stored = version.data_digests.get(EXTRAS_KEY)
    if stored and store.artifacts.exists(stored):
        doc = json.loads(store.artifacts.read_bytes(stored))
        if doc.get("format") == EXTRAS_FORMAT and store.artifacts.exists(doc["sample"]):
            return Extras(
                TableProfile.from_json(doc["predictions"]),
                read_parquet_bytes(store.artifacts.read_bytes(doc["sample"])),
                doc["calibration"],
            )
    features = model.feature_names
    test = read_parquet(store.artifacts.local_path(version.data_digests["split.test"]))
    predicted, confidence = prediction_column(model, test)
    kinds = {"prediction": "numeric" if model.task == "regression" else "categorical"}
    profile = profile_table(predicted, kinds=kinds)
    calibration = None
    if model.task != "regression" and len(confidence):
        truth = np.asarray([str(v) for v in test.column(model.target_).to_pylist()], object)
        correct = truth == np.asarray(predicted.column("prediction").to_pylist(), object)
        calibration = _steps(confidence, correct)
        if len(model.classes_) == 2:
            positive = model.classes_[-1]
            _, p_pos = _positive(predicted, confidence, positive)
            calibration["binary"] = {**_steps(p_pos, truth == positive), "positive": positive}
    train = read_parquet(store.artifacts.local_path(version.data_digests["split.train"]))
    train = train.select(features)
    if train.num_rows > SAMPLE_ROWS:
        # Seeded by the version, so the same version always keeps the same rows.
        rng = np.random.default_rng(version.version)
        keep = np.sort(rng.choice(train.num_rows, SAMPLE_ROWS, replace=False))
        train = train.take(pa.array(keep))
    sample_bytes = parquet_bytes(train)
    sample = store.artifacts.put_bytes(sample_bytes)
    doc = {
        "format": EXTRAS_FORMAT,
        "predictions": profile.to_json(),
        "calibration": calibration,
        "sample": sample,
    }
    data = json.dumps(doc, sort_keys=True).encode()
    digest = store.artifacts.put_bytes(data)
    with store.session() as s:
        store.record_artifact(sample, len(sample_bytes), "sample", s)
        store.record_artifact(digest, len(data), "profile", s)
    record_data_digest(store, version, EXTRAS_KEY, digest)
    return Extras(profile, train, calibration)
