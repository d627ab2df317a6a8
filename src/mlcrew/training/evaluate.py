"""The evaluate stage: test metrics, a dummy baseline, and the deal-breaker gates -> a verdict."""

from __future__ import annotations

import json
import time
from typing import Any

from mlcrew.pipeline.configs import EvaluateConfig
from mlcrew.pipeline.stage import StageContext, StageResult
from mlcrew.spec import LOWER_IS_BETTER, DealBreaker
from mlcrew.training import analysis
from mlcrew.training.metrics import (
    better,
    classification_metrics,
    default_metric,
    regression_metrics,
)
from mlcrew.training.model import TabularModel

LATENCY_SAMPLES = 200


def model_metrics(model: TabularModel, table: Any, target: str) -> dict[str, float]:
    import pyarrow as pa
    import pyarrow.compute as pc

    y = table.column(target)
    if model.task == "regression":
        y_true = pc.cast(y, pa.float64()).to_numpy(zero_copy_only=False)
        return regression_metrics(y_true, model.predict_raw(table))
    labels = [str(v) for v in y.to_pylist()]
    raw = model.predict_raw(table)
    return classification_metrics(labels, model.predict_labels(table), raw, model.classes_)


def baseline_metrics(model: TabularModel, train: Any, test: Any, target: str) -> dict[str, float]:
    """A dummy that ignores the features: the mean (regression) or class prior (classification)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if model.task == "regression":
        y_train = pc.cast(train.column(target), pa.float64()).to_numpy(zero_copy_only=False)
        y_test = pc.cast(test.column(target), pa.float64()).to_numpy(zero_copy_only=False)
        return regression_metrics(y_test, np.full(len(y_test), float(np.mean(y_train))))
    train_labels = [str(v) for v in train.column(target).to_pylist()]
    prior = np.array([train_labels.count(c) / len(train_labels) for c in model.classes_])
    test_labels = [str(v) for v in test.column(target).to_pylist()]
    majority = model.classes_[int(prior.argmax())]
    proba = np.tile(prior, (len(test_labels), 1))
    return classification_metrics(
        test_labels,
        [majority] * len(test_labels),
        proba if len(prior) > 2 else proba[:, 1],
        model.classes_,
    )


def latency_p99_ms(model: TabularModel, test: Any) -> float:
    """p99 of single-row predictions from Python rows, as the service sees them."""
    import numpy as np

    rows = test.select(model.feature_names).slice(0, LATENCY_SAMPLES).to_pylist()
    timings = []
    for row in rows:
        start = time.perf_counter()
        model.predict_rows([row])
        timings.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(timings, 99))


def gate(breaker: DealBreaker, metrics: dict[str, float], latency: float | None) -> dict[str, Any]:
    if breaker.latency_p99_ms is not None:
        if latency is None:
            raise ValueError("a latency gate needs the measured latency")
        return {
            "gate": f"latency_p99_ms <= {breaker.latency_p99_ms:g}",
            "passed": latency <= breaker.latency_p99_ms,
        }
    if breaker.metric is None:
        raise ValueError("a metric gate needs a metric (the spec guarantees one)")
    value = metrics.get(breaker.metric)
    if value is None:
        return {
            "gate": f"{breaker.metric} (not defined for this task)",
            "passed": False,
            "value": None,
        }
    ok = True
    bounds = []
    if breaker.min is not None:
        ok &= value >= breaker.min
        bounds.append(f">= {breaker.min:g}")
    if breaker.max is not None:
        ok &= value <= breaker.max
        bounds.append(f"<= {breaker.max:g}")
    return {
        "gate": f"{breaker.metric} {' and '.join(bounds)}",
        "value": round(value, 6),
        "passed": bool(ok),
    }


def distinct(a: float, b: float) -> tuple[str, str]:
    """Both numbers with 4 significant digits, or with as many more as it takes for two unequal
    numbers not to print alike: a gate never reads `(1.667 < 1.667)`."""
    for digits in range(4, 18):
        a_text, b_text = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if a == b or a_text != b_text:
            return a_text, b_text
    return repr(a), repr(b)


def _value_text(value: float, breaker: DealBreaker | None) -> str:
    """A gate's value, precise enough to differ visibly from the bound it is compared with."""
    bounds = [] if breaker is None else [x for x in (breaker.min, breaker.max) if x is not None]
    for digits in range(4, 18):
        text = f"{value:.{digits}g}"
        if all(b == value or f"{b:.{digits}g}" != text for b in bounds):
            return text
    return repr(value)


