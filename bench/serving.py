#!/usr/bin/env python3
"""Benchmark: `mlcrew serve` against `mlflow models serve`, same model, one-row JSON requests.

Goals (issue 5): >= 15x MLflow's requests/s, p99 <= 1/15 of MLflow's, ready <= 1/5 of MLflow's
start time, 0 errors; and a 60 s saturation run of mlcrew with 0 errors and resident memory
(summed over the server's processes) at the end within 10% of the 10 s mark.

The bikeshare example is trained and its champion exported with `mlcrew export --format
mlflow`, so both servers hold the same LightGBM model (the script checks they answer the same).
Servers, each started by its own CLI as a user would:

  * `mlflow models serve -m DIR --env-manager local`  (bench/.venv; POST /invocations with
    {"dataframe_records": [row]}; one uvicorn worker, its default)
  * `mlcrew serve -p DIR --workers N`, once per N in --workers (default 2 then 1; the first is
    the one the goals are judged on), with the spec's defaults: validation, prediction log,
    metrics and the per-request access log all on (stderr goes to a file, not /dev/null)
  * floors: bench/bare_app.py, a bare FastAPI app calling Booster.predict on the row, with the
    same worker counts

plus in-process floors: Booster.predict on a one-row matrix, LightGBM's prepared one-row call
that mlcrew uses, and mlcrew's validate + encode + predict of one JSON row (no HTTP).

Ready time: from spawning the command to its first successful prediction (median of --starts,
after one untimed start of each server that fills the OS file cache and a bytecode cache under
the temp folder, which every server uses, as an installed package has its bytecode); for mlcrew
also to its first /readyz 200. Load: wrk -t2 -c8 for --duration s per target,
targets interleaved round-robin for --rounds rounds (each column: its median over the rounds),
so machine noise hits all. An error is any response that is not 200 (counted by a Lua hook in
wrk, not only wrk's "Non-2xx or 3xx") or any socket error or timeout. Before the load the
script checks that mlcrew really has its production parts on (/readyz, /healthz and /metrics
answer, an unknown field gets 422, a wrong content type 415); after it, that the prediction
log holds a row for every answered request and /metrics counted them.

Usage: python bench/serving.py [--rounds 3] [--duration 20] [--workers 2,1] [--saturation 60]
Writes bench/results/serving.md. Exits 1 if a goal is missed, 2 if something misbehaves.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shlex
import shutil
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
    loadavg,
    machine_cpu,
    machine_facts,
    make_project,
    model_document,
    one_row,
    peer,
    post,
    pss_mb,
    rss_mb,
    stop,
    tree_cpu,
)

GOAL_RPS, GOAL_P99, GOAL_READY = 15.0, 15.0, 5.0
THREADS, CONNECTIONS = 2, 8
# Servers read and write compiled bytecode here, as an installed package has it (pip compiles
# on install); PYTHONDONTWRITEBYTECODE, set on some machines, would make every start compile
# mlcrew's sources again. Filled in by main() under its temp folder.
SERVER_ENV: dict[str, str] = {}


@dataclass
class Target:
    key: str
    label: str
    argv: list[str]
    path: str
    body: bytes
    logs: Path
    ready_path: str | None = None  # GET until 200 before the first prediction is tried
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    ready_s: list[float] = field(default_factory=list)  # spawn -> first good prediction
    readyz_s: list[float] = field(default_factory=list)  # spawn -> first /readyz 200
    loads: list[dict[str, float]] = field(default_factory=list)
    answered: int = 0  # successful predictions outside wrk (ready checks)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> tuple[float, float | None]:
        """Spawn; seconds until the first successful prediction, and until /readyz said 200
        (None without a ready_path)."""
        self.port = free_port()
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        err = open(self.logs / f"{self.key}.log", "ab")  # noqa: SIM115 (the child holds it)
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv,
            env=SERVER_ENV or env(),
            stdout=err,
            stderr=err,
            start_new_session=True,  # its own process group: stopped with its workers
        )
        err.close()
        deadline = started + 120
        readyz = None
        if self.ready_path is not None:
            url = self.base() + self.ready_path
            self._poll(lambda: get(url, timeout=2)[0] == 200, deadline)
            readyz = time.perf_counter() - started

        def predicted() -> bool:
            try:
                return post(self.url, self.body, timeout=2)[0] == 200
            except OSError:
                return False

        self._poll(predicted, deadline)
        self.answered += 1
        return time.perf_counter() - started, readyz

    def _poll(self, check: Any, deadline: float) -> None:
        while time.perf_counter() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise BenchError(
                    f"{self.label} exited with {self.proc.returncode} before it was ready "
                    f"(see {self.logs / (self.key + '.log')})"
                )
            if check():
                return
            time.sleep(0.01)
        raise BenchError(f"{self.label} was not ready after 120 s")

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
    m = re.search(r"^non-200 responses: (\d+)$", text, re.M)
    if not m:
        raise BenchError(f"wrk's Lua hook printed no count of non-200 responses:\n{text}")
    non_200 = int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    non_200 = max(non_200, int(m.group(1)) if m else 0)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    socket_errors = sum(int(g) for g in m.groups()) if m else 0
    out["non_200"] = float(non_200)
    out["socket_errors"] = float(socket_errors)
    out["errors"] = float(non_200 + socket_errors)
    return out


def wrk(
    target: Target, seconds: int, script: Path, connections: int = CONNECTIONS
) -> dict[str, float]:
    """One wrk run, with how much CPU the rest of the machine took meanwhile (`other_cores`:
    busy CPU time of the machine minus the server's, wrk's and this script's, per second of
    load; `steal_cores`: CPU the hypervisor gave to other machines)."""
    argv = ["wrk", f"-t{THREADS}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    root = target.proc.pid if target.proc is not None else None
    busy0, steal0 = machine_cpu()
    server0 = tree_cpu(root) if root else 0.0
    mine0 = _own_cpu()
    started = time.perf_counter()
    proc = subprocess.run(
        [*argv, "-s", str(script), target.url],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 60,
    )
    wall = time.perf_counter() - started
    busy1, steal1 = machine_cpu()
    server1 = tree_cpu(root) if root else 0.0
    mine1 = _own_cpu()
    if proc.returncode != 0:
        raise BenchError(f"wrk failed against {target.label}: {proc.stderr.strip()}")
    out = parse_wrk(proc.stdout)
    other = (busy1 - busy0) - (server1 - server0) - (mine1 - mine0)
    out["other_cores"] = max(0.0, other) / wall
    out["steal_cores"] = (steal1 - steal0) / wall
    return out


def _own_cpu() -> float:
    """CPU seconds of this script and of its finished children (wrk among them)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def lua(tmp: Path, target: Target) -> Path:
    """wrk's request, and a hook counting every response that is not a 200."""
    path = tmp / f"{target.key}.lua"
    body = target.body.decode().replace("\\", "\\\\").replace('"', '\\"')
    path.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "local threads = {}\n"
        "function setup(thread) table.insert(threads, thread) end\n"
        "function init(args) bad = 0 end\n"
        "function response(status, headers, body)\n"
        "  if status ~= 200 then bad = bad + 1 end\n"
        "end\n"
        "function done(summary, latency, requests)\n"
        "  local n = 0\n"
        '  for _, t in ipairs(threads) do n = n + t:get("bad") end\n'
        '  io.write(string.format("non-200 responses: %d\\n", n))\n'
        "end\n"
    )
    return path


