"""Generated tables with planted drift, shared by the drift tests and bench/drift.py.

10 numeric columns (normal, log-normal, uniform and Poisson) and 10 categorical ones (5 to 50
levels, Zipf-like frequencies). With `drift`: num_1's mean moves by 0.5 sd, num_4's sd grows
1.5x, cat_2's frequencies are reversed and cat_7 gets a new value in 20% of rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

PLANTED = ["cat_2", "cat_7", "num_1", "num_4"]


def planted_table(rows: int, seed: int, drift: bool) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {}
    for i in range(10):
        kind = i % 4
        if kind == 0:
            x = rng.normal(10 * i, 3.0, rows)
        elif kind == 1:
            x = rng.lognormal(1.0, 0.6, rows)
        elif kind == 2:
            x = rng.uniform(-5, 5, rows)
        else:
            x = rng.poisson(4 + i, rows).astype(np.float64)
        if drift and i == 1:
            x = x + 0.5 * x.std()
        if drift and i == 4:
            x = x.mean() + (x - x.mean()) * 1.5
        cols[f"num_{i}"] = x
    for i in range(10):
        levels = 5 + 5 * i
        p = 1.0 / np.arange(1, levels + 1)
        p /= p.sum()
        if drift and i == 2:
            p = p[::-1]
        values = np.array([f"v{j}" for j in range(levels)], dtype=object)
        col = values[rng.choice(levels, rows, p=p)]
        if drift and i == 7:
            col[rng.random(rows) < 0.2] = "new"
        cols[f"cat_{i}"] = col
    return pa.table(cols)
