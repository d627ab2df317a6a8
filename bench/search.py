#!/usr/bin/env python3
"""Model search side by side: mlcrew's `training.search` against FLAML on public tables.

For each set and seed, one seeded random split (75% train, 25% test, stratified for classes) is
written to Parquet and both sides get the same training rows:
  * mlcrew: `train_model` (the train stage without the pipeline) with `training.search` defaults,
    `--trials` candidates of at most `--rounds` rounds, one thread; its wall time is measured;
  * FLAML (bench/.venv): `AutoML.fit` with that same wall time as `time_budget`, the same metric,
    `n_jobs=1`, the same seed, its default estimators; run twice with identical arguments to
    count repeat differences (test predictions that differ between the two runs).
mlcrew is also run twice (digests of the model documents compared), and once with `trials: 1`
and no search (the default LightGBM, the floor). Both sides' test predictions are scored by the
same function (`mlcrew.training.search.score_raw`).

Sets: bikeshare (mlcrew's example, both halves), ISLP Default and Caravan, scikit-learn
breast_cancer and diabetes. Metrics: log loss for classes (which punishes overconfident
probabilities), RMSE for numbers; accuracy / ROC AUC reported beside.

    PYTHONPATH=src .venv/bin/python bench/search.py [--seeds 0,1,2] [--trials 16] [--sets ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PEERS_BIN, REPO, RESULTS, env, machine_facts

EXAMPLES = REPO / "src" / "mlcrew" / "examples"

FLAML_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import logging; logging.disable(logging.WARNING)
import numpy as np, pandas as pd
from flaml import AutoML
a = json.loads(sys.argv[1])
train = pd.read_parquet(a["train"]); test = pd.read_parquet(a["test"])
y = train.pop(a["target"]); test = test.drop(columns=[a["target"]])
for c in train.columns:
    if train[c].dtype == object or str(train[c].dtype).startswith("str"):
        train[c] = train[c].astype("category")
        test[c] = pd.Categorical(test[c], categories=train[c].cat.categories)
automl = AutoML()
t0 = time.perf_counter()
automl.fit(train, y, task=a["task"], metric=a["metric"], time_budget=a["seconds"], n_jobs=1,
           seed=a["seed"], verbose=0, log_file_name="")
wall = time.perf_counter() - t0
if a["task"] == "classification":
    pred = automl.predict_proba(test); classes = [str(c) for c in automl.classes_]
else:
    pred = automl.predict(test); classes = []
np.save(a["out"], np.asarray(pred, dtype=np.float64))
print(json.dumps({"wall": wall, "classes": classes, "best": automl.best_estimator,
                  "config": automl.best_config}, default=str))
"""


