"""Drift verdicts: a window's profile against the reference's, column by column.

The method follows the column's type and the window's size, as a careful analyst would:

- large windows (more than `small_rows` values): an effect size, which does not flag every tiny
  shift at a million rows as a test's p-value would: the Wasserstein distance between the two
  binned distributions divided by the reference's standard deviation for numbers, and the
  Jensen-Shannon distance (base 2, from 0 to 1) for categories;
- small windows: a two-sample test: Kolmogorov-Smirnov for numbers (the largest gap between
  the two distribution functions at the reference's bin edges, against the window's size),
  chi-square for categories, each at `p_value` divided by the number of columns tested
  (Bonferroni), so a window of 20 sound columns does not raise one false alarm in three;
- windows under `min_rows`: no verdict, said as "too few rows to judge".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlcrew.monitoring.profile import (
    OTHER,
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
    TableProfile,
)


@dataclass(frozen=True)
class Thresholds:
    numeric: float = 0.1  # Wasserstein distance / reference std
    categorical: float = 0.1  # Jensen-Shannon distance, base 2
    p_value: float = 0.05  # for small windows
    small_rows: int = 1000  # at most this many values: a test instead of a distance
    min_rows: int = 30  # fewer: no verdict


def wasserstein(ref: NumericProfile, cur: NumericProfile) -> float:
    """Wasserstein-1 distance between two profiles on the same bins, each bin's mass at the
    mean of its values: the area between the two distribution functions."""
    import numpy as np

    def points(p: NumericProfile) -> tuple[Any, Any]:
        counts = np.asarray(p.counts, dtype=np.float64)
        sums = np.asarray(p.sums, dtype=np.float64)
        used = counts > 0
        return sums[used] / counts[used], counts[used] / counts[used].sum()

    (u, uw), (v, vw) = points(ref), points(cur)
    at = np.concatenate([u, v])
    order = np.argsort(at, kind="mergesort")
    cdf_u = np.concatenate([uw, np.zeros(len(v))])[order].cumsum()[:-1]
    cdf_v = np.concatenate([np.zeros(len(u)), vw])[order].cumsum()[:-1]
    return float(np.sum(np.abs(cdf_u - cdf_v) * np.diff(at[order])))


def jensen_shannon(p: Any, q: Any) -> float:
    """The Jensen-Shannon distance (base 2: from 0, the same, to 1, disjoint) of two count
    vectors over the same values."""
    import numpy as np

    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: Any) -> float:
        used = a > 0
        return float(np.sum(a[used] * np.log2(a[used] / m[used])))

    return float(np.sqrt(max((kl(p) + kl(q)) / 2, 0.0)))


def ks_p_value(gap: float, n: int) -> float:
    """P(D >= gap) for n values drawn from the reference (Kolmogorov's limit with Stephens'
    small-sample correction; the reference, hundreds of times larger, counts as exact)."""
    from scipy.special import kolmogorov

    root = n**0.5
    return float(kolmogorov((root + 0.12 + 0.11 / root) * gap))


def chi2_p_value(ref: Any, cur: Any) -> tuple[float, float]:
    """Chi-square test of homogeneity of two count vectors (half a count added to each cell,
    so a value one side never saw does not divide by zero): (statistic, p-value)."""
    import numpy as np
    from scipy.special import chdtrc

    table = np.vstack([ref + 0.5, cur + 0.5])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, float(chdtrc(table.shape[1] - 1, statistic))


def psi(ref: Any, cur: Any, eps: float = 1e-4) -> float:
    """Population stability index of two count vectors over the same bins or values."""
    import numpy as np

    r = np.maximum(ref / max(ref.sum(), 1), eps)
    c = np.maximum(cur / max(cur.sum(), 1), eps)
    return float(np.sum((c - r) * np.log(c / r)))


def ks_gap(ref: NumericProfile, cur: NumericProfile) -> float:
    """The largest gap between the two distribution functions at the reference's bin edges."""
    import numpy as np

    a = np.cumsum(ref.counts)[:-1] / max(ref.count, 1)
    b = np.cumsum(cur.counts)[:-1] / max(cur.count, 1)
    return float(np.max(np.abs(a - b))) if len(a) else 0.0


