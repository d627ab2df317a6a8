"""A real Ray head on loopback for tests and benches: token auth, temp dirs, stopped by pid.

Token sharing: `ray get-auth-token --generate` writes a fresh token to `$HOME/.ray/auth_token`
of the head's (temporary) HOME; `ray start` runs with that HOME and `RAY_AUTH_MODE=token`, so
the head and its workers read it there; the client (the test process) gets
`RAY_AUTH_MODE=token` and `RAY_AUTH_TOKEN_PATH` pointing at the same file.

Never `ray stop` (it kills every Ray process on the machine): `ray start` runs in a new session,
so everything it launches shares its process group; `stop()` signals those process ids (and
their descendants) and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RAY = Path(sys.executable).parent / "ray"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _processes() -> list[tuple[int, int, int]]:
    """(pid, ppid, pgid) of every process, from /proc."""
    rows = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":
            continue
        rows.append((int(entry), int(fields[1]), int(fields[2])))
    return rows


@dataclass
class RayHead:
    address: str
    root: Path
    pgid: int
    client_env: dict[str, str]  # what a client process needs to connect (token, temp dir)
    stopped: bool = field(default=False)

    def pids(self) -> list[int]:
        """The head's processes: its process group, plus anything they started elsewhere."""
        procs = _processes()
        ours = {pid for pid, _, pgid in procs if pgid == self.pgid}
        grew = True
        while grew:
            more = {pid for pid, ppid, _ in procs if ppid in ours} - ours
            ours |= more
            grew = bool(more)
        return sorted(ours)

    def stop(self, grace: float = 10.0) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.2)
            if not self.pids():
                break
        self.stopped = True


def start_head(cpus: int = 2) -> RayHead:
    """`ray start --head` on 127.0.0.1 with token auth, a temp HOME and a temp RAY_TMPDIR."""
    # Short path: Ray's Unix socket paths live under the temp dir and have a length limit.
    root = Path(tempfile.mkdtemp(prefix="mlcrew-ray-", dir="/tmp"))
    home, tmp = root / "home", root / "tmp"
    home.mkdir()
    tmp.mkdir()
    pythonpath = os.pathsep.join(
        p for p in (str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")) if p
    )
    env = {
        **os.environ,
        "HOME": str(home),
        "RAY_TMPDIR": str(tmp),
        "RAY_AUTH_MODE": "token",
        # One node on loopback: without this Ray swaps 127.0.0.1 for the machine's address.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "PYTHONPATH": pythonpath,  # workers import this checkout's mlcrew (and tests/)
    }
    for var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        env.pop(var, None)
    subprocess.run(
        [str(RAY), "get-auth-token", "--generate"], env=env, check=True, capture_output=True
    )
    token_path = home / ".ray" / "auth_token"
    port = free_port()
    argv = [
        str(RAY), "start", "--head",
        "--node-ip-address", "127.0.0.1",
        "--port", str(port),
        "--num-cpus", str(cpus),
        # A small object store: the tests share one training table, and a container's
        # /dev/shm may be far smaller than Ray's default of 30% of memory.
        "--object-store-memory", str(256 * 1024 * 1024),
        "--disable-usage-stats",
        "--include-dashboard", "false",
        "--dashboard-port", str(free_port()),
        "--temp-dir", str(tmp),
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = proc.communicate(timeout=120)
    head = RayHead(
        address=f"127.0.0.1:{port}",
        root=root,
        pgid=proc.pid,
        client_env={
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(token_path),
            "RAY_TMPDIR": str(tmp),
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        },
    )
    if proc.returncode != 0:
        head.stop()
        raise RuntimeError(f"ray start failed ({proc.returncode}):\n{out[-3000:]}")
    return head
