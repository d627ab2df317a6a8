#!/usr/bin/env python3
"""Benchmark: accuracy reached after N labels on the digits example, by labeling order.

Simulates labeling the example's 1,797 handwritten digits with a perfect labeler (the true
labels of data/truth.csv) in the order mlcrew's active learning serves them, against a seeded
random order. For each seed: a stratified held-out split (--test, default 30%) is never
labelled; every strategy starts from the same --start random labels, then repeatedly asks
`mlcrew.labeling.active.priorities` for the next --batch items (the model is retrained on the
labels so far with `fit_predict`, exactly what the labeling workspace does between batches),
"labels" them, and at each checkpoint (--at, default 30,60,120,240,480 labels) trains the same
model on the labels so far and scores it on the held-out split. Strategies:

  random                seeded random order (the baseline)
  margin                uncertainty by margin, no diversity term
  margin+diversity      uncertainty by margin with the diversity term (--diversity, default 0.5)
  entropy+diversity     uncertainty by entropy with the same diversity term

Prints a Markdown table (mean and standard deviation over the seeds, and how many labels random
order needed for the accuracy each strategy reached) and writes it, with the command, commit
and machine, to bench/results/active_learning.md (and the raw figures to .json). Single-threaded.
Usage:
    PYTHONPATH=src .venv/bin/python bench/active_learning.py [--seeds 10] [--batch 10]
"""

from __future__ import annotations

import os

# One thread for BLAS too: the figures must not depend on the machine's load or core count.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
DATA = REPO / "examples" / "digits-labeling" / "data"
CLASSES = tuple(str(i) for i in range(10))


@dataclass(frozen=True)
class Strategy:
    name: str
    by: str
    measure: str = "margin"
    diversity: float = 0.0


def load() -> tuple[np.ndarray, np.ndarray]:
    with (DATA / "digits.csv").open() as f:
        rows = list(csv.DictReader(f))
    with (DATA / "truth.csv").open() as f:
        truth = {r["item"]: r["label"] for r in csv.DictReader(f)}
    pixels = [c for c in rows[0] if c.startswith("px")]
    x = np.array([[float(r[c]) for c in pixels] for r in rows])
    y = np.array([truth[r["item"]] for r in rows])
    return x, y


