"""One window judged against one model version: drift per feature, prediction drift, the
multivariate check, the spec's data checks, estimated and (with labels) real performance.

A window is a table of model rows: a file prepared by `mlcrew monitor --data`, or the inputs
of logged predictions. The result is the report `mlcrew monitor` prints and stores."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from mlcrew.monitoring.judge import Thresholds, judge, judge_column
from mlcrew.monitoring.profile import TableProfile, profile_table
from mlcrew.monitoring.reference import KEY as REFERENCE_KEY
from mlcrew.monitoring.reference import (
    feature_kinds,
    prediction_column,
    reference_extras,
    reference_profile,
)
from mlcrew.store import Store, now
from mlcrew.store.models import MonitorReport

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcrew.registry.versions import VersionInfo
    from mlcrew.spec import Check, Drift, Spec
    from mlcrew.training.model import TabularModel

# Column rules that can be evaluated on a window's rows alone.
WINDOW_RULES = ("type", "not_null", "between", "in_", "regex")


def thresholds_of(drift: Drift) -> Thresholds:
    return Thresholds(
        drift.numeric, drift.categorical, drift.p_value, drift.small_rows, drift.min_rows
    )


def judge_features(
    reference: TableProfile, current: Any, thresholds: Thresholds, psi_alert: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The window's verdict and one entry per model feature, most drifted first. A feature
    the new data lacks counts as drifted; `alert` is a drifted feature whose PSI is past
    `psi_alert`."""
    present = [n for n in reference.columns if n in current.column_names]
    like = TableProfile(reference.rows, {n: reference.columns[n] for n in present})
    verdict = judge(like, profile_table(current.select(present), like=like), thresholds)
    features = []
    for column in verdict["columns"]:
        entry = {"feature": column["column"], **column}
        del entry["column"]
        psi = entry.get("psi")
        entry["alert"] = bool(entry["drifted"] and psi is not None and psi >= psi_alert)
        features.append(entry)
    features += [
        {"feature": n, "missing": True, "drifted": True, "alert": True, "psi": None}
        for n in reference.columns
        if n not in current.column_names
    ]
    features.sort(key=lambda f: (not f.get("missing"), -(f.get("psi") or 0.0)))
    return verdict, features


def window_checks(
    checks: list[Check], dataset: str, table: pa.Table, target: str | None = None
) -> dict[str, Any]:
    """The spec's column checks on the dataset's columns that the window has, run on the
    window (checks of the target on the rows whose label arrived): {"evaluated", "failed":
    [{"check", "column", "failing", "level"}]}."""
    import pyarrow.compute as pc

    if target is not None and target in table.column_names:
        labelled = table.filter(pc.is_valid(table.column(target)))
        features = window_checks([c for c in checks if c.column != target], dataset, table)
        labels = window_checks([c for c in checks if c.column == target], dataset, labelled)
        return {
            "evaluated": features["evaluated"] + labels["evaluated"],
            "failed": features["failed"] + labels["failed"],
        }
    from mlcrew.checks.data import evaluate_checks
    from mlcrew.data.tables import connect

    usable = [
        c
        for c in checks
        if c.column in table.column_names
        and c.table in (None, dataset)
        and c.sql is None
        and c.references is None
        and c.distribution is None
        and c.fresh_hours is None
        and c.unique is not True
    ]
    if not usable:
        return {"evaluated": 0, "failed": []}
    con = connect()
    con.register("__window", table)
    con.execute(f'CREATE TEMP VIEW "{dataset}" AS SELECT * FROM __window')
    results = evaluate_checks(con, dataset, usable)
    failed = [
        {
            "check": r["rule"],
            "column": r.get("column"),
            "failing": r.get("failing", 0),
            "level": r.get("level", "error"),
        }
        for r in results
        if not r.get("passed", True)
    ]
    return {"evaluated": len(usable), "failed": failed}


