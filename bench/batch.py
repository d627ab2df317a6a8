#!/usr/bin/env python3
"""Benchmark: batch scoring of 1M rows, `mlcrew score` against MLflow's pyfunc `predict`.

The bikeshare example is trained and its champion exported to MLflow (`mlcrew export --format
mlflow`), so both sides hold the same LightGBM model. 1,000,000 rows are drawn with replacement
(seeded) from the example's July-December data and written as Parquet and CSV. Then, for each
format, interleaved for --rounds rounds:

  * `mlcrew score --data rows.EXT --out scored.EXT --json`    (whole process)
  * MLflow in bench/.venv: `mlflow.pyfunc.load_model(DIR)`, pandas reads the file, `predict`,
    the prediction column is added and pandas writes the same format (whole process; the
    predict call is also timed alone)

Both outputs are compared (same predictions). Reports rows/s for the whole job and for the
predict step. Usage: python bench/batch.py [--rows 1000000] [--rounds 2]
Writes bench/results/batch.md. Exits 2 if something misbehaves.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    MLCREW,
    NEW_DATA,
    PY,
    RESULTS,
    BenchError,
    env,
    loadavg,
    machine_facts,
    make_project,
    peer,
)

MLFLOW_JOB = """
import json, sys, time
t0 = time.perf_counter()
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
t1 = time.perf_counter()
src, out = sys.argv[2], sys.argv[3]
frame = pd.read_parquet(src) if src.endswith(".parquet") else pd.read_csv(src)
t2 = time.perf_counter()
frame["prediction"] = model.predict(frame)
t3 = time.perf_counter()
frame.to_parquet(out, index=False) if out.endswith(".parquet") else frame.to_csv(out, index=False)
t4 = time.perf_counter()
print(json.dumps({"import_load": t1 - t0, "read": t2 - t1, "predict": t3 - t2, "write": t4 - t3,
                  "rows": len(frame)}))
"""


def timed(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env(), check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise BenchError(f"`{' '.join(argv[:4])}` failed: {proc.stderr.strip()[-500:]}")
    return seconds, proc.stdout


def make_rows(project: Path, tmp: Path, n: int) -> dict[str, Path]:
    code = f"""
import numpy as np, pyarrow.csv as pcsv, pyarrow.parquet as pq
t = pcsv.read_csv({str(project / NEW_DATA)!r})
idx = np.random.default_rng(0).integers(0, t.num_rows, {n})
rows = t.take(idx)
pq.write_table(rows, {str(tmp / "rows.parquet")!r})
pcsv.write_csv(rows, {str(tmp / "rows.csv")!r})
"""
    subprocess.run([PY, "-c", code], check=True, env=env())
    return {"parquet": tmp / "rows.parquet", "csv": tmp / "rows.csv"}


def compare(ours: Path, theirs: Path) -> float:
    """Largest absolute difference between the two prediction columns."""
    code = f"""
