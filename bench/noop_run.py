#!/usr/bin/env python3
"""Benchmark: a cached no-op `mlcrew run` of the bikeshare example, whole process included.

Goal (issue 9): a cached no-op `mlcrew run` takes at most 300 ms of wall time (median),
process start included (the first goal, issue 1, was one second). This script measures it
next to two floors, in one process and interleaved round-robin, so machine noise hits every
command equally and the ratios hold
on a noisy machine:

  * `python -c pass`                       interpreter start, nothing else
  * `python -c "import lightgbm, ..."`     what a tool that imports its whole stack eagerly
                                           pays before doing anything
  * `python -c "import mlcrew.cli.main"` interpreter start + importing the CLI, no work
  * `mlcrew --version`                     the same through the console script
  * `mlcrew status -p DIR --json`          hash the sources, query the store
  * `mlcrew run -p DIR --json`             the cached no-op (every stage must say "cached"),
                                           replayed from the fingerprint (pipeline/noop.py)
  * the same with MLCREW_NO_FASTPATH=1     the cached no-op through the full CLI and store
  * the same on the penguins example       Python and embedding transforms, more checks
  * `mlcrew run -p DIR --json --force`     full re-execution, warm OS cache (3 runs only,
                                           after the round-robin, reported separately)

Usage: .venv/bin/python bench/noop_run.py [--repeat N]   (or `make bench`)

Stdlib only. Everything runs with this interpreter (sys.executable), and mlcrew through its
console script next to it, so the measurement includes the real entry point. Prints a
Markdown table and writes it, with the machine facts and the command, to
bench/results/noop_run.md (git-ignored). Exits 1 if the cached no-op median is > 300 ms,
2 if a command misbehaves.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from _common import cpu_model

BUDGET_MS = 300.0
FORCE_RUNS = 3
REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "noop_run.md"
PY = sys.executable
MLCREW = str(Path(sys.executable).parent / "mlcrew")
EAGER = "import lightgbm, duckdb, pyarrow, sklearn, fastapi"
# Variables that would point mlcrew away from the project's own SQLite store.
SCRUB_ENV = ("MLCREW_DB_URL", "MLCREW_ARTIFACTS", "MLCREW_DEBUG")


class BenchError(Exception):
    """A command failed or did not do what the benchmark assumes; the numbers would lie."""


@dataclass
class Case:
    key: str
    label: str
    argv: list[str]
    # A row that must exit 0 (and pass `check`) or the whole benchmark aborts. Reference rows
    # that are only there for the breakdown are timed even when they fail, and flagged.
    must_succeed: bool = True
    check: str | None = None  # "noop", "force", "status", "version"
    env: dict[str, str] = field(default_factory=dict)  # set for this command only
    times_ms: list[float] = field(default_factory=list)
    failures: dict[int, str] = field(default_factory=dict)  # exit code -> first stderr line


# Compiled bytecode for every timed process, under the run's temp folder (set in main): an
# installed mlcrew has its .pyc files (pip compiles on install), while PYTHONDONTWRITEBYTECODE,
# set on some machines, would make every process compile mlcrew's sources again.
PYCACHE: list[str] = []


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUB_ENV}
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "100"
    if PYCACHE:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = PYCACHE[0]
    return env


def run(
    argv: list[str], env: dict[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    full_env = {**child_env(), **(env or {})}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=full_env, check=False)
    return (time.perf_counter() - t0) * 1000.0, proc


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return "(no output)"
    return lines[-1].split(" (run with --debug")[0][:160]


def stage_states(stdout: str) -> list[tuple[str, str]]:
    try:
        data = json.loads(stdout)
        return [(s["name"], s["state"]) for s in data["stages"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"could not read stage states from JSON output: {exc}") from exc


def verify(case: Case, proc: subprocess.CompletedProcess[str]) -> None:
    if proc.returncode != 0:
        if case.must_succeed:
            raise BenchError(f"`{case.label}` exited {proc.returncode}: {last_line(proc.stderr)}")
        case.failures.setdefault(proc.returncode, last_line(proc.stderr or proc.stdout))
        return
    if case.check == "noop":
        states = stage_states(proc.stdout)
        bad = [f"{name}={state}" for name, state in states if state != "cached"]
        if bad or not states:
            raise BenchError(
                "the no-op run was not a no-op; stages not served from the cache: "
                + (", ".join(bad) or "no stages reported")
            )
    elif case.check == "force":
        states = stage_states(proc.stdout)
        bad = [f"{name}={state}" for name, state in states if state != "executed"]
        if bad or not states:
            raise BenchError("--force did not execute every stage: " + ", ".join(bad))
    elif case.check == "status":
        try:
            stale = [s["name"] for s in json.loads(proc.stdout)["stages"] if s["state"] != "fresh"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchError(f"could not read `mlcrew status --json` output: {exc}") from exc
        if stale:
            raise BenchError("status reports stages that are not fresh: " + ", ".join(stale))
    elif case.check == "version" and "mlcrew" not in proc.stdout:
        case.failures.setdefault(0, f"unexpected output: {last_line(proc.stdout)}")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation): with 15 runs, p90 is the 14th fastest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def sh(argv: list[str]) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).strip()


def machine_facts() -> dict[str, str]:
    commit = sh(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = sh(["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "pyproject.toml"])
    if dirty:
        commit += " (+ uncommitted changes in src/ or pyproject.toml)"
    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "python": sh([PY, "--version"]),
        "nproc": sh(["nproc"]) or str(os.cpu_count()),
        "cpu": cpu_model(),
        "os": platform.platform(),
        "commit": commit,
    }


def display(path: str) -> str:
    try:
        return os.path.relpath(path, REPO) if Path(path).is_relative_to(REPO) else path
    except ValueError:
        return path


def invocation() -> str:
    return shlex.join([display(PY), display(str(Path(__file__).resolve())), *sys.argv[1:]])


def import_profile(project: Path) -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
    """One `-X importtime` run of the no-op: top cumulative entries, self time per package."""
    proc = subprocess.run(
        [PY, "-X", "importtime", "-m", "mlcrew.cli.entry", "run", "-p", str(project), "--json"],
        capture_output=True,
        text=True,
        env=child_env(),
        check=False,
    )
    cumulative: list[tuple[float, str]] = []
    per_package: dict[str, float] = defaultdict(float)
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = line[len("import time:") :].split("|", 2)
        cumulative.append((int(cum_us) / 1000.0, name.rstrip()))
        per_package[name.strip().split(".")[0]] += int(self_us) / 1000.0
    cumulative.sort(reverse=True)
    by_pkg = sorted(((ms, pkg) for pkg, ms in per_package.items()), reverse=True)
    return cumulative[:10], by_pkg[:10]


def build_report(
    cases: list[Case],
    cold_ms: float,
    facts: dict[str, str],
    repeat: int,
    imports: tuple[list[tuple[float, str]], list[tuple[float, str]]],
) -> tuple[str, float]:
    by_key = {c.key: c for c in cases}
    med = {c.key: statistics.median(c.times_ms) for c in cases}
    floor_py, floor_eager = med["py"], med["eager"]
    rows = [
        "| command | runs | median ms | min ms | p90 ms | × `python -c pass` | × eager imports |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cases:
        note = ""
        if c.failures:
            note = " ⚠ " + "; ".join(
                f"exit {code}: {msg[:90]}".replace("|", "\\|") for code, msg in c.failures.items()
            )
        rows.append(
            f"| {c.label}{note} | {len(c.times_ms)} | {med[c.key]:.0f} | {min(c.times_ms):.0f} "
            f"| {percentile(c.times_ms, 0.9):.0f} | {med[c.key] / floor_py:.1f} "
            f"| {med[c.key] / floor_eager:.2f} |"
        )
    rows.append(
        f"| full pipeline, cold cache (`mlcrew run -p DIR --json`) | 1 | {cold_ms:.0f} "
        f"| {cold_ms:.0f} | {cold_ms:.0f} | {cold_ms / floor_py:.1f} "
        f"| {cold_ms / floor_eager:.2f} |"
    )
    noop = med["noop"]
    verdict = "PASS" if noop <= BUDGET_MS else "FAIL"
    summary = (
        f"Cached no-op `mlcrew run`: median **{noop:.0f} ms** ({verdict}, budget <= "
        f"{BUDGET_MS:.0f} ms; penguins {med['noop_penguins']:.0f} ms; through the full CLI "
        f"{med['noop_full']:.0f} ms) = {noop / floor_py:.1f}× interpreter start and "
        f"{noop / floor_eager:.2f}× the eager-import floor. The replay imports neither the "
        f"CLI (`import mlcrew.cli.main` alone: {med['imp']:.0f} ms) nor the store: it stats "
        "the fingerprint's files, looks the keys up with sqlite3 and writes the run's records."
    )
    cum, by_pkg = imports
    lines = [
        "# Benchmark: cached no-op `mlcrew run` (bikeshare and penguins examples)",
        "",
        f"- command: `{invocation()}` (or `make bench`)",
        f"- date: {facts['date']}",
        f"- python: {facts['python']} ({display(PY)})",
        f"- nproc: {facts['nproc']} ({facts['cpu']}; {facts['os']})",
        f"- mlcrew commit: {facts['commit']}",
        f"- method: {repeat} interleaved round-robin rounds (start rotated each round) after one "
        "untimed warm-up round; wall time of the whole process (`time.perf_counter` around "
        f"`subprocess.run`); p90 is nearest-rank; `--force` runs {len(by_key['force'].times_ms)}"
        "× after the rounds; every process reads compiled bytecode from a cache in the temp "
        "folder, filled before the cold run, as an installed package has its .pyc files",
        "",
        *rows,
        "",
        summary,
        "",
        "Import profile of one no-op run (`python -X importtime -m mlcrew.cli.entry run -p DIR "
        "--json`; one sample; it counts module execution only, not interpreter start and "
        "teardown, so it sums to less than the wall times above):",
        "",
        "| top cumulative imports | ms | | self time by top-level package | ms |",
        "|---|---:|---|---|---:|",
    ]
    for (c_ms, c_name), (p_ms, p_name) in zip(cum, by_pkg, strict=False):
        lines.append(f"| `{c_name.strip()}` | {c_ms:.0f} | | `{p_name}` | {p_ms:.0f} |")
    total_self = sum(ms for ms, _ in by_pkg)
    lines += ["", f"(top-10 packages' self time sums to {total_self:.0f} ms)", ""]
    return "\n".join(lines), noop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="round-robin rounds (default 15)")
    parser.add_argument("--keep", action="store_true", help="keep the temp project, print path")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if not Path(MLCREW).exists():
        print(f"error: no mlcrew console script next to {PY}", file=sys.stderr)
        return 2

    tmp = tempfile.mkdtemp(prefix="mlcrew-bench-")
    project = Path(tmp) / "bikeshare"
    d = str(project)
    PYCACHE.append(str(Path(tmp) / "pycache"))
    try:
        # Untimed: compiles the bytecode of mlcrew and of the stack the pipeline imports.
        _, proc = run([PY, "-c", "import mlcrew.cli.main, lightgbm, duckdb, pyarrow, fastapi"])
        if proc.returncode != 0:
            raise BenchError(f"importing the stack failed: {last_line(proc.stderr)}")
        _, proc = run([MLCREW, "init", "--example", "bikeshare", d])
        if proc.returncode != 0:
            raise BenchError(f"mlcrew init failed: {last_line(proc.stderr)}")
        print(f"project: {d}", file=sys.stderr)

        cold_ms, proc = run([MLCREW, "run", "-p", d, "--json"])
        if proc.returncode != 0:
            raise BenchError(f"cold `mlcrew run` failed: {last_line(proc.stderr)}")
        cold_states = stage_states(proc.stdout)
        if any(state != "executed" for _, state in cold_states):
            raise BenchError(f"cold run was not cold: {cold_states}")
        print(f"full pipeline, cold cache: {cold_ms:.0f} ms", file=sys.stderr)
        penguins = str(Path(tmp) / "penguins")
        for argv in (
            [MLCREW, "init", "--example", "penguins", penguins],
            [MLCREW, "run", "-p", penguins, "--json"],
        ):
            _, proc = run(argv)
            if proc.returncode != 0:
                raise BenchError(f"{argv[1]} of penguins failed: {last_line(proc.stderr)}")

        cases = [
            Case("py", "floor: `python -c pass`", [PY, "-c", "pass"]),
            Case("eager", f'floor: `python -c "{EAGER}"`', [PY, "-c", EAGER]),
            # Reference row (start + CLI import cost); flagged rather than fatal if it fails.
            Case(
                "version",
                "`mlcrew --version`",
                [MLCREW, "--version"],
                must_succeed=False,
                check="version",
            ),
            # Reference row: start + importing the CLI module, no argument parsing, no work.
            Case(
                "imp", '`python -c "import mlcrew.cli.main"`', [PY, "-c", "import mlcrew.cli.main"]
            ),
            Case(
                "status",
                "`mlcrew status -p DIR --json`",
                [MLCREW, "status", "-p", d, "--json"],
                check="status",
            ),
            Case(
                "noop_full",
                "`mlcrew run -p DIR --json` (cached no-op, full CLI: MLCREW_NO_FASTPATH=1)",
                [MLCREW, "run", "-p", d, "--json"],
                check="noop",
                env={"MLCREW_NO_FASTPATH": "1"},
            ),
            Case(
                "noop_penguins",
                "`mlcrew run -p PENGUINS --json` (cached no-op, penguins example)",
                [MLCREW, "run", "-p", penguins, "--json"],
                check="noop",
            ),
            Case(
                "noop",
                "**`mlcrew run -p DIR --json` (cached no-op)**",
                [MLCREW, "run", "-p", d, "--json"],
                check="noop",
            ),
        ]
        for c in cases:  # warm-up round: page cache, .pyc files; not timed
            verify(c, run(c.argv, c.env)[1])
        for rnd in range(args.repeat):
            k = rnd % len(cases)
            for c in cases[k:] + cases[:k]:
                ms, proc = run(c.argv, c.env)
                verify(c, proc)
                c.times_ms.append(ms)
            print(
                f"round {rnd + 1}/{args.repeat}: no-op {cases[-1].times_ms[-1]:.0f} ms",
                file=sys.stderr,
            )

        force = Case(
            "force",
            "`mlcrew run -p DIR --json --force` (full re-run, warm OS cache)",
            [MLCREW, "run", "-p", d, "--json", "--force"],
            check="force",
        )
        for _ in range(FORCE_RUNS):
            ms, proc = run(force.argv)
            verify(force, proc)
            force.times_ms.append(ms)
        cases.append(force)

        imports = import_profile(project)
        report, noop = build_report(cases, cold_ms, machine_facts(), args.repeat, imports)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(f"(project left in {tmp} for inspection)", file=sys.stderr)
        return 2
    else:
        if args.keep:
            print(f"project kept in {tmp}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)

    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    print(f"written to {display(str(RESULTS))}", file=sys.stderr)
    for c in cases:
        for code, msg in c.failures.items():
            print(f"warning: {c.label.strip('*')} exited {code}: {msg}", file=sys.stderr)
    if noop > BUDGET_MS:
        print(
            f"FAIL: the cached no-op `mlcrew run` median is {noop:.0f} ms, budget is < "
            f"{BUDGET_MS:.0f} ms. See the import profile above for what dominates.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
