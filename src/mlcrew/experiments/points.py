"""Metric points on their way to the store and back: per-metric buffers of machine numbers, the
chunks a flush writes (exp_metrics), and each metric's running summary (exp_metric_last).

A point appended to a buffer allocates no object the garbage collector tracks, so logging
never sets off a collection (a full one walks every object of a training process: tens of
ms). A flush turns each metric's buffer into one row of three little-endian arrays.
"""

from __future__ import annotations

import math
import sys
from array import array
from dataclasses import dataclass
from typing import Any

_SWAP = sys.byteorder == "big"  # chunks are little-endian on every machine


class Series:
    """One metric's points waiting for the writer, in the order they were logged."""

    __slots__ = ("ats", "steps", "values")

    def __init__(self) -> None:
        self.steps = array("q")
        self.values = array("d")  # NaN stays NaN
        self.ats = array("q")  # ms since the epoch

    def __len__(self) -> int:
        return len(self.steps)

    def extend(self, later: Series) -> None:
        self.steps += later.steps
        self.values += later.values
        self.ats += later.ats


def merge(earlier: dict[str, Series], later: dict[str, Series]) -> dict[str, Series]:
    """`earlier`'s points then `later`'s (a failed flush's points go back in front)."""
    for key, series in later.items():
        if key in earlier:
            earlier[key].extend(series)
        else:
            earlier[key] = series
    return earlier


def _bytes(values: array[Any]) -> bytes:
    if _SWAP:
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _array(code: str, data: bytes) -> array[Any]:
    values = array(code)
    values.frombytes(data)
    if _SWAP:
        values.byteswap()
    return values


def encode(series: Series) -> dict[str, Any]:
    """The columns of one exp_metrics row."""
    return {
        "points": len(series),
        "steps": _bytes(series.steps),
        "values": _bytes(series.values),
        "ats": _bytes(series.ats),
    }


def decode(row: Any) -> tuple[array[int], array[float], array[int]]:
    """Steps, values and times of an exp_metrics row."""
    return _array("q", row.steps), _array("d", row.values), _array("q", row.ats)


@dataclass
class Summary:
    """A metric's running summary: what exp_metric_last holds."""

    points: int = 0
    step: int = -1
    value: float = math.nan
    at: int = 0
    min: float | None = None
    max: float | None = None

    def add(self, series: Series) -> Summary:
        """This summary with `series` (logged after everything it has seen) added."""
        steps, values = series.steps, series.values
        top = max(steps)
        out = Summary(self.points + len(steps), self.step, self.value, self.at, self.min, self.max)
        if top >= self.step:  # of equal steps, the point logged last is the last one
            i = len(steps) - 1
            while steps[i] != top:
                i -= 1
            out.step, out.value, out.at = top, values[i], series.ats[i]
        finite = [v for v in values if not math.isnan(v)]
        if finite:
            low, high = min(finite), max(finite)
            out.min = low if out.min is None else min(out.min, low)
            out.max = high if out.max is None else max(out.max, high)
        return out

    def row(self, run: int, key: str) -> dict[str, Any]:
        return {
            "run": run,
            "key": key,
            "points": self.points,
            "step": self.step,
            "value": None if math.isnan(self.value) else self.value,
            "min": self.min,
            "max": self.max,
            "at": self.at,
        }
