#!/usr/bin/env python3
"""Benchmark: the labeling scenario (issue 7, part 6) on the whole digits example.

Simulated labelers, each with its own error rate, label all 1,797 digits through the REST API
of a real `mlcrew serve` on 127.0.0.1 (tokens from the people CLI; overlap 3 by default; gold
mixed in unannounced), with a planted share of wrong labels that every labeler repeats. The
driver is tests/labeling/scenario.py (the test runs it on 240 items). Reports Krippendorff's
alpha and Fleiss' kappa among labelers, the majority consensus and each labeler against the
truth (accuracy, Cohen's kappa), each labeler's gold accuracy next to their real error rate,
and the precision and recall of likely-label-error detection on the planted items. Writes
bench/results/labeling_scenario.md and .json. Usage:
    PYTHONPATH=src .venv/bin/python bench/labeling_scenario.py [--overlap 3] [--planted 0.05]
        [--errors 0.02,0.05,0.1,0.2,0.3] [--items N] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
sys.path.insert(0, str(REPO))

from tests.labeling.scenario import Config, SimLabeler, run_scenario  # noqa: E402

NAMES = ("ava", "ben", "cai", "dee", "eli", "fay", "gus", "hal", "ida", "jon")


def commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (with uncommitted changes)" if dirty else "")


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--errors", default="0.02,0.05,0.1,0.2,0.3")
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--planted", type=float, default=0.05)
    parser.add_argument("--items", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    errors = [float(e) for e in args.errors.split(",")]
    if len(errors) > len(NAMES):
        parser.error(f"at most {len(NAMES)} labelers")
    config = Config(
        labelers=tuple(SimLabeler(n, e) for n, e in zip(NAMES, errors, strict=False)),
        items=args.items,
        overlap=args.overlap,
        planted=args.planted,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory(prefix="mlcrew-scenario-") as tmp:
        out = run_scenario(Path(tmp), config)
    command = " ".join(
        ["PYTHONPATH=src .venv/bin/python bench/labeling_scenario.py", shlex.join(sys.argv[1:])]
    ).strip()
    lines = [
        f"Command: `{command}` at commit {commit()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"{out.items_labelled} items labelled by {len(errors)} simulated labelers, overlap "
        f"{config.overlap}: {out.labels} labels stored (gold included) in {out.seconds:.0f} s, "
        f"{out.requests} HTTP requests; {out.planted} planted wrong labels.",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| Krippendorff's alpha among labelers (nominal) | {out.alpha:.3f} |",
        f"| Fleiss' kappa among labelers | {out.fleiss_kappa:.3f} |",
        f"| majority consensus vs truth: accuracy | {pct(out.consensus_accuracy)} |",
        f"| majority consensus vs truth: Cohen's kappa | {out.consensus_kappa:.3f} |",
        f"| items whose consensus is wrong (planted or by mistakes) | {out.wrong_consensus} |",
        f"| label-error detection: flagged | {out.flagged} |",
        f"| precision on planted items (flags that are planted) | {pct(out.precision)} |",
        f"| recall on planted items (planted that are flagged) | {pct(out.recall)} |",
        f"| precision on wrong consensus (flags whose consensus is wrong) | "
        f"{pct(out.precision_wrong)} |",
        "",
        "| labeler | error rate set | real error rate | labels | accuracy vs truth | "
        "Cohen's kappa vs truth | gold items | gold accuracy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    own = out.mlcrew
    gold_own = own["gold_accuracy"]
    tail = [
        "",
        "mlcrew's own quality report (`mlcrew label quality`) on the same labels:",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| Krippendorff's alpha | {own['alpha']:.3f} |",
        f"| Fleiss' kappa | {own['fleiss_kappa']:.3f} |",
        "| gold accuracy per labeler | "
        + ", ".join(f"{k} {pct(v)}" for k, v in sorted(gold_own.items()))
        + " |",
        f"| likely label errors flagged (of {own['checked']} items checked) | {own['flagged']} |",
        f"| precision on planted items | {pct(own['precision'])} |",
        f"| recall on planted items | {pct(own['recall'])} "
        f"({own['true_flags']} of {out.planted}) |",
        f"| precision on wrong consensus | {pct(own['precision_wrong'])} |",
    ]
    for p in out.per_labeler:
        lines.append(
            f"| {p['labeler']} | {pct(p['set_error'])} | {pct(p['real_error'])} | {p['labels']} "
            f"| {pct(p['accuracy_vs_truth'])} | {p['kappa_vs_truth']:.3f} | {p['gold_items']} "
            f"| {pct(p['gold_accuracy'])} |"
        )
    text = "\n".join(lines + tail) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "labeling_scenario.md").write_text(text)
    (RESULTS / "labeling_scenario.json").write_text(json.dumps(out.to_json(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