def split(y: np.ndarray, test: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    pool, held_out = train_test_split(index, test_size=test, stratify=y, random_state=seed)
    return np.sort(pool), np.sort(held_out)


def accuracy(x: np.ndarray, y: np.ndarray, labelled: list[int], held_out: np.ndarray) -> float:
    from mlcrew.labeling.active import fit_predict

    pred = fit_predict(
        x[labelled], [str(v) for v in y[labelled]], x[held_out], classes=CLASSES, seed=0
    )
    if pred is None:
        return 0.0
    guess = np.array([s.label for s in pred.suggestions()])
    return float(np.mean(guess == y[held_out]))


def simulate(
    strategy: Strategy,
    x: np.ndarray,
    y: np.ndarray,
    pool: np.ndarray,
    held_out: np.ndarray,
    *,
    seed: int,
    start: int,
    batch: int,
    checkpoints: list[int],
    target: int,
) -> tuple[dict[int, float], float]:
    """Label in the strategy's order; accuracy at each checkpoint and seconds spent ordering."""
    from mlcrew.labeling.active import fit_predict, priorities

    rng = np.random.default_rng(seed)
    # The same first labels for every strategy of this seed: they differ only in what follows.
    labelled = [int(i) for i in rng.choice(pool, size=start, replace=False)]
    remaining = np.setdiff1d(pool, labelled)
    scores: dict[int, float] = {}
    ordering = 0.0
    while True:
        for n in checkpoints:
            if n == len(labelled):
                scores[n] = accuracy(x, y, labelled, held_out)
        if len(labelled) >= target:
            return scores, ordering
        take = min(batch, target - len(labelled), len(remaining))
        started = time.perf_counter()
        if strategy.by == "random":
            prio = priorities(None, x[remaining], by="random", seed=seed * 7919 + len(labelled))
        else:
            pred = fit_predict(
                x[labelled],
                [str(v) for v in y[labelled]],
                x[remaining],
                classes=CLASSES,
                seed=seed,
            )
            prio = priorities(
                None if pred is None else pred.proba,
                x[remaining],
                by="uncertainty",
                measure=strategy.measure,  # type: ignore[arg-type]
                diversity=strategy.diversity,
                batch=take,
                seed=seed,
            )
        ordering += time.perf_counter() - started
        chosen = remaining[np.argsort(prio, kind="stable")[:take]]
        labelled.extend(int(i) for i in chosen)
        remaining = np.setdiff1d(remaining, chosen)


def labels_needed(curve: dict[int, float], reach: float) -> str:
    """How many labels a curve needs to reach an accuracy (linear between its points)."""
    points = sorted(curve.items())
    for (n0, a0), (n1, a1) in zip([(0, 0.0), *points], points, strict=False):
        if a1 >= reach - 1e-12:
            if a1 == a0:
                return str(n1)
            return str(round(n0 + (n1 - n0) * (reach - a0) / (a1 - a0)))
    return f"never ({100 * points[-1][1]:.1f}% with all {points[-1][0]})"


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--start", type=int, default=10)
    parser.add_argument("--test", type=float, default=0.3)
    parser.add_argument("--diversity", type=float, default=0.5)
    parser.add_argument("--at", default="30,60,120,240,480")
    args = parser.parse_args()
    checkpoints = sorted({int(n) for n in args.at.split(",")})
    if checkpoints[0] < args.start:
        parser.error(f"--at starts below --start ({args.start})")
    strategies = [
        Strategy("random", "random"),
        Strategy("margin", "uncertainty", "margin", 0.0),
        Strategy(f"margin+diversity {args.diversity}", "uncertainty", "margin", args.diversity),
        Strategy(f"entropy+diversity {args.diversity}", "uncertainty", "entropy", args.diversity),
    ]
    x, y = load()
    began = time.perf_counter()
    curves: dict[str, list[dict[int, float]]] = {s.name: [] for s in strategies}
    ordering: dict[str, float] = {s.name: 0.0 for s in strategies}
    rounds: dict[str, int] = {s.name: 0 for s in strategies}
    everything: list[float] = []
    fine: list[dict[int, float]] = []
    for seed in range(args.seeds):
        pool, held_out = split(y, args.test, seed)
        # Random order's whole curve, to say how many random labels each accuracy costs.
        grid = sorted({*checkpoints, *range(60, len(pool), 60), len(pool)})
        fine.append(
            simulate(
                strategies[0],
                x,
                y,
                pool,
                held_out,
                seed=seed,
                start=args.start,
                batch=args.batch,
                checkpoints=grid,
                target=len(pool),
            )[0]
        )
        everything.append(accuracy(x, y, [int(i) for i in pool], held_out))
        for strategy in strategies:  # interleaved: each seed runs every strategy in turn
            scores, spent = simulate(
                strategy,
                x,
                y,
                pool,
                held_out,
                seed=seed,
                start=args.start,
                batch=args.batch,
                checkpoints=checkpoints,
                target=max(checkpoints),
            )
            curves[strategy.name].append(scores)
            ordering[strategy.name] += spent
            rounds[strategy.name] += -(-(max(checkpoints) - args.start) // args.batch)
        print(f"seed {seed} done ({time.perf_counter() - began:.0f} s)", file=sys.stderr)

    mean_curve = {
        name: {n: statistics.fmean(c[n] for c in runs) for n in checkpoints}
        for name, runs in curves.items()
    }
    common = set.intersection(*(set(c) for c in fine))
    random_curve = {n: statistics.fmean(c[n] for c in fine) for n in sorted(common)}
    header = "| order | " + " | ".join(f"{n} labels" for n in checkpoints) + " |"
    lines = [header, "|---|" + "---:|" * len(checkpoints)]
    for name, runs in curves.items():
        cells = []
        for n in checkpoints:
            values = [c[n] for c in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{100 * statistics.fmean(values):.1f} ± {100 * spread:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "| order | labels random order needs for the same mean accuracy (N -> random) "
        "| ordering per batch, ms |"
    )
    lines.append("|---|---|---:|")
    for name in curves:
        needed = ", ".join(
            f"{n} -> {labels_needed(random_curve, mean_curve[name][n])}" for n in checkpoints
        )
        per_batch = 1000 * ordering[name] / max(rounds[name], 1)
        lines.append(f"| {name} | {needed} | {per_batch:.1f} |")
    table = "\n".join(lines)
    ceiling = statistics.fmean(everything)
    elapsed = time.perf_counter() - began
    command = "PYTHONPATH=src .venv/bin/python bench/active_learning.py " + shlex.join(sys.argv[1:])
    summary = (
        f"Command: `{command.strip()}` at commit {commit()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Python "
        f"{platform.python_version()}, {os.cpu_count()} cores, {elapsed:.0f} s.\n"
        f"{args.seeds} seeds; held-out {args.test:.0%} (stratified, "
        f"{len(y) - len(split(y, args.test, 0)[0])} images); first {args.start} labels random; "
        f"batches of {args.batch}. Accuracy on the held-out split, % (mean ± standard "
        f"deviation over the seeds). All {len(split(y, args.test, 0)[0])} pool labels give "
        f"{100 * ceiling:.1f}%.\n\n{table}\n"
    )
    print(summary)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "active_learning.md").write_text(summary)
    (RESULTS / "active_learning.json").write_text(
        json.dumps(
            {
                "args": vars(args),
                "curves": {
                    k: [{str(n): a for n, a in c.items()} for c in v] for k, v in curves.items()
                },
                "ceiling": everything,
                "random_full_curve": {str(n): a for n, a in random_curve.items()},
                "ordering_seconds": ordering,
                "elapsed_seconds": elapsed,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