def load_set(name: str) -> tuple[Any, str, str, str]:
    """(table, target, task, metric) of a public set, from files shipped here or with packages."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if name == "bikeshare":
        halves = [
            pcsv.read_csv(EXAMPLES / "bikeshare" / "data" / f)
            for f in ("bikeshare-jan-jun.csv", "bikeshare-jul-dec.csv")
        ]
        table = pa.concat_tables(halves, promote_options="default")
        keep = ["mnth", "hr", "holiday", "weekday", "workingday", "weathersit", "temp"]
        keep += ["atemp", "hum", "windspeed", "bikers"]
        return table.select(keep), "bikers", "regression", "rmse"
    if name in ("default", "caravan"):
        path = EXAMPLES / ("credit-default" if name == "default" else "caravan") / "data"
        file = path / ("Default.csv" if name == "default" else "Caravan.csv")
        table = pcsv.read_csv(file)
        target = "default" if name == "default" else "Purchase"
        return table, target, "classification", "log_loss"
    from sklearn.datasets import load_breast_cancer, load_diabetes

    if name == "breast_cancer":
        data = load_breast_cancer()
        cols = {n.replace(" ", "_"): data.data[:, i] for i, n in enumerate(data.feature_names)}
        cols["diagnosis"] = [["malignant", "benign"][t] for t in data.target]
        return pa.table(cols), "diagnosis", "classification", "log_loss"
    data = load_diabetes()
    cols = {n: data.data[:, i] for i, n in enumerate(data.feature_names)}
    cols["progression"] = data.target
    return pa.table(cols), "progression", "regression", "rmse"


def split(table: Any, target: str, task: str, seed: int) -> tuple[Any, Any]:
    import numpy as np
    from sklearn.model_selection import train_test_split

    idx = np.arange(table.num_rows)
    strat = [str(v) for v in table.column(target).to_pylist()] if task != "regression" else None
    tr, te = train_test_split(idx, test_size=0.25, random_state=seed, stratify=strat)
    return table.take(np.sort(tr)), table.take(np.sort(te))


def test_scores(task: str, y: Any, raw: Any, classes: list[str]) -> dict[str, float]:
    from mlcrew.training.search import score_raw

    names = ("rmse", "mae", "r2") if task == "regression" else ("log_loss", "roc_auc", "accuracy")
    return {m: score_raw(m, task, y, raw, len(classes)) for m in names}


def truth(test: Any, target: str, task: str, classes: list[str]) -> Any:
    import numpy as np

    col = test.column(target).to_pylist()
    if task == "regression":
        return np.asarray(col, dtype=np.float64)
    return np.asarray([classes.index(str(v)) for v in col])


def run_mlcrew(train: Any, target: str, task: str, metric: str, seed: int, trials: int,
               rounds: int, search: bool) -> tuple[Any, float, str]:  # fmt: skip
    from mlcrew.pipeline.configs import TrainConfig
    from mlcrew.spec import Budget, Features, Search
    from mlcrew.training.train import train_model

    cfg = TrainConfig(
        target=target, task=task, features=Features(), metric=metric,  # type: ignore[arg-type]
        budget=Budget(trials=trials, rounds=rounds), threads=1, params={}, seed=seed,
        search=Search() if search else None,
    )  # fmt: skip
    t0 = time.perf_counter()
    trained = train_model(cfg, train)
    wall = time.perf_counter() - t0
    digest = hashlib.sha256(trained.model.to_json().encode()).hexdigest()
    return trained, wall, digest


def run_flaml(train_path: Path, test_path: Path, target: str, task: str, metric: str,
              seed: int, seconds: float, out: Path) -> dict[str, Any]:  # fmt: skip
    import numpy as np

    args = {
        "train": str(train_path), "test": str(test_path), "target": target, "task": task,
        "metric": {"rmse": "rmse", "log_loss": "log_loss"}[metric], "seed": seed,
        "seconds": max(1.0, seconds), "out": str(out),
    }  # fmt: skip
    proc = subprocess.run(
        [str(PEERS_BIN / "python"), "-c", FLAML_SCRIPT, json.dumps(args)],
        capture_output=True, text=True, env=env(), check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"FLAML failed: {proc.stderr.strip().splitlines()[-3:]}")
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    doc["pred"] = np.load(out)
    return doc


def main() -> None:
    import numpy as np
    import pyarrow.parquet as pq

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="bikeshare,default,caravan,breast_cancer,diabetes")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--rounds", type=int, default=400)
    p.add_argument(
        "--budgets", default="1,4", help="smaller trial budgets also run (score against budget)"
    )
    args = p.parse_args()
    if not (PEERS_BIN / "python").exists():
        sys.exit("bench/.venv is missing: bash bench/setup-peers.sh")
    rows: list[dict[str, Any]] = []
    for name in args.sets.split(","):
        table, target, task, metric = load_set(name)
        for seed in (int(s) for s in args.seeds.split(",")):
            train, test = split(table, target, task, seed)
            with tempfile.TemporaryDirectory() as tmp:
                tr, te = Path(tmp) / "train.parquet", Path(tmp) / "test.parquet"
                pq.write_table(train, tr)
                pq.write_table(test, te)
                floor, _, _ = run_mlcrew(train, target, task, metric, seed, 1, args.rounds, False)
                first, wall, digest = run_mlcrew(
                    train, target, task, metric, seed, args.trials, args.rounds, True
                )
                _, _, digest2 = run_mlcrew(
                    train, target, task, metric, seed, args.trials, args.rounds, True
                )
                classes = first.model.classes_
                y = truth(test, target, task, classes)
                ours = test_scores(task, y, first.model.predict_raw(test), classes)
                base = test_scores(task, y, floor.model.predict_raw(test), classes)
                by_budget = {}
                for b in (int(v) for v in args.budgets.split(",") if v):
                    smaller, _, _ = run_mlcrew(
                        train, target, task, metric, seed, b, args.rounds, True
                    )
                    raw = smaller.model.predict_raw(test)
                    by_budget[b] = test_scores(task, y, raw, classes)[metric]
                by_budget[args.trials] = ours[metric]
                flaml = [
                    run_flaml(tr, te, target, task, metric, seed, wall, Path(tmp) / f"f{i}.npy")
                    for i in (0, 1)
                ]
            preds = []
            for f in flaml:
                pred = f["pred"]
                if task == "classification":
                    order = [f["classes"].index(c) for c in classes]
                    pred = pred[:, order]
                    pred = pred[:, 1] if len(classes) == 2 else pred
                preds.append(pred)
            theirs = test_scores(task, y, preds[0], classes)
            changed = np.atleast_2d(preds[0] != preds[1]).reshape(len(y), -1)
            differ = int(np.sum(np.any(changed, axis=1)))
            row = {
                "set": name, "seed": seed, "metric": metric, "rows": table.num_rows,
                "mlcrew_seconds": round(wall, 2),
                "mlcrew_by_budget": by_budget,
                "mlcrew": ours, "mlcrew_default": base, "flaml": theirs,
                "flaml_seconds": [round(f["wall"], 2) for f in flaml],
                "flaml_best": [f["best"] for f in flaml],
                "flaml_repeat_predictions_differ": differ,
                "mlcrew_repeat_identical": digest == digest2,
                "mlcrew_model": [
                    first.record["trials"][m["trial"]]["kind"] for m in first.record["ensemble"]
                ],
            }  # fmt: skip
            rows.append(row)
            print(
                f"{name:14s} seed {seed}: {metric} mlcrew {ours[metric]:.4f} "
                f"(default {base[metric]:.4f}, {wall:.1f}s, {'+'.join(row['mlcrew_model'])}) | "
                f"FLAML {theirs[metric]:.4f} ({flaml[0]['best']}, "
                f"{differ} test predictions differ on repeat)",
                flush=True,
            )
    summary = []
    for name in dict.fromkeys(r["set"] for r in rows):
        mine = [r for r in rows if r["set"] == name]
        m = mine[0]["metric"]
        lower = m in ("rmse", "log_loss")
        wins = sum((r["mlcrew"][m] <= r["flaml"][m]) == lower or r["mlcrew"][m] == r["flaml"][m]
                   for r in mine)  # fmt: skip
        summary.append({
            "set": name, "metric": m,
            "mlcrew": statistics.mean(r["mlcrew"][m] for r in mine),
            "mlcrew_default": statistics.mean(r["mlcrew_default"][m] for r in mine),
            "mlcrew_by_budget": {
                b: statistics.mean(r["mlcrew_by_budget"][b] for r in mine)
                for b in mine[0]["mlcrew_by_budget"]
            },
            "flaml": statistics.mean(r["flaml"][m] for r in mine),
            "mlcrew_wins": f"{wins}/{len(mine)}",
            "seconds": statistics.mean(r["mlcrew_seconds"] for r in mine),
            "flaml_repeat_differences": [r["flaml_repeat_predictions_differ"] for r in mine],
            "mlcrew_repeats_identical": all(r["mlcrew_repeat_identical"] for r in mine),
        })  # fmt: skip
    print("\nset            metric    mlcrew   default  FLAML    mlcrew<=FLAML  s/run  "
          "FLAML repeat diffs  mlcrew repeats")  # fmt: skip
    for s in summary:
        print(f"{s['set']:14s} {s['metric']:8s} {s['mlcrew']:8.4f} {s['mlcrew_default']:8.4f} "
              f"{s['flaml']:8.4f} {s['mlcrew_wins']:>13s} {s['seconds']:6.1f}  "
              f"{s['flaml_repeat_differences']!s:18s}  "
              f"{'identical' if s['mlcrew_repeats_identical'] else 'DIFFER'}")  # fmt: skip
    print("\nscore against budget (trials; mean over seeds):")
    for s in summary:
        steps = ", ".join(f"{b}: {v:.4f}" for b, v in sorted(s["mlcrew_by_budget"].items()))
        print(
            f"{s['set']:14s} {s['metric']:8s} "
            f"default (no search) {s['mlcrew_default']:.4f}; {steps}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "search.json"
    out.write_text(json.dumps({"machine": machine_facts(), "args": vars(args), "runs": rows,
                               "summary": summary}, indent=1))  # fmt: skip
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
