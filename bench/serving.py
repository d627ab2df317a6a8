#!/usr/bin/env python3
"""Benchmark: `mlcrew serve` against `mlflow models serve`, same model, one-row JSON requests.

Goals (issue 5): >= 15x MLflow's requests/s, p99 <= 1/15 of MLflow's, ready <= 1/5 of MLflow's
start time, 0 errors; and a 60 s saturation run of mlcrew with 0 errors and resident memory at
the end within 10% of the 10 s mark.

The bikeshare example is trained and its champion exported with `mlcrew export --format
mlflow`, so both servers hold the same LightGBM model. Servers (each one uvicorn process as
started by its own CLI):

  * `mlflow models serve -m DIR --env-manager local`  (bench/.venv; POST /invocations with
    {"dataframe_records": [row]})
  * `mlcrew serve -p DIR [--mlcrew-args ...]`            (whatever mlcrew is on PYTHONPATH;
    POST /v1/models/bike-demand/predict with {"rows": [row]})
  * floor: bench/bare_app.py, a bare FastAPI app calling Booster.predict on the row

plus two in-process floors: Booster.predict on a one-row matrix, and mlcrew's
TabularModel.predict_rows on one JSON row (validation + matrix + predict, no HTTP).

Ready time: from spawning the command to its first successful prediction (median of
--starts). Load: wrk, 8 connections, 1 thread, --duration s per target, targets interleaved
round-robin for --rounds rounds (each column: its median over the rounds), so machine
noise hits all.

Usage: PATH=bench/.venv/bin:$PATH python bench/serving.py [--rounds 3] [--duration 20]
         [--saturation 60] [--mlcrew-args "--workers 2"]
Writes bench/results/serving.md. Exits 1 if a goal is missed, 2 if something misbehaves.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    MLCREW,
    NAME,
    PY,
    REPO,
    RESULTS,
    BenchError,
    env,
    free_port,
    get,
    machine_facts,
    make_project,
    model_document,
    one_row,
    peer,
    post,
    rss_mb,
    stop,
    wait_until,
)

GOAL_RPS, GOAL_P99, GOAL_READY = 15.0, 15.0, 5.0


@dataclass
class Target:
    key: str
    label: str
    argv: list[str]
    path: str
    body: bytes
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    ready_s: list[float] = field(default_factory=list)
    loads: list[dict[str, float]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> float:
        """Spawn; seconds until the first successful prediction."""
        self.port = free_port()
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv,
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped with its workers
        )

        def answered() -> bool:
            try:
                return post(self.url, self.body, timeout=2)[0] == 200
            except OSError:
                return False

        wait_until(answered, 120, self.label, self.proc)
        return time.perf_counter() - started

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


def parse_wrk(text: str) -> dict[str, float]:
    def ms(value: str, unit: str) -> float:
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    out: dict[str, float] = {}
    found = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not found:
        raise BenchError(f"wrk printed no Requests/sec:\n{text}")
    out["rps"] = float(found.group(1))
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        if not m:
            raise BenchError(f"wrk printed no {pct}% latency:\n{text}")
        out[f"p{pct}"] = ms(m.group(1), m.group(2))
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = float(m.group(1)) if m else 0.0
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors += int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors += sum(int(g) for g in m.groups()) if m else 0
    out["errors"] = float(errors)
    return out


def wrk(target: Target, seconds: int, script: Path) -> dict[str, float]:
    proc = subprocess.run(
        ["wrk", "-t1", "-c8", f"-d{seconds}s", "--latency", "-s", str(script), target.url],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 60,
    )
    if proc.returncode != 0:
        raise BenchError(f"wrk failed against {target.label}: {proc.stderr.strip()}")
    return parse_wrk(proc.stdout)


def lua(tmp: Path, target: Target) -> Path:
    path = tmp / f"{target.key}.lua"
    body = target.body.decode().replace("\\", "\\\\").replace('"', '\\"')
    path.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return path


def in_process_floors(
    exported: Path, row: dict[str, Any], seconds: float = 3.0
) -> dict[str, float]:
    """Calls per second of Booster.predict on one row, and of mlcrew's predict_rows."""
    code = f"""
import json, time, sys
import numpy as np, lightgbm
from mlcrew.training.model import TabularModel
text = open({str(exported / "data" / "mlcrew" / "model.json")!r}).read()
model = TabularModel.from_json(text)
row = json.loads({json.dumps(json.dumps(row))})
X = model._matrix(model.rows_to_table([row]))
booster = lightgbm.Booster(model_str=json.loads(text)["lightgbm"])
def rate(fn):
    for _ in range(200): fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < {seconds}:
        for _ in range(100): fn()
        n += 100
    return n / (time.perf_counter() - start)
print(json.dumps({{
    "booster": rate(lambda: booster.predict(X, num_threads=1)),
    "predict_rows": rate(lambda: model.predict_rows([row])),
}}))
"""
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env(), check=False)
    if proc.returncode != 0:
        raise BenchError(f"in-process floors failed: {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def saturation(target: Target, seconds: int, script: Path) -> dict[str, float]:
    """wrk for `seconds` on a running server; resident memory at 10 s and at the end."""
    assert target.proc is not None
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(wrk(target, seconds, script)))
    started = time.perf_counter()
    thread.start()
    time.sleep(max(0.0, 10 - (time.perf_counter() - started)))
    at_10 = rss_mb(target.proc.pid)
    thread.join()
    at_end = rss_mb(target.proc.pid)
    return {**result, "rss_10s": at_10, "rss_end": at_end}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=20, help="seconds of wrk per target")
    parser.add_argument("--starts", type=int, default=3, help="timed starts per server")
    parser.add_argument("--saturation", type=int, default=60, help="seconds (0: skip)")
    parser.add_argument("--mlcrew-args", default="", help="extra `mlcrew serve` arguments")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mlcrew-bench-serving-"))
    targets: list[Target] = []
    try:
        project, exported = make_project(tmp)
        row = one_row(project, exported)
        doc_path = exported / "data" / "mlcrew" / "model.json"
        model_document(exported)  # readable
        mlflow = Target(
            "mlflow",
            "`mlflow models serve` (MLflow pyfunc)",
            [
                peer("mlflow"),
                "models",
                "serve",
                "-m",
                str(exported),
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                "{port}",
            ],
            "/invocations",
            json.dumps({"dataframe_records": [row]}).encode(),
        )
        mlcrew = Target(
            "mlcrew",
            f"`mlcrew serve {args.mlcrew_args}`".replace(" `", "`"),
            [
                *MLCREW,
                "serve",
                "-p",
                str(project),
                "--port",
                "{port}",
                *shlex.split(args.mlcrew_args),
            ],
            f"/v1/models/{NAME}/predict",
            json.dumps({"rows": [row]}).encode(),
        )
        bare = Target(
            "bare",
            "floor: bare FastAPI + Booster.predict",
            [PY, str(REPO / "bench" / "bare_app.py"), str(doc_path), "{port}"],
            "/predict",
            json.dumps({"rows": [row]}).encode(),
        )
        targets = [mlflow, mlcrew, bare]
        print(f"project: {project}\nrow: {row}", file=sys.stderr)

        for k in range(args.starts):  # interleaved cold starts
            for t in targets[k % 3 :] + targets[: k % 3]:
                t.ready_s.append(t.start())
                t.stop()
                print(f"start {k + 1}: {t.key} ready in {t.ready_s[-1]:.2f}s", file=sys.stderr)
        for t in targets:
            t.start()
        answers = {t.key: json.loads(post(t.url, t.body)[1]) for t in targets}
        ours = answers["mlcrew"]["predictions"][0]
        theirs = answers["mlflow"]["predictions"][0]
        if abs(ours - theirs) > 1e-9 * max(1.0, abs(ours)):
            raise BenchError(f"the servers disagree: mlcrew {ours}, MLflow {theirs}")
        features = {
            path: get(f"http://127.0.0.1:{mlcrew.port}{path}")[0]
            for path in ("/metrics", "/readyz", "/healthz")
        }
        scripts = {t.key: lua(tmp, t) for t in targets}
        for rnd in range(args.rounds):
            order = targets[rnd % 3 :] + targets[: rnd % 3]
            for t in order:
                t.loads.append(wrk(t, args.duration, scripts[t.key]))
                last = t.loads[-1]
                print(
                    f"round {rnd + 1}: {t.key:<6} {last['rps']:8.0f} req/s  p50 "
                    f"{last['p50']:.2f} ms  p99 {last['p99']:.2f} ms  errors {last['errors']:.0f}",
                    file=sys.stderr,
                )
        rss_after_load = {t.key: rss_mb(t.proc.pid) for t in targets if t.proc}
        sat = saturation(mlcrew, args.saturation, scripts["mlcrew"]) if args.saturation else None
        floors = in_process_floors(exported, row)
        facts = machine_facts()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(f"(files left in {tmp})", file=sys.stderr)
        return 2
    finally:
        for t in targets:
            t.stop()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)

    def median_load(t: Target) -> dict[str, float]:
        return {k: statistics.median(r[k] for r in t.loads) for k in ("rps", "p50", "p99")}

    med = {t.key: median_load(t) for t in targets}
    ready = {t.key: statistics.median(t.ready_s) for t in targets}
    errors = {t.key: sum(r["errors"] for r in t.loads) for t in targets}
    rows = [
        f"| server | ready s (median of {args.starts}) | req/s | p50 ms | p99 ms | errors "
        "| RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in targets:
        m = med[t.key]
        rows.append(
            f"| {t.label} | {ready[t.key]:.2f} | {m['rps']:.0f} | {m['p50']:.2f} | "
            f"{m['p99']:.2f} | {errors[t.key]:.0f} | {rss_after_load.get(t.key, 0):.0f} |"
        )
    rows.append(
        f"| floor: `Booster.predict` on one row, in process | — | {floors['booster']:.0f} calls/s "
        "| | | | |"
    )
    rows.append(
        f"| reference: `TabularModel.predict_rows([row])`, in process | — | "
        f"{floors['predict_rows']:.0f} calls/s | | | | |"
    )
    ratio_rps = med["mlcrew"]["rps"] / med["mlflow"]["rps"]
    ratio_p99 = med["mlflow"]["p99"] / med["mlcrew"]["p99"]
    ratio_ready = ready["mlflow"] / ready["mlcrew"]
    goals = [
        ("requests/s >= 15x MLflow's", f"{ratio_rps:.1f}x", ratio_rps >= GOAL_RPS),
        ("p99 <= 1/15 of MLflow's", f"1/{ratio_p99:.1f}", ratio_p99 >= GOAL_P99),
        ("ready <= 1/5 of MLflow's", f"1/{ratio_ready:.1f}", ratio_ready >= GOAL_READY),
        ("0 errors (mlcrew, all rounds)", f"{errors['mlcrew']:.0f}", errors["mlcrew"] == 0),
    ]
    if sat:
        growth = (sat["rss_end"] - sat["rss_10s"]) / sat["rss_10s"]
        goals += [
            (
                f"saturation {args.saturation} s: 0 errors",
                f"{sat['errors']:.0f} ({sat['rps']:.0f} req/s, p99 {sat['p99']:.2f} ms)",
                sat["errors"] == 0,
            ),
            (
                "saturation: RSS at end within 10% of 10 s mark",
                f"{sat['rss_10s']:.0f} -> {sat['rss_end']:.0f} MiB ({growth:+.1%})",
                abs(growth) <= 0.10,
            ),
        ]
    command = "PATH=bench/.venv/bin:$PATH " + shlex.join(
        [Path(PY).name, "bench/serving.py", *sys.argv[1:]]
    )
    lines = [
        "# Benchmark: serving one-row requests, mlcrew against MLflow",
        "",
        f"- command: `{command}`",
        f"- date: {facts['date']}; machine: {facts['nproc']} cores ({facts['cpu']}), "
        f"{facts['os']}, Python {facts['python']}",
        f"- mlcrew: {facts['mlcrew']}; MLflow {facts['mlflow']} (bench/.venv); {facts['wrk']}",
        "- mlcrew routes seen: "
        + ", ".join(f"`{p}` {c or 'no answer'}" for p, c in features.items()),
        f"- load: wrk -t1 -c8 -d{args.duration}s, {args.rounds} interleaved rounds (median of "
        "each column over the rounds); ready = spawn to first successful prediction",
        "",
        *rows,
        "",
        "| goal | measured | verdict |",
        "|---|---|---|",
        *[f"| {g} | {v} | {'PASS' if ok else 'FAIL'} |" for g, v, ok in goals],
        "",
    ]
    report = "\n".join(lines)
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving.md").write_text(report)
    return 0 if all(ok for _, _, ok in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
