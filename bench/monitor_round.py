#!/usr/bin/env python3
"""Benchmark: the cost of one monitoring round on a window of 100,000 logged predictions.

A bikeshare model is trained in a temporary project; 100,000 hours sampled from July-December
are predicted by the service in requests of 1,000 rows and written to the prediction log; then
one round of the loop (`mlcrew monitor run` without retraining) closes the window and judges
it: drift per feature, prediction drift, the domain classifier, the spec's checks, the report.
The round is timed cold (the version's reference profile and extras made in it) and warm (a
second window of the same size, the reference stored), with where the time goes.

Usage: PYTHONPATH=src .venv/bin/python bench/monitor_round.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import json
import pstats
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "src" / "mlcrew" / "examples" / "bikeshare"
PARTS = {
    "read the log": "windows.py:.*\\(log_rows\\)",
    "drift per feature": "assess.py:.*\\(judge_features\\)",
    "domain classifier": "domain.py:.*\\(domain_auc\\)",
    "predictions (drift, estimate)": "reference.py:.*\\(prediction_column\\)",
    "checks": "assess.py:.*\\(window_checks\\)",
    "reference (profile, extras)": "reference.py:.*\\(reference_(profile|extras)\\)",
    "report stored": "assess.py:.*\\(save_report\\)",
}


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve(project: object, rows: list[dict[str, object]], n: int, seed: int) -> None:
    import numpy as np

    from mlcrew.serving.predict import PredictionService

    service = PredictionService(project.store, project.spec.serving)  # type: ignore[attr-defined]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(rows), n)
    for start in range(0, n, 1000):
        batch = [rows[i] for i in picks[start : start + 1000]]
        service.predict(project.spec.name, batch, request_id=f"b{seed}-{start}")  # type: ignore[attr-defined]
    assert service.log is not None
    service.log.close()


def timed_round(project: object) -> tuple[float, dict[str, float], dict[str, object]]:
    from mlcrew.monitoring.loop import run_round

    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    outcome = run_round(
        project.store,
        project.spec,
        project.root,
        until=datetime.now(UTC),
        retrain_ok=False,  # type: ignore[attr-defined]
    )
    profiler.disable()
    seconds = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    import re

    parts = {}
    for label, pattern in PARTS.items():
        total = 0.0
        for (file, line, fn), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
            if re.search(pattern, f"{Path(file).name}:{line}({fn})"):
                total += cumulative
        parts[label] = round(total, 3)
    return seconds, parts, outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    from mlcrew.demo import typed_value
    from mlcrew.pipeline.runner import Runner
    from mlcrew.project import Project
    from mlcrew.registry.versions import get_version
    from mlcrew.training.model import TabularModel

    with tempfile.TemporaryDirectory(prefix="mlcrew-round-") as tmp:
        root = Path(tmp) / "bikeshare"
        shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mlcrew"))
        spec = root / "mlcrew.yaml"
        spec.write_text(
            spec.read_text().replace("  retrain:", "  old_retrain:").split("  old_retrain:")[0]
        )
        project = Project.open(root)
        Runner(project.root, project.store, project.spec, project.spec_text).run()
        model = TabularModel.from_json(
            project.store.artifacts.read_bytes(
                get_version(project.store, project.spec.name).model_digest
            )
        )
        with open(root / "data" / "bikeshare-jul-dec.csv", newline="") as f:
            rows = [
                {c["name"]: typed_value(r[c["name"]], c["type"]) for c in model.schema_}
                for r in csv.DictReader(f)
            ]
        results = {}
        for label, seed in (("cold", 1), ("warm", 2)):
            t = time.perf_counter()
            serve(project, rows, args.rows, seed)
            served = time.perf_counter() - t
            seconds, parts, outcome = timed_round(project)
            window = outcome["windows"][0]
            results[label] = {
                "rows": window["rows"],
                "round_s": round(seconds, 3),
                "parts_s": parts,
                "drifted": window["drifted"],
                "domain_auc": window["domain_auc"],
                "serve_and_log_s": round(served, 2),
            }
            print(f"{label}: {window['rows']:,} rows judged in {seconds:.2f} s", file=sys.stderr)
        project.close()
    print(json.dumps({**results, "peak_mb": round(peak_mb(), 1)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