def run(ctx: StageContext[EvaluateConfig]) -> StageResult:
    objective = ctx.config.objective
    target = ctx.config.target
    model = TabularModel.from_json(ctx.inputs.bytes("train.model"))
    train = ctx.inputs.table("split.train")
    test = ctx.inputs.table("split.test")
    metric = objective.metric if objective.metric != "auto" else default_metric(model.task)
    metrics = model_metrics(model, test, target)
    baseline = baseline_metrics(model, train, test, target)
    needs_latency = any(b.latency_p99_ms is not None for b in objective.deal_breakers)
    latency = latency_p99_ms(model, test) if needs_latency else None
    gates = [gate(b, metrics, latency) for b in objective.deal_breakers]
    breakers: list[DealBreaker | None] = list(objective.deal_breakers)
    slices = []
    for s in objective.slices:
        mask = analysis.slice_mask(s, test)
        rows = int(mask.sum())
        entry: dict[str, Any] = {
            "name": s.name,
            "rows": rows,
            "where": s.where.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        if rows:
            entry["metrics"] = {
                k: round(v, 6) for k, v in model_metrics(model, test.filter(mask), target).items()
            }
        for b in s.deal_breakers:
            if not rows:
                g = {"gate": f"{b.metric} (no test rows)", "passed": False, "value": None}
            elif b.metric not in entry["metrics"]:
                g = {
                    "gate": f"{b.metric} (undefined on this slice: its test rows hold one class)",
                    "passed": False,
                    "value": None,
                }
            else:
                g = gate(b, entry["metrics"], None)
            g["gate"] = f"slice {s.name!r}: {g['gate']}"
            gates.append(g)
            breakers.append(b)
        slices.append(entry)
    if objective.beat_baseline:
        if metric not in metrics:
            gates.append({"gate": f"beats the dummy baseline on {metric}", "passed": False})
        else:
            ours, theirs = metrics[metric], baseline[metric]
            direction = "<" if metric in LOWER_IS_BETTER else ">"
            ours_text, theirs_text = distinct(ours, theirs)
            gates.append(
                {
                    "gate": f"beats the dummy baseline on {metric} "
                    f"({ours_text} {direction if ours != theirs else '='} {theirs_text})",
                    "passed": better(metric, metrics[metric], baseline[metric]),
                }
            )
    reasons = [
        ("passed: " if g["passed"] else "FAILED: ")
        + g["gate"]
        + (f" (value {_value_text(g['value'], b)})" if isinstance(g.get("value"), float) else "")
        for g, b in zip(gates, [*breakers, *[None] * len(gates)], strict=False)
    ]
    verdict = {"passed": all(g["passed"] for g in gates), "reasons": reasons}
    raw = model.predict_raw(test)
    details = (
        analysis.regression_details(model, test, raw)
        if model.task == "regression"
        else analysis.classification_details(model, test, raw)
    )
    value = (
        analysis.value_report(objective.value, model, train, test, raw)
        if objective.value is not None
        else None
    )
    report = {
        "task": model.task,
        "metric": metric,
        "rows": test.num_rows,
        "metrics": {k: round(v, 6) for k, v in metrics.items()},
        "baseline": {k: round(v, 6) for k, v in baseline.items()},
        "gates": gates,
        "verdict": verdict,
        "slices": slices,
        "details": details,
        "value": value,
    }
    out = ctx.workdir / "evaluation.json"
    out.write_text(json.dumps(report, indent=2, sort_keys=True))
    record: dict[str, Any] = {"metric": metric, "metrics": report["metrics"], "verdict": verdict}
    if latency is not None:
        record["latency_p99_ms"] = round(latency, 3)
    if value is not None:
        record["value"] = {k: value[k] for k in ("currency", "total", "per_row", "baseline_total")}
        if "threshold" in value:
            record["value"]["threshold"] = value["threshold"]
    if slices:
        record["slices"] = {e["name"]: e.get("metrics", {}) for e in slices}
    return StageResult({"report": out}, record)