def _shares(ref: CategoricalProfile, cur: CategoricalProfile) -> tuple[Any, Any, list[str]]:
    import numpy as np

    levels = sorted(set(ref.counts) | set(cur.counts))
    r = np.array([ref.counts.get(k, 0) for k in levels], dtype=np.float64)
    c = np.array([cur.counts.get(k, 0) for k in levels], dtype=np.float64)
    return r, c, levels


def judge_column(
    name: str, ref: ColumnProfile, cur: ColumnProfile, th: Thresholds, tests: int = 1
) -> dict[str, Any]:
    """One column's verdict: {"column", "kind", "method", "score", "threshold", "drifted",
    "rows", ...}; `drifted` is None when the window is too small to judge. `tests`: how many
    columns of the window are judged by a test (the Bonferroni divisor)."""
    alpha = th.p_value / max(tests, 1)
    rows = cur.count
    out: dict[str, Any] = {
        "column": name,
        "kind": ref.kind,
        "rows": rows,
        "missing_values": cur.missing,
    }
    out["psi"] = None
    if rows < th.min_rows or ref.count == 0:
        return {**out, "method": None, "score": None, "threshold": None, "drifted": None,
                "note": f"too few values to judge ({rows} < {th.min_rows})"}  # fmt: skip
    small = rows <= th.small_rows
    if isinstance(ref, NumericProfile) and isinstance(cur, NumericProfile):
        import numpy as np

        out["reference_mean"], out["current_mean"] = _round(ref.mean), _round(cur.mean)
        out["psi"] = _round(psi(np.asarray(ref.counts, float), np.asarray(cur.counts, float)))
        if small:
            gap = ks_gap(ref, cur)
            p = ks_p_value(gap, rows)
            return {**out, "method": "ks", "score": _round(gap), "p_value": p,
                    "threshold": alpha, "drifted": p < alpha}  # fmt: skip
        std = ref.std
        distance = wasserstein(ref, cur)
        score = distance / std if std > 0 else (0.0 if distance == 0 else float("inf"))
        return {**out, "method": "wasserstein", "score": _round(score),
                "threshold": th.numeric, "drifted": score > th.numeric}  # fmt: skip
    assert isinstance(ref, CategoricalProfile) and isinstance(cur, CategoricalProfile)
    r, c, levels = _shares(ref, cur)
    out["psi"] = _round(psi(r, c))
    # Values the reference never had (counted as OTHER), unless its own long tail is there too.
    out["new_values"] = None if OTHER in ref.counts else cur.counts.get(OTHER, 0)
    if small:
        if len(levels) < 2:
            return {**out, "method": "chi2", "score": 0.0, "p_value": 1.0,
                    "threshold": alpha, "drifted": False}  # fmt: skip
        statistic, p = chi2_p_value(r, c)
        return {**out, "method": "chi2", "score": _round(statistic), "p_value": p,
                "threshold": alpha, "drifted": p < alpha}  # fmt: skip
    score = jensen_shannon(r, c)
    return {**out, "method": "jensen_shannon", "score": _round(score),
            "threshold": th.categorical, "drifted": score > th.categorical}  # fmt: skip


def judge(
    reference: TableProfile, window: TableProfile, th: Thresholds = Thresholds()
) -> dict[str, Any]:
    """Every column's verdict, and the window's: {"rows", "judged", "drifted": [names],
    "columns": [...]}. `judged` is False when no column had enough values."""
    pairs = [
        (n, ref, window.columns[n]) for n, ref in reference.columns.items() if n in window.columns
    ]
    tests = sum(1 for _, _, cur in pairs if th.min_rows <= cur.count <= th.small_rows)
    columns = [judge_column(name, ref, cur, th, tests) for name, ref, cur in pairs]
    judged = [c for c in columns if c["drifted"] is not None]
    return {
        "rows": window.rows,
        "judged": bool(judged),
        "drifted": [c["column"] for c in judged if c["drifted"]],
        "columns": columns,
        **({} if judged else {"note": f"too few rows to judge ({window.rows} < {th.min_rows})"}),
    }


def _round(x: float) -> float:
    return round(x, 6) if x == x and abs(x) != float("inf") else x
