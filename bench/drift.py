#!/usr/bin/env python3
"""Benchmark: data drift on two generated tables, mlcrew against Evidently's DataDriftPreset.

Goal (issue 10): >= 50x faster than Evidently 0.7 with at most half its peak memory, flagging
the same planted columns and no others, on 1,000,000 x 20 tables (also at 100,000 rows).

The script writes a reference and a current table as Parquet (10 numeric and 10 categorical
columns; drift planted in num_1 (mean +0.5 sd), num_4 (sd x1.5), cat_2 (frequencies
reversed) and cat_7 (a new value in 20% of rows)). Each side runs in a process of its own,
which reads both files and reports the drifted columns, its wall time from reading to verdict
and its peak resident memory. mlcrew is timed twice: cold (profile the reference,
then the window on its bins) and warm (the reference profile stored, as it is per model
version: the window only). Rounds alternate the two sides.

Usage: PYTHONPATH=src .venv/bin/python bench/drift.py [--rows 1000000 100000] [--repeat 3]
Peak memory is VmHWM from /proc (each side's own process). Evidently lives in
bench/.venv-evidently (bash bench/setup-peers.sh): it needs pandas < 3.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EVIDENTLY = REPO / "bench" / ".venv-evidently" / "bin" / "python"
PLANTED = ["num_1", "num_4", "cat_2", "cat_7"]  # as mlcrew.monitoring.synthetic plants them


def make_tables(folder: Path, rows: int) -> tuple[Path, Path]:
    import pyarrow.parquet as pq

    from mlcrew.monitoring.synthetic import planted_table

    ref, cur = folder / f"reference-{rows}.parquet", folder / f"current-{rows}.parquet"
    pq.write_table(planted_table(rows, 1, False), ref)
    pq.write_table(planted_table(rows, 2, True), cur)
    return ref, cur


MLCREW_SIDE = """
import json, sys, time
def peak_mb():
    # VmHWM: this process's peak resident memory (ru_maxrss would survive exec and count the
    # parent's tables too)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
t0 = time.perf_counter()
import numpy, pyarrow.compute, pyarrow.parquet  # imported before the clock, as Evidently's are
from mlcrew.monitoring.judge import judge
from mlcrew.monitoring.profile import TableProfile, profile_table, read_window
ref_path, cur_path, mode, stored = sys.argv[1:5]
if mode == "warm":
    reference = TableProfile.from_json(json.load(open(stored)))
    t1 = time.perf_counter()
else:
    t1 = time.perf_counter()
    reference = profile_table(read_window(ref_path))
    json.dump(reference.to_json(), open(stored, "w"))
window = profile_table(read_window(cur_path), like=reference)
verdict = judge(reference, window)
t2 = time.perf_counter()
print(json.dumps({"seconds": t2 - t1, "imports": t1 - t0, "drifted": sorted(verdict["drifted"]),
                  "peak_mb": peak_mb()}))
"""

EVIDENTLY_SIDE = """
import json, sys, time
def peak_mb():
    # VmHWM: this process's peak resident memory (ru_maxrss would survive exec and count the
    # parent's tables too)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
t0 = time.perf_counter()
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref_path, cur_path = sys.argv[1:3]
t1 = time.perf_counter()
ref = pd.read_parquet(ref_path)
cur = pd.read_parquet(cur_path)
snapshot = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
doc = snapshot.dict()
t2 = time.perf_counter()
drifted = []
for metric in doc["metrics"]:
    config = metric.get("config", {})
    if not str(config.get("type", "")).endswith("ValueDrift"):
        continue
    value, threshold = float(metric["value"]), float(config["threshold"])
    # "K-S p_value", "chi-square p_value": drift below the threshold; distances: above it
    if (value < threshold) if "p_value" in str(config["method"]) else (value >= threshold):
        drifted.append(config["column"])
print(json.dumps({"seconds": t2 - t1, "imports": t1 - t0, "drifted": sorted(drifted),
                  "peak_mb": peak_mb()}))
"""


def side(argv: list[str]) -> dict[str, object]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not EVIDENTLY.exists():
        print(f"no {EVIDENTLY}: run bash bench/setup-peers.sh", file=sys.stderr)
        return 2
    out = []
    with tempfile.TemporaryDirectory(prefix="mlcrew-drift-") as tmp:
        folder = Path(tmp)
        for rows in args.rows:
            t = time.perf_counter()
            ref, cur = make_tables(folder, rows)
            print(f"{rows:,} rows: tables in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            stored = str(folder / f"profile-{rows}.json")
            runs: dict[str, list[dict[str, object]]] = {"cold": [], "warm": [], "evidently": []}
            for i in range(args.repeat):
                ours = [sys.executable, "-c", MLCREW_SIDE, str(ref), str(cur)]
                theirs = [str(EVIDENTLY), "-c", EVIDENTLY_SIDE, str(ref), str(cur)]
                order = ["evidently", "cold", "warm"] if i % 2 else ["cold", "warm", "evidently"]
                for name in order:
                    argv = theirs if name == "evidently" else [*ours, name, stored]
                    runs[name].append(side(argv))
                times = ", ".join(f"{k} {v[-1]['seconds']:.2f} s" for k, v in runs.items())
                print(f"  round {i + 1}: {times}", file=sys.stderr)
            row: dict[str, object] = {"rows": rows, "planted": PLANTED}
            for name, results in runs.items():
                row[f"{name}_s"] = round(statistics.median(float(r["seconds"]) for r in results), 3)  # type: ignore[arg-type]
                row[f"{name}_peak_mb"] = round(max(float(r["peak_mb"]) for r in results), 1)  # type: ignore[arg-type]
                row[f"{name}_drifted"] = results[-1]["drifted"]
            row["speedup_cold"] = round(row["evidently_s"] / row["cold_s"], 1)  # type: ignore[operator]
            row["speedup_warm"] = round(row["evidently_s"] / row["warm_s"], 1)  # type: ignore[operator]
            row["memory_ratio_cold"] = round(row["cold_peak_mb"] / row["evidently_peak_mb"], 2)  # type: ignore[operator]
            out.append(row)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
