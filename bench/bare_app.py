"""The serving floor: a bare FastAPI app that calls Booster.predict on one row, nothing else.

No validation beyond what the matrix needs, no log, no metrics: what any Python service with
this model pays for HTTP + JSON + one LightGBM call. Run by bench/serving.py as
`python bench/bare_app.py MODEL_JSON PORT` (uvicorn, one worker, like the others).
"""

from __future__ import annotations

import json
import math
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
    return {"predictions": booster.predict(X, num_threads=1).tolist()}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
