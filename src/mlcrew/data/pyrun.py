"""Running a Python transform: the project's own (trusted) code, in a child process with a time
and a memory limit, so a runaway function cannot take the pipeline, the server or the machine
down with it. Tables go in and out as Parquet files; the function sees Arrow tables.

The child is `python -m mlcrew.data.pyrun JOB.json`. Its address-space limit (RLIMIT_AS) makes
an allocation past the limit fail with MemoryError inside the function; its time limit is
enforced from here by ending the child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from mlcrew.errors import DataError

EXIT_MEMORY = 3
EXIT_ERROR = 4


def run_python(
    name: str,
    ref: str,
    project: Path,
    inputs: dict[str, Path],
    out: Path,
    *,
    timeout: float,
    memory_mb: int,
) -> None:
    """Call `ref` (module:function) on the input tables in a child; its table goes to `out`."""
    with tempfile.TemporaryDirectory(prefix="mlcrew-py-") as tmp:
        job = Path(tmp) / "job.json"
        error = Path(tmp) / "error.txt"
        job.write_text(
            json.dumps(
                {
                    "project": str(project),
                    "ref": ref,
                    "inputs": {k: str(v) for k, v in inputs.items()},
                    "out": str(out),
                    "memory_mb": memory_mb,
                    "error": str(error),
                }
            )
        )
        # One thread per math library: a thread pool reserves memory per thread (OpenBLAS
        # alone can use up a small limit at import), and one thread keeps sums repeatable.
        threads = {v: "1" for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        # A fixed hash seed: a function that iterates a set of strings writes the same bytes.
        env = {**os.environ, **threads, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "mlcrew.data.pyrun", str(job)],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise DataError(
                f"transform {name!r} ({ref}) ran past its time limit of {timeout:g} s and was "
                f"stopped; make it faster, or raise transforms.{name}.timeout_seconds"
            ) from None
        said = error.read_text().strip() if error.is_file() else ""
        if proc.returncode == EXIT_MEMORY:
            raise DataError(
                f"transform {name!r} ({ref}) ran out of its memory limit of {memory_mb} MB; "
                f"use less memory, or raise transforms.{name}.memory_mb"
            )
        if proc.returncode != 0:
            tail = said or (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise DataError(f"transform {name!r} ({ref}) failed: {tail}")


def _child(job_path: str) -> int:
    job: dict[str, Any] = json.loads(Path(job_path).read_text())
    error = Path(job["error"])
    try:
        import resource

        limit = int(job["memory_mb"]) << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not on every platform
        pass
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from mlcrew.data.tables import write_parquet

        sys.path.insert(0, job["project"])
        module, _, function = job["ref"].partition(":")
        import importlib

        fn = getattr(importlib.import_module(module), function)
        tables = {k: pq.read_table(v) for k, v in job["inputs"].items()}
        result = fn(**tables)
        if not isinstance(result, pa.Table):
            to_arrow = getattr(result, "to_arrow", None)
            if hasattr(result, "to_pandas") or result.__class__.__name__ == "DataFrame":
                result = pa.Table.from_pandas(result, preserve_index=False)
            elif callable(to_arrow):
                result = to_arrow()
            else:
                raise TypeError(
                    f"returned {type(result).__name__}, not a pyarrow.Table; return one table"
                )
        # One encoder thread: every thread's stack and arena count against RLIMIT_AS here.
        write_parquet(result, Path(job["out"]), threads=1)
        return 0
    except MemoryError:
        error.write_text("MemoryError")
        return EXIT_MEMORY
    except BaseException as exc:  # the function's own failure, said with its place in the code
        frames = [f for f in traceback.extract_tb(exc.__traceback__)]
        ours = [f for f in frames if f.filename.startswith(job["project"])]
        where = f" (at {Path(ours[-1].filename).name}:{ours[-1].lineno})" if ours else ""
        error.write_text(f"{exc.__class__.__name__}: {exc}{where}")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