def assess(
    store: Store,
    spec: Spec,
    version: VersionInfo,
    model: TabularModel,
    current: pa.Table,
    data_info: dict[str, Any],
    *,
    checks: list[Check] | None = None,
    logged: pa.ChunkedArray | None = None,
) -> dict[str, Any]:
    """The report of one window. `current` holds model rows, and the target column where
    labels are known (null where not yet); `logged`: the predictions the service made for
    them (a regression model's are used as they are; a classifier is asked again for its
    confidence)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from mlcrew.monitoring.domain import domain_auc
    from mlcrew.training.evaluate import model_metrics

    drift = spec.monitoring.drift
    thresholds = thresholds_of(drift)
    # Profiled once per version and stored: the training data is not read again.
    reference = reference_profile(store, version, feature_kinds(model.schema_))
    extras = reference_extras(store, version, model)
    verdict, features = judge_features(reference, current, thresholds, drift.psi_alert)
    report: dict[str, Any] = {
        "model": {"name": spec.name, "version": version.version},
        "data": {**data_info, "rows": current.num_rows},
        "reference": {
            "digest": version.data_digests["split.train"],
            "rows": reference.rows,
            "profile": version.data_digests.get(REFERENCE_KEY),
        },
        "thresholds": {"psi_alert": drift.psi_alert, **asdict(thresholds)},
        "judged": verdict["judged"],
        **({"note": verdict["note"]} if "note" in verdict else {}),
        "features": features,
        "drifted": [f["feature"] for f in features if f["drifted"]],
        "alerts": [f["feature"] for f in features if f.get("alert")],
    }
    present = [n for n in model.feature_names if n in current.column_names]
    if len(present) == len(model.feature_names) and current.num_rows:
        if logged is not None and model.task == "regression":
            predicted = pa.table({"prediction": logged.cast(pa.float64())})
            confidence = np.empty(0)
        else:
            predicted, confidence = prediction_column(model, current, os.cpu_count() or 1)
        like = extras.predictions
        column = judge_column(
            "prediction",
            like.columns["prediction"],
            profile_table(predicted, like=like).columns["prediction"],
            thresholds,
        )
        report["prediction_drift"] = {k: v for k, v in column.items() if k != "column"}
        estimate = extras.estimated(predicted, confidence)
        if estimate is not None:
            report["estimated"] = {**finite(estimate), "rows": current.num_rows}
    # The classifier's 3 stratified folds need a few rows of each side.
    enough = current.num_rows >= max(drift.min_rows, 10) and extras.sample.num_rows >= 10
    if enough and present:
        categorical = [n for n, k in feature_kinds(model.schema_).items() if k == "categorical"]
        found = domain_auc(extras.sample, current.select(present), categorical, spec.seed)
        report["multivariate"] = {
            **found,
            "threshold": drift.domain_auc,
            "drifted": found["auc"] > drift.domain_auc,
        }
    else:
        report["multivariate"] = {"auc": None, "drifted": None, "note": "too few rows to judge"}
    if checks:
        dataset = spec.dataset.from_ if spec.dataset is not None else "dataset"
        report["checks"] = window_checks(checks, dataset, current, model.target_)
    if model.target_ in current.column_names:
        # Labels arrive late: only rows that already have one count towards performance.
        labelled = current.filter(pc.is_valid(current.column(model.target_)))
        if labelled.num_rows:
            current_metrics = model_metrics(model, labelled, model.target_)
            report["performance"] = {
                "current": finite(current_metrics),
                "at_training": version.metrics,
                "labelled_rows": labelled.num_rows,
                "unlabelled_rows": current.num_rows - labelled.num_rows,
            }
    return report


def finite(metrics: dict[str, Any]) -> dict[str, float | None]:
    """Metrics as JSON can hold them: NaN or infinite (r2 on one row) become null."""
    import math

    return {
        k: (round(float(v), 6) if v is not None and math.isfinite(float(v)) else None)
        for k, v in metrics.items()
    }


def save_report(store: Store, report: dict[str, Any]) -> dict[str, Any]:
    """Store the report (an artifact, a row, and a file under .mlcrew/reports) and return it
    with `report_id`, `report_digest` and `report_file` added."""
    text = json.dumps(report, indent=2, sort_keys=True)
    digest = store.artifacts.put_bytes(text.encode())
    summary = {
        "rows": report["data"]["rows"],
        "drifted": report["drifted"],
        "alerts": report["alerts"],
    }
    with store.session() as s:
        row = MonitorReport(
            name=report["model"]["name"],
            version=report["model"]["version"],
            data_digest=report["data"]["digest"],
            report_digest=digest,
            summary=summary,
            created_at=now(),
        )
        s.add(row)
        s.flush()
        report["report_id"] = row.id
    report["report_digest"] = digest
    if store.project is not None:
        out = store.project / ".mlcrew" / "reports" / f"monitor-{report['report_id']}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = out.with_suffix(".tmp")
        tmp_path.write_text(text)
        tmp_path.replace(out)
        report["report_file"] = str(out)
    return report