def in_process_floors(
    exported: Path, row: dict[str, Any], seconds: float = 3.0
) -> dict[str, float]:
    """Calls per second of Booster.predict on one row, of LightGBM's prepared one-row call, and
    of mlcrew's validate + encode + predict of one JSON row."""
    code = f"""
import json, time
from mlcrew.training.model import TabularModel
from mlcrew.serving.fastrow import single_row_predictor
from mlcrew.serving.validation import InputSchema
model = TabularModel.from_json(open({str(exported / "data" / "mlcrew" / "model.json")!r}).read())
inputs = InputSchema(model.input_schema(), model.target_, False)
one = single_row_predictor(model.booster_)
row = json.loads({json.dumps(json.dumps(row))})
X = inputs.matrix([row]).X
import lightgbm
booster = lightgbm.Booster(model_str=model.booster_.model_to_string())  # the package's own
def rate(fn):
    for _ in range(200): fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < {seconds}:
        for _ in range(100): fn()
        n += 100
    return n / (time.perf_counter() - start)
print(json.dumps({{
    "booster": rate(lambda: booster.predict(X, num_threads=1)),
    "one_row": rate(lambda: one.predict(X[0])),
    "mlcrew_path": rate(lambda: one.predict(inputs.matrix([row]).X[0])),
}}))
"""
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env(), check=False)
    if proc.returncode != 0:
        raise BenchError(f"in-process floors failed: {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def saturation(target: Target, seconds: int, script: Path, connections: int) -> dict[str, Any]:
    """wrk for `seconds` on a running server; memory of its process tree every 5 s."""
    if target.proc is None:
        raise BenchError(f"{target.label} is not running")
    pid = target.proc.pid
    result: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: result.update(wrk(target, seconds, script, connections))
    )
    started = time.perf_counter()
    thread.start()
    samples: list[tuple[float, float, float]] = []  # (s, RSS MiB, PSS MiB)
    next_at = 5.0
    while thread.is_alive():
        time.sleep(max(0.0, min(0.5, started + next_at - time.perf_counter())))
        now = time.perf_counter() - started
        if now >= next_at and thread.is_alive():
            samples.append((round(now), rss_mb(pid), pss_mb(pid)))
            next_at += 5.0
    thread.join()
    if "rps" not in result:
        raise BenchError("the saturation run of wrk failed")
    end = (round(time.perf_counter() - started), rss_mb(pid), pss_mb(pid))
    at_10 = next(s for s in samples if s[0] >= 10)
    return {**result, "at_10": at_10, "at_end": end, "samples": [*samples, end]}


