"""What the side-by-side benchmarks share: the project they serve, machine facts, processes.

Stdlib only: the scripts run with mlcrew's interpreter (mlcrew from PYTHONPATH or its install)
and reach the peers in bench/.venv through their console scripts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
PEERS_BIN = REPO / "bench" / ".venv" / "bin"
PY = sys.executable
MLCREW = [PY, "-m", "mlcrew.cli.main"]
NAME = "bike-demand"
NEW_DATA = "data/bikeshare-jul-dec.csv"
SCRUB_ENV = ("MLCREW_DB_URL", "MLCREW_ARTIFACTS", "MLCREW_DEBUG")


class BenchError(Exception):
    """Something the benchmark relies on did not work; the numbers would lie."""


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in SCRUB_ENV}
    e["NO_COLOR"] = "1"
    e["PATH"] = f"{PEERS_BIN}:{e.get('PATH', '')}"
    return e


def run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env(), check=False, **kw)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise BenchError(f"`{' '.join(argv[:6])}` exited {proc.returncode}: {' | '.join(tail)}")
    return proc


def peer(name: str) -> str:
    path = PEERS_BIN / name
    if not path.exists():
        raise BenchError(f"{path} is missing: run `bash bench/setup-peers.sh` first")
    return str(path)


def make_project(tmp: Path) -> tuple[Path, Path]:
    """The bikeshare example trained, and its champion exported to MLflow: (project, model)."""
    project = tmp / "bikeshare"
    run([*MLCREW, "init", "--example", "bikeshare", str(project)])
    run([*MLCREW, "run", "-p", str(project), "--json"])
    exported = tmp / "mlflow-model"
    run(
        [
            *MLCREW,
            "export",
            NAME,
            "champion",
            "--format",
            "mlflow",
            str(exported),
            "-p",
            str(project),
        ]
    )
    return project, exported


def model_document(exported: Path) -> dict[str, Any]:
    return json.loads((exported / "data" / "mlcrew" / "model.json").read_text())  # type: ignore[no-any-return]


def one_row(project: Path, exported: Path) -> dict[str, Any]:
    """A real July row, typed as a JSON client sends it (the model's features only)."""
    import csv

    schema = model_document(exported)["schema"]
    with open(project / NEW_DATA, newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["hr"] == "17")
    typed: dict[str, Any] = {}
    for field in schema:
        value = row[field["name"]]
        if field["type"] == "integer":
            typed[field["name"]] = int(value)
        elif field["type"] == "number":
            typed[field["name"]] = float(value)
        elif field["type"] == "boolean":
            typed[field["name"]] = value.lower() == "true"
        else:
            typed[field["name"]] = int(value) if value.isdigit() else value
    return typed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def tree_pids(root: int) -> list[int]:
    """A process and all its descendants (uvicorn workers, MLflow's server under its CLI)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def rss_mb(root: int) -> float:
    """Resident memory of a process tree, in MiB."""
    total = 0
    for pid in tree_pids(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def pss_mb(root: int) -> float:
    """Proportional set size of a process tree, in MiB: pages shared by forked workers counted
    once in all (RSS summed over the tree counts them once per process)."""
    total = 0
    for pid in tree_pids(root):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def machine_cpu() -> tuple[float, float]:
    """CPU seconds the whole machine has been busy (all cores) and stolen by the hypervisor,
    since boot."""
    v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = v
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def tree_cpu(root: int) -> float:
    """CPU seconds used so far by a process tree (the processes alive now)."""
    total = 0
    for pid in tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a server we started (its whole process group), by its pid."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def sh(argv: list[str]) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).strip()


def mlcrew_source() -> str:
    """Which mlcrew the scripts measure (PYTHONPATH wins over the install)."""
    return sh([PY, "-c", "import mlcrew, os; print(os.path.dirname(mlcrew.__file__))"])


def cpu_model() -> str:
    """The processor's model name (Linux), or "unknown"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine_facts() -> dict[str, str]:
    src = Path(mlcrew_source())
    repo = src.parent.parent if (src.parent.parent / ".git").exists() else REPO
    commit = sh(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"]) or "unknown"
    branch = sh(["git", "-C", str(repo), "rev-parse", "--abbrev-ref", "HEAD"])
    if sh(["git", "-C", str(repo), "status", "--porcelain", "--", "src"]):
        commit += " (+ uncommitted changes in src/)"
    cpu = cpu_model()
    mlflow = sh([peer("python"), "-c", "import mlflow; print(mlflow.__version__)"])
    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "python": platform.python_version(),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "os": platform.platform(),
        "mlcrew": f"{src} @ {branch} {commit}",
        "mlflow": mlflow,
        "wrk": sh(["wrk", "--version"]).splitlines()[0] if shutil.which("wrk") else "missing",
    }


def wait_until(check: Any, timeout: float, what: str, proc: subprocess.Popen[bytes]) -> float:
    """Poll `check()` every 10 ms until it is true; seconds it took."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode} before it was ready")
        if check():
            return time.perf_counter() - start
        time.sleep(0.01)
    raise BenchError(f"{what} was not ready after {timeout:.0f} s")