import numpy as np, pyarrow.csv as pcsv, pyarrow.parquet as pq
read = lambda p: pq.read_table(p) if p.endswith(".parquet") else pcsv.read_csv(p)
a = read({str(ours)!r}).column("prediction").to_numpy()
b = read({str(theirs)!r}).column("prediction").to_numpy()
assert len(a) == len(b), (len(a), len(b))
print(float(np.max(np.abs(a - b))))
"""
    return float(
        subprocess.run(
            [PY, "-c", code], capture_output=True, text=True, check=True, env=env()
        ).stdout
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    load_at_start = loadavg()
    tmp = Path(tempfile.mkdtemp(prefix="mlcrew-bench-batch-"))
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    diffs: dict[str, float] = {}
    try:
        project, exported = make_project(tmp)
        files = make_rows(project, tmp, args.rows)
        mlflow_py = peer("python")
        job = tmp / "mlflow_job.py"
        job.write_text(MLFLOW_JOB)
        for fmt, src in files.items():
            ours, theirs = tmp / f"mlcrew.{fmt}", tmp / f"mlflow.{fmt}"
            for rnd in range(args.rounds):
                sides = ["mlcrew", "mlflow"] if rnd % 2 == 0 else ["mlflow", "mlcrew"]
                for side in sides:
                    if side == "mlcrew":
                        ours.unlink(missing_ok=True)
                        wall, out = timed(
                            [
                                *MLCREW,
                                "score",
                                "--data",
                                str(src),
                                "--out",
                                str(ours),
                                "--json",
                                "-p",
                                str(project),
                            ]
                        )
                        doc = json.loads(out)
                        if doc["output"]["rows"] != args.rows:
                            raise BenchError(f"mlcrew wrote {doc['output']['rows']} rows")
                        rec = {"wall": wall, "job": doc["seconds"]}
                    else:
                        wall, out = timed(
                            [mlflow_py, str(job), str(exported), str(src), str(theirs)]
                        )
                        doc = json.loads(out)
                        rec = {
                            "wall": wall,
                            "predict": doc["predict"],
                            "read": doc["read"],
                            "write": doc["write"],
                            "load": doc["import_load"],
                        }
                    results.setdefault((fmt, side), []).append(rec)
                    print(f"{fmt} round {rnd + 1}: {side} {wall:.1f}s", file=sys.stderr)
            diffs[fmt] = compare(ours, theirs)
        facts = machine_facts()
        load_at_end = loadavg()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(f"(files left in {tmp})", file=sys.stderr)
        return 2
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)

    def med(fmt: str, side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[(fmt, side)])

    n = args.rows
    lines = [
        f"# Benchmark: batch scoring of {n:,} rows, mlcrew against MLflow pyfunc",
        "",
        "- command: `PYTHONPATH=src "
        + shlex.join([".venv/bin/python", "bench/batch.py", *sys.argv[1:]])
        + "`",
        f"- date: {facts['date']}; machine: {facts['nproc']} cores ({facts['cpu']}), Python "
        f"{facts['python']}",
        f"- load average (1, 5, 15 min): {load_at_start} before, {load_at_end} after",
        f"- mlcrew: {facts['mlcrew']}; MLflow {facts['mlflow']} (bench/.venv)",
        f"- {args.rounds} interleaved rounds per format, medians shown; rows drawn with "
        "replacement (seed 0) from the bikeshare July-December data",
        "",
        "| format | job | whole process s | rows/s (whole process) | predict step s "
        "| rows/s (predict step) | max abs diff vs MLflow |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for fmt in files:
        wall_o, job_o = med(fmt, "mlcrew", "wall"), med(fmt, "mlcrew", "job")
        wall_t, pred_t = med(fmt, "mlflow", "wall"), med(fmt, "mlflow", "predict")
        lines.append(
            f"| {fmt} | `mlcrew score` (read + validate + predict + write, chunked) | {wall_o:.1f} "
            f"| {n / wall_o:,.0f} | {job_o:.1f} (whole job, no start-up) | {n / job_o:,.0f} "
            f"| {diffs[fmt]:.2g} |"
        )
        lines.append(
            f"| {fmt} | MLflow: load_model + pandas read + `predict` + pandas write | "
            f"{wall_t:.1f} | {n / wall_t:,.0f} | {pred_t:.1f} (`predict` alone; read "
            f"{med(fmt, 'mlflow', 'read'):.1f}, write {med(fmt, 'mlflow', 'write'):.1f}, "
            f"import + load {med(fmt, 'mlflow', 'load'):.1f}) | {n / pred_t:,.0f} | |"
        )
    for fmt in files:
        ratio = med(fmt, "mlflow", "wall") / med(fmt, "mlcrew", "wall")
        lines.append("")
        lines.append(f"{fmt}: mlcrew score's whole process is {ratio:.2f}x MLflow's rows/s.")
    report = "\n".join(lines) + "\n"
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "batch.md").write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