def production_checks(target: Target, row: dict[str, Any]) -> dict[str, str]:
    """What a production mlcrew answers besides predictions (each must be as expected)."""
    base = target.base()
    seen: dict[str, str] = {}
    expected = {"/readyz": 200, "/healthz": 200, "/metrics": 200}
    for path, want in expected.items():
        code = get(base + path)[0]
        seen[f"GET {path}"] = str(code)
        if code != want:
            raise BenchError(f"{target.label}: GET {path} gave {code}, expected {want}")
    bad = json.dumps({"rows": [{**row, "no_such_field": 1}]}).encode()
    code, _ = post(target.url, bad)
    seen["unknown field"] = str(code)
    if code != 422:
        raise BenchError(f"{target.label}: a row with an unknown field gave {code}, not 422")
    import urllib.error
    import urllib.request

    req = urllib.request.Request(target.url, target.body, {"Content-Type": "text/plain"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            code = resp.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    seen["text/plain body"] = str(code)
    if code != 415:
        raise BenchError(f"{target.label}: a text/plain body gave {code}, not 415")
    return seen


def metrics_rows(target: Target) -> float:
    """Rows predicted as counted by the service's /metrics (all workers)."""
    code, body = get(target.base() + "/metrics")
    if code != 200:
        raise BenchError(f"{target.label}: /metrics gave {code}")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("mlcrew_predicted_rows_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def logged_rows(project: Path) -> int:
    """Rows in the project's prediction log (read by mlcrew, after the servers stopped)."""
    code = f"""
from mlcrew.project import Project
from mlcrew.serving.predlog import read_predictions
proj = Project.open({str(project)!r})
print(read_predictions(proj.store, {NAME!r}).num_rows)
"""
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env(), check=False)
    if proc.returncode != 0:
        raise BenchError(f"reading the prediction log failed: {proc.stderr.strip()[-400:]}")
    return int(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=20, help="seconds of wrk per target")
    parser.add_argument("--starts", type=int, default=3, help="timed starts per server")
    parser.add_argument(
        "--workers",
        default="2,1",
        help="`mlcrew serve --workers N` for each N (comma-separated; goals judge the first)",
    )
    parser.add_argument("--saturation", type=int, default=60, help="seconds (0: skip)")
    parser.add_argument(
        "--saturation-connections", type=int, default=32, help="wrk connections when saturating"
    )
    parser.add_argument("--mlcrew-args", default="", help="more `mlcrew serve` arguments")
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    if not worker_counts or min(worker_counts) < 1:
        parser.error("--workers takes positive integers, e.g. 2,1")

    load_at_start = loadavg()
    tmp = Path(tempfile.mkdtemp(prefix="mlcrew-bench-serving-"))
    logs = tmp / "logs"
    logs.mkdir()
    SERVER_ENV.update(env(), PYTHONPYCACHEPREFIX=str(tmp / "pycache"))
    SERVER_ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    targets: list[Target] = []
    try:
        project, exported = make_project(tmp)
        row = one_row(project, exported)
        doc_path = exported / "data" / "mlcrew" / "model.json"
        model_document(exported)  # readable
        mlflow = Target(
            "mlflow",
            "`mlflow models serve` (MLflow pyfunc, 1 worker)",
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
            logs,
        )
        ours: list[Target] = []
        for n in worker_counts:
            extra = shlex.split(args.mlcrew_args)
            ours.append(
                Target(
                    f"mlcrew-w{n}",
                    f"`mlcrew serve --workers {n}{' ' + args.mlcrew_args if extra else ''}`",
                    [
                        *MLCREW,
                        "serve",
                        "-p",
                        str(project),
                        "--port",
                        "{port}",
                        "--workers",
                        str(n),
                        *extra,
                    ],
                    f"/v1/models/{NAME}/predict",
                    json.dumps({"rows": [row]}).encode(),
                    logs,
                    ready_path="/readyz",
                )
            )
        floors = [
            Target(
                f"bare-w{n}",
                f"floor: bare FastAPI + `Booster.predict`, {n} worker{'s' if n > 1 else ''}",
                [PY, str(REPO / "bench" / "bare_app.py"), str(doc_path), "{port}", str(n)],
                "/predict",
                json.dumps({"rows": [row]}).encode(),
                logs,
            )
            for n in sorted(set(worker_counts))
        ]
        headline = ours[0]
        targets = [mlflow, *ours, *floors]
        print(f"project: {project}\nrow: {row}\nload average: {load_at_start}", file=sys.stderr)

        k_all = len(targets)
        for t in targets:  # untimed: fills the bytecode cache and the OS file cache for all
            t.start()
            t.stop()
        for k in range(args.starts):  # interleaved starts
            for t in targets[k % k_all :] + targets[: k % k_all]:
                first, readyz = t.start()
                t.ready_s.append(first)
                if readyz is not None:
                    t.readyz_s.append(readyz)
                t.stop()
                print(f"start {k + 1}: {t.key} ready in {t.ready_s[-1]:.2f}s", file=sys.stderr)
        for t in targets:
            t.start()
        answers = {t.key: json.loads(post(t.url, t.body)[1]) for t in targets}
        for t in targets:
            t.answered += 1
        theirs = answers["mlflow"]["predictions"][0]
        for t in [*ours, *floors]:
            mine = answers[t.key]["predictions"][0]
            if abs(mine - theirs) > 1e-9 * max(1.0, abs(theirs)):
                raise BenchError(f"{t.key} answers {mine}, MLflow {theirs}: not the same model")
        checks = production_checks(headline, row)
        scripts = {t.key: lua(tmp, t) for t in targets}
        for rnd in range(args.rounds):
            order = targets[rnd % k_all :] + targets[: rnd % k_all]
            for t in order:
                t.loads.append(wrk(t, args.duration, scripts[t.key]))
                last = t.loads[-1]
                print(
                    f"round {rnd + 1}: {t.key:<10} {last['rps']:8.0f} req/s  p50 "
                    f"{last['p50']:.2f} ms  p99 {last['p99']:.2f} ms  errors "
                    f"{last['errors']:.0f}  (other CPU {last['other_cores']:.2f} cores, "
                    f"steal {last['steal_cores']:.2f}, load average {loadavg()})",
                    file=sys.stderr,
                )
        memory_after_load = {
            t.key: (rss_mb(t.proc.pid), pss_mb(t.proc.pid)) for t in targets if t.proc
        }
        sat = (
            saturation(
                headline, args.saturation, scripts[headline.key], args.saturation_connections
            )
            if args.saturation
            else None
        )
        counted = metrics_rows(headline)
        headline_answered = sum(r["requests"] for r in headline.loads) + (
            sat["requests"] if sat else 0
        )
        for t in targets:
            t.stop()
        # Every request wrk counted was answered, so it is in the log; in-flight requests when
        # wrk stopped (at most its connections per run) were answered too but not counted.
        expected = sum(sum(r["requests"] for r in t.loads) + t.answered for t in ours) + (
            sat["requests"] if sat else 0
        )
        slack = (args.rounds * len(ours) + (1 if sat else 0)) * max(
            CONNECTIONS, args.saturation_connections
        )
        in_log = logged_rows(project)
        floors_in_process = in_process_floors(exported, row)
        load_at_end = loadavg()
        facts = machine_facts()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(f"(files left in {tmp})", file=sys.stderr)
        return 2
    finally:
        for t in targets:
            t.stop()
    shutil.rmtree(tmp, ignore_errors=True)

    def median_load(t: Target) -> dict[str, float]:
        return {k: statistics.median(r[k] for r in t.loads) for k in ("rps", "p50", "p99")}

    med = {t.key: median_load(t) for t in targets}
    ready = {t.key: statistics.median(t.ready_s) for t in targets}
    readyz_med = {t.key: statistics.median(t.readyz_s) for t in targets if t.readyz_s}
    errors = {t.key: sum(r["errors"] for r in t.loads) for t in targets}
    rows = [
        f"| server | ready s (median of {args.starts}) | req/s | p50 ms | p99 ms | errors "
        "| RSS MiB (sum) | PSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in targets:
        m = med[t.key]
        ready_text = f"{ready[t.key]:.2f}"
        if t.key in readyz_med:
            ready_text += f" (`/readyz` {readyz_med[t.key]:.2f})"
        rss, pss = memory_after_load.get(t.key, (0.0, 0.0))
        rows.append(
            f"| {t.label} | {ready_text} | {m['rps']:.0f} | {m['p50']:.2f} | "
            f"{m['p99']:.2f} | {errors[t.key]:.0f} | {rss:.0f} | {pss:.0f} |"
        )
    fl = floors_in_process
    rows += [
        f"| floor: `Booster.predict` on one row, in process | — | {fl['booster']:.0f} calls/s "
        "| | | | | |",
        "| reference: LightGBM's prepared one-row call (what mlcrew uses), in process | — | "
        f"{fl['one_row']:.0f} calls/s | | | | | |",
        "| reference: mlcrew validate + encode + predict one JSON row, in process | — | "
        f"{fl['mlcrew_path']:.0f} calls/s | | | | | |",
    ]
    per_round = [
        "| round | " + " | ".join(t.key for t in targets) + " |",
        "|---|" + "---:|" * len(targets),
    ]
    for rnd in range(args.rounds):
        cells = [
            f"{r['rps']:.0f} / {r['p99']:.1f} / {r['other_cores']:.2f} / {r['steal_cores']:.2f}"
            for t in targets
            for r in [t.loads[rnd]]
        ]
        per_round.append(f"| {rnd + 1} | " + " | ".join(cells) + " |")

    def ratios(t: Target) -> tuple[float, float, float]:
        return (
            med[t.key]["rps"] / med["mlflow"]["rps"],
            med["mlflow"]["p99"] / med[t.key]["p99"],
            ready["mlflow"] / ready[t.key],
        )

    r_rps, r_p99, r_ready = ratios(headline)
    goals = [
        (f"requests/s >= 15x MLflow's ({headline.key})", f"{r_rps:.1f}x", r_rps >= GOAL_RPS),
        (f"p99 <= 1/15 of MLflow's ({headline.key})", f"1/{r_p99:.1f}", r_p99 >= GOAL_P99),
        (
            f"ready <= 1/5 of MLflow's ({headline.key}, first prediction)",
            f"1/{r_ready:.1f}",
            r_ready >= GOAL_READY,
        ),
        (
            f"0 errors ({headline.key}, all rounds)",
            f"{errors[headline.key]:.0f}",
            errors[headline.key] == 0,
        ),
    ]
    others = [
        f"- {t.key}: {a:.1f}x requests/s, p99 1/{b:.1f}, ready 1/{c:.1f} of MLflow's, "
        f"{errors[t.key]:.0f} errors"
        for t in ours[1:]
        for a, b, c in [ratios(t)]
    ]
    if sat:
        s10, send = sat["at_10"], sat["at_end"]
        growth = (send[1] - s10[1]) / s10[1]
        goals += [
            (
                f"saturation {args.saturation} s ({headline.key}, wrk -t{THREADS} "
                f"-c{args.saturation_connections}): 0 errors",
                f"{sat['errors']:.0f} ({sat['rps']:.0f} req/s, p99 {sat['p99']:.2f} ms)",
                sat["errors"] == 0,
            ),
            (
                "saturation: RSS (sum over the server's processes) at end within 10% of 10 s",
                f"{s10[1]:.0f} -> {send[1]:.0f} MiB ({growth:+.1%}); PSS {s10[2]:.0f} -> "
                f"{send[2]:.0f} MiB",
                abs(growth) <= 0.10,
            ),
        ]
    log_ok = expected <= in_log <= expected + slack
    goals.append(
        (
            "prediction log holds every answered prediction (all mlcrew servers)",
            f"{in_log} rows logged, {expected:.0f} answered (+ up to {slack} in flight)",
            log_ok,
        )
    )
    metrics_ok = headline_answered <= counted
    goals.append(
        (
            f"/metrics counted every prediction ({headline.key})",
            f"{counted:.0f} rows counted, {headline_answered:.0f} answered under wrk",
            metrics_ok,
        )
    )
    argv = [".venv/bin/python", "bench/serving.py", *sys.argv[1:]]
    command = "PYTHONPATH=src " + shlex.join(argv)
    lines = [
        "# Benchmark: serving one-row requests, mlcrew against MLflow",
        "",
        f"- command: `{command}`",
        f"- date: {facts['date']}; machine: {facts['nproc']} cores ({facts['cpu']}), "
        f"{facts['os']}, Python {facts['python']}",
        f"- load average (1, 5, 15 min): {load_at_start} before, {load_at_end} after",
        f"- mlcrew: {facts['mlcrew']}; MLflow {facts['mlflow']} (bench/.venv); {facts['wrk']}",
        "- mlcrew production checks: " + ", ".join(f"{k} {v}" for k, v in checks.items()),
        f"- load: wrk -t{THREADS} -c{CONNECTIONS} -d{args.duration}s, {args.rounds} interleaved "
        "rounds (median of each column over the rounds); ready = spawn to first successful "
        "prediction, after one untimed warm-up start of each server (servers keep compiled "
        "bytecode, as an installed package does); memory after the rounds",
        "",
        *rows,
        "",
        "Each round, req/s / p99 ms / other / steal: `other` is the CPU everything else on "
        "the machine took during that load (cores of 2: the machine's busy time minus the "
        "server's, wrk's and the script's), `steal` the CPU the hypervisor gave elsewhere:",
        "",
        *per_round,
        "",
        "| goal | measured | verdict |",
        "|---|---|---|",
        *[f"| {g} | {v} | {'PASS' if ok else 'FAIL'} |" for g, v, ok in goals],
        "",
        *(["Other mlcrew configurations against MLflow:", "", *others, ""] if others else []),
        *(
            [
                "Saturation memory (s: RSS sum / PSS MiB): "
                + ", ".join(f"{s}: {r:.0f}/{p:.0f}" for s, r, p in sat["samples"]),
                "",
            ]
            if sat
            else []
        ),
    ]
    report = "\n".join(lines)
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving.md").write_text(report)
    return 0 if all(ok for _, _, ok in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
