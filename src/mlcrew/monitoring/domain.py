"""The multivariate drift check: a classifier trained to tell reference rows from a window's.

If it cannot (cross-validated ROC AUC near 0.5), the window looks like the reference as a
whole, including in how features go together, which per-feature tests cannot see. LightGBM
with a fixed seed and thread count, on at most `SAMPLE_ROWS` rows of each side, so the
verdict is the same on every run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

SAMPLE_ROWS = 5000
FOLDS = 3


def _matrix(table: pa.Table, categorical: list[str], levels: dict[str, list[str]]) -> Any:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for name in table.column_names:
        col = table.column(name)
        if name in categorical:
            text = pc.cast(col, pa.string()).to_pylist()
            index = {v: i for i, v in enumerate(levels[name])}
            columns.append(np.array([index.get(v, -1) if v is not None else -1 for v in text]))
        else:
            columns.append(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False))
    return np.column_stack(columns).astype(float) if columns else np.empty((table.num_rows, 0))


def domain_auc(
    reference: pa.Table, window: pa.Table, categorical: list[str], seed: int = 0
) -> dict[str, Any]:
    """{"auc", "top_features"}: how well the two sides separate, and the features the
    classifier leaned on most (where to look first)."""
    import lightgbm as lgb
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    names = [n for n in reference.column_names if n in window.column_names]
    rng = np.random.default_rng(seed)

    def sample(t: pa.Table) -> pa.Table:
        t = t.select(names)
        if t.num_rows <= SAMPLE_ROWS:
            return t
        return t.take(pa.array(np.sort(rng.choice(t.num_rows, SAMPLE_ROWS, replace=False))))

    ref, cur = sample(reference), sample(window)
    levels = {
        n: sorted({str(v) for v in pc.cast(ref.column(n), pa.string()).to_pylist() if v})
        for n in categorical
        if n in names
    }
    X = np.vstack([_matrix(ref, list(levels), levels), _matrix(cur, list(levels), levels)])
    y = np.r_[np.zeros(ref.num_rows), np.ones(cur.num_rows)]
    scores = np.zeros(len(y))
    gains = np.zeros(len(names))
    params: dict[str, Any] = {
        "objective": "binary",
        "n_estimators": 50,
        "num_leaves": 15,
        "learning_rate": 0.1,
        "min_child_samples": 20,
        "deterministic": True,
        "force_row_wise": True,
        "n_jobs": 1,
        "random_state": seed,
        "verbose": -1,
        "importance_type": "gain",
    }
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    for train, test in folds.split(X, y):
        clf = lgb.LGBMClassifier(**params)
        clf.fit(X[train], y[train], categorical_feature=[names.index(n) for n in levels] or "auto")
        scores[test] = np.asarray(clf.predict_proba(X[test]))[:, 1]
        gains += clf.feature_importances_
    auc = float(roc_auc_score(y, scores))
    share = gains / gains.sum() if gains.sum() > 0 else gains
    top = [
        {"feature": names[i], "share": round(float(share[i]), 4)}
        for i in np.argsort(-share)[:3]
        if share[i] > 0
    ]
    return {"auc": round(auc, 4), "top_features": top}
