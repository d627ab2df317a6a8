#!/usr/bin/env python3
"""Benchmark: the example's training trials on Ray (2 workers) vs in-process, and the executor's
overhead, side by side on this machine.

Starts a real Ray head on 127.0.0.1 (token auth, temp HOME and RAY_TMPDIR, `--num-cpus 2`, so
two trials run at once) and stops it by its process ids. Then, round-robin for --rounds rounds:

  A. the bikeshare example as shipped (`trials: 1`): `mlcrew run --force` as a whole process,
     `--executor local` vs `--executor ray` (no units, so Ray is never contacted: the seam's
     own cost);
  B. the example with `trials: N` (--trials, default 8): `mlcrew run --force` as a whole process,
     local vs ray (the ray process imports Ray, connects, runs the trials, disconnects), with
     the train stage's own seconds from the run record;
  C. in one driver kept connected (a long-lived process): the train stage's seconds, local vs
     ray, and the parts of the overhead: `import ray`, `ray.init` to the head, N no-op units
     (task round trips), `ray.shutdown`.

Every ray run must give the same output digests as the local one (else exit 2). Prints a
Markdown table of medians and writes it, with the command and commit, to
bench/results/ray_trials.md. Usage:
    PYTHONPATH=src .venv/bin/python bench/ray_trials.py [--rounds 5] [--trials 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, cpu_model, sh

sys.path.insert(0, str(REPO))
from tests.ray_head import RayHead, start_head

PY = sys.executable
MLCREW = [PY, "-m", "mlcrew.cli.main"]
RESULTS = REPO / "bench" / "results"


def make_example(tmp: Path, name: str, trials: int) -> Path:
    from mlcrew.project import EXAMPLES

    target = tmp / name
    shutil.copytree(EXAMPLES / "bikeshare", target, ignore=shutil.ignore_patterns(".mlcrew"))
    spec = target / "mlcrew.yaml"
    spec.write_text(spec.read_text().replace("trials: 1,", f"trials: {trials},"))
    return target


def cli_run(project: Path, env: dict[str, str], *extra: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    proc = subprocess.run(
        [*MLCREW, "run", "--force", "--json", "-p", str(project), *extra],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 3):
        raise SystemExit(f"mlcrew run {' '.join(extra)} exited {proc.returncode}: {proc.stderr}")
    return seconds, json.loads(proc.stdout)


def stage_seconds(doc: dict[str, Any], name: str) -> float:
    return float(next(s["seconds"] for s in doc["stages"] if s["name"] == name))


def outputs(doc: dict[str, Any]) -> list[dict[str, str]]:
    return [s["outputs"] for s in doc["stages"]]


def noop_unit(_: None, unit: int) -> int:
    return unit


def in_driver(head: RayHead, tmp: Path, trials: int, rounds: int) -> dict[str, list[float]]:
    """C: one process, one connection; what each part of the overhead costs."""
    from mlcrew.pipeline.runner import Runner
    from mlcrew.project import Project

    times: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        times.setdefault(key, []).append(value)

    started = time.perf_counter()
    import ray

    add("C. import ray", time.perf_counter() - started)
    from mlcrew.pipeline.executors import LocalExecutor
    from mlcrew.pipeline.ray_executor import RayExecutor

    projects = {
        mode: Project.open(make_example(tmp, f"driver-{mode}", trials)) for mode in ("local", "ray")
    }
    for _ in range(rounds):
        executor = RayExecutor(head.address)
        started = time.perf_counter()
        executor._connect()
        add("C. ray.init (connect to the head)", time.perf_counter() - started)
        started = time.perf_counter()
        executor.map(noop_unit, None, list(range(trials)), label="noop")
        add(f"C. {trials} no-op units, new connection", time.perf_counter() - started)
        docs = {}
        # The first ray run of a connection starts fresh worker processes, which import
        # LightGBM and mlcrew; the second finds them warm.
        for mode, label in (
            ("local", "local"),
            ("ray", "ray, 1st run of the connection"),
            ("ray", "ray, 2nd run (warm workers)"),
        ):
            proj = projects[mode]
            chosen = executor if mode == "ray" else LocalExecutor()
            runner = Runner(proj.root, proj.store, proj.spec, proj.spec_text, executor=chosen)
            docs[mode] = runner.run(force=True).to_json()
            add(f"C. train stage, {label}", stage_seconds(docs[mode], "train"))
            if outputs(docs[mode]) != outputs(docs["local"]):
                raise SystemExit("ray and local runs gave different digests")
        started = time.perf_counter()
        executor.map(noop_unit, None, list(range(trials)), label="noop")
        add(f"C. {trials} no-op units, warm workers", time.perf_counter() - started)
        started = time.perf_counter()
        executor.close()
        add("C. ray.shutdown", time.perf_counter() - started)
    for proj in projects.values():
        proj.close()
    assert not ray.is_initialized()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="mlcrew-bench-ray-"))
    head = start_head(cpus=2)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLCREW_", "RAY_"))}
        env.update(head.client_env)
        os.environ.update(head.client_env)  # for part C, before Ray is imported
        shipped = make_example(tmp, "shipped", 1)
        many = make_example(tmp, "many", args.trials)
        for project in (shipped, many):
            cli_run(project, env)  # warm-up: OS caches, bytecode, the store
        cli_run(many, env, "--executor", "ray", "--address", head.address)  # warm the workers
        times: dict[str, list[float]] = {}
        t = args.trials
        for _ in range(args.rounds):
            for label, project, extra in (
                ("A. example (trials 1), whole run, local", shipped, ()),
                ("A. example (trials 1), whole run, ray", shipped, ("--executor", "ray")),
                (f"B. trials {t}, whole run, local", many, ()),
                (f"B. trials {t}, whole run, ray", many, ("--executor", "ray")),
            ):
                if extra:
                    extra = (*extra, "--address", head.address)
                seconds, doc = cli_run(project, env, *extra)
                times.setdefault(label, []).append(seconds)
                times.setdefault(label.replace("whole run", "train stage"), []).append(
                    stage_seconds(doc, "train")
                )
        times.update(in_driver(head, tmp, t, args.rounds))
    finally:
        head.stop()
        shutil.rmtree(head.root, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    rows = ["| what | median s | min s | max s |", "|---|---:|---:|---:|"]
    for key in sorted(times, key=lambda k: (k[:2], k)):
        v = times[key]
        rows.append(f"| {key} | {statistics.median(v):.3f} | {min(v):.3f} | {max(v):.3f} |")
    commit = sh(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]) or "unknown"
    branch = sh(["git", "-C", str(REPO), "rev-parse", "--abbrev-ref", "HEAD"])
    command = "PYTHONPATH=src " + shlex.join([Path(PY).name, *sys.argv])
    text = "\n".join(
        [
            f"# Ray trials ({args.rounds} rounds, head with --num-cpus 2)",
            "",
            f"command: `{command}`",
            f"commit: {commit} ({branch}), cpu: {cpu_model()}, cores: {os.cpu_count()}, "
            f"1-min load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end",
            "",
            *rows,
            "",
        ]
    )
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ray_trials.md").write_text(text)


if __name__ == "__main__":
    main()
