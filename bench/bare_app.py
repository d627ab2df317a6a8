"""The serving floor: a bare FastAPI app that calls Booster.predict on one row, nothing else.

No validation beyond what the matrix needs, no log, no metrics: what any Python service with
this model pays for HTTP + JSON + one LightGBM call. Run by bench/serving.py as
`python bench/bare_app.py MODEL_JSON PORT [WORKERS]`: one uvicorn process, or WORKERS uvicorn
processes forked after the imports on one listening socket (as `mlcrew serve --workers N` does),
so a multi-worker mlcrew has a floor with the same number of processes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import sys
from typing import Any

import lightgbm
import numpy as np
import uvicorn
from fastapi import FastAPI, Request

with open(sys.argv[1]) as f:
    doc = json.load(f)
booster = lightgbm.Booster(model_str=doc["lightgbm"])
schema = doc["schema"]
levels = {
    f["name"]: {c: float(i) for i, c in enumerate(f["categories"])}
    for f in schema
    if f["type"] == "category"
}
app = FastAPI()


def value(field: dict[str, Any], v: Any) -> float:
    if v is None:
        return math.nan
    if field["type"] == "category":
        return levels[field["name"]].get(str(v), math.nan)
    return float(v)


@app.post("/predict")
async def predict(request: Request) -> dict[str, Any]:
    rows = (await request.json())["rows"]
    X = np.array([[value(f, row.get(f["name"])) for f in schema] for row in rows])
    return {"predictions": np.asarray(booster.predict(X, num_threads=1)).tolist()}


def serve_forked(port: int, workers: int) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            config = uvicorn.Config(app, log_level="warning")
            uvicorn.Server(config).run(sockets=[sock])
            os._exit(0)
        children.append(pid)

    def stop(_signum: int, _frame: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in children:
        try:
            os.wait()
        except ChildProcessError:
            break


if __name__ == "__main__":
    port, workers = int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1
    if workers == 1:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    else:
        serve_forked(port, workers)
