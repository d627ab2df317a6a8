"""Per-feature drift between a reference (training) table and new data.

Numeric features: population stability index over the reference's deciles, and the two-sample
Kolmogorov-Smirnov test. Categorical features: PSI over the categories, and a chi-square test of
the two count vectors.
"""

from __future__ import annotations

import math
from typing import Any

EPS = 1e-4
BINS = 10


def psi(ref_share: list[float], cur_share: list[float]) -> float:
    total = 0.0
    for r, c in zip(ref_share, cur_share, strict=True):
        r, c = max(r, EPS), max(c, EPS)
        total += (c - r) * math.log(c / r)
    return total


def _shares(counts: Any) -> list[float]:
    n = float(sum(counts))
    return [float(c) / n if n else 0.0 for c in counts]


def numeric_drift(ref: Any, cur: Any) -> dict[str, Any]:
    import numpy as np
    from scipy import stats

    ref = ref[~np.isnan(ref)]
    cur = cur[~np.isnan(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return {"kind": "numeric", "psi": None, "p_value": None, "note": "no values"}
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, BINS + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    test = stats.ks_2samp(ref, cur)
    return {
        "kind": "numeric",
        "psi": round(psi(_shares(ref_counts), _shares(cur_counts)), 6),
        "test": "ks",
        "statistic": round(float(test.statistic), 6),
        "p_value": float(test.pvalue),
        "reference_mean": round(float(ref.mean()), 6),
        "current_mean": round(float(cur.mean()), 6),
    }


def categorical_drift(ref: list[Any], cur: list[Any]) -> dict[str, Any]:
    from collections import Counter

    from scipy import stats

    rc, cc = Counter(map(str, ref)), Counter(map(str, cur))
    levels = sorted(set(rc) | set(cc))
    ref_counts = [rc.get(k, 0) for k in levels]
    cur_counts = [cc.get(k, 0) for k in levels]
    result: dict[str, Any] = {
        "kind": "categorical",
        "psi": round(psi(_shares(ref_counts), _shares(cur_counts)), 6),
        "test": "chi2",
        "new_categories": sorted(set(cc) - set(rc)),
    }
    if len(levels) > 1:
        table = [[c + 0.5 for c in ref_counts], [c + 0.5 for c in cur_counts]]
        chi = stats.chi2_contingency(table)
        result["statistic"] = round(float(chi.statistic), 6)
        result["p_value"] = float(chi.pvalue)
    else:
        result["statistic"], result["p_value"] = 0.0, 1.0
    return result


def drift_report(
    reference: Any, current: Any, schema: list[dict[str, Any]], psi_alert: float, p_value: float
) -> list[dict[str, Any]]:
    """One entry per model feature, most drifted first."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = []
    for f in schema:
        name = f["name"]
        if name not in current.column_names:
            rows.append({"feature": name, "missing": True, "drifted": True, "psi": None})
            continue
        if f["type"] == "category":
            entry = categorical_drift(
                [v for v in reference.column(name).to_pylist() if v is not None],
                [v for v in current.column(name).to_pylist() if v is not None],
            )
        else:

            def as_float(t: Any, col: str = name) -> Any:
                return (
                    pc.cast(t.column(col), pa.float64())
                    .to_numpy(zero_copy_only=False)
                    .astype(np.float64)
                )

            entry = numeric_drift(as_float(reference), as_float(current))
        p = entry.get("p_value")
        score = entry.get("psi")
        entry["drifted"] = bool(
            (score is not None and score >= psi_alert) or (p is not None and p < p_value)
        )
        entry["alert"] = bool(score is not None and score >= psi_alert)
        rows.append({"feature": name, **entry})
    rows.sort(key=lambda r: -(r.get("psi") or 0.0))
    return rows
