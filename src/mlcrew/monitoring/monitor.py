"""`mlcrew monitor`: compare new data with the champion's training reference and write a report."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlcrew.data.tables import connect, fetch_arrow, format_of, load_file
from mlcrew.errors import DataError
from mlcrew.monitoring.judge import Thresholds, judge
from mlcrew.monitoring.profile import TableProfile, profile_table
from mlcrew.monitoring.reference import KEY as REFERENCE_KEY
from mlcrew.monitoring.reference import feature_kinds, reference_profile
from mlcrew.registry.versions import CHAMPION, get_version
from mlcrew.spec import Spec
from mlcrew.store import Store, now
from mlcrew.store.models import MonitorReport
from mlcrew.training.model import TabularModel


def _source_columns(spec: Spec, project: Path | None) -> list[str]:
    """The columns of the spec's (single) source file, when it is at hand."""
    if project is None:
        return []
    src = next(iter(spec.sources.values()))
    if src.path is None:
        return []
    file = project / src.path
    if not file.is_file():
        return []
    con = connect()
    load_file(
        con,
        "__src",
        file,
        src.resolved_format,
        str(file),
        src.read_options(),
    )
    return [r[0] for r in con.execute('DESCRIBE "__src"').fetchall()]


def _prepare(
    spec: Spec, path: Path, features: list[str], as_given: bool, project: Path | None = None
) -> tuple[Any, str]:
    """New data as model rows. New data usually arrives in the raw format of the spec's single
    source, so it goes through the spec's transforms; a file that is already in the model's
    columns is used as is when `as_given` (or when the transforms do not apply to it)."""
    from mlcrew.data.transforms import compute

    con = connect()
    # New data arrives like the source did: read it with the source's CSV options.
    src = next(iter(spec.sources.values())) if len(spec.sources) == 1 else None
    options = src.read_options() if src else {}
    load_file(con, "__new", path, format_of(path), str(path), options)
    columns = [r[0] for r in con.execute('DESCRIBE "__new"').fetchall()]
    has_features = all(f in columns for f in features)
    if as_given or len(spec.sources) != 1 or not spec.transforms:
        if not has_features:
            missing = [f for f in features if f not in columns]
            raise DataError(
                f"{path}: missing model features {missing}; give rows with these columns"
            )
        return fetch_arrow(con, 'SELECT * FROM "__new"'), "as given"
    source = next(iter(spec.sources))
    new = fetch_arrow(con, 'SELECT * FROM "__new"')
    try:
        table = compute({source: new}, dict(spec.transforms), spec.modeled_dataset.from_, project)
    except DataError:
        if has_features:
            return new, "as given"
        expected = _source_columns(spec, project)
        lacking = [c for c in expected if c not in columns]
        detail = (
            f"it lacks {lacking} of source {source!r}"
            if lacking
            else (f"the spec's transforms do not run on it as source {source!r}")
        )
        missing = [f for f in features if f not in columns]
        raise DataError(
            f"{path}: {detail}, and it lacks model features {missing}; give new data in the "
            "source's raw format, or in the model's columns with --as-given"
        ) from None
    return table, "through the transforms"


def _logged_inputs(store: Store, name: str) -> tuple[Any, dict[str, Any]]:
    """The inputs of every logged prediction of the model (local folder or object store), as
    a table in the model's columns, and what to say about them in the report."""
    import pyarrow as pa

    from mlcrew.serving.predlog import read_predictions, segments
    from mlcrew.store.logs import log_folder
    from mlcrew.store.remote import redact_url

    where = (
        f"{redact_url(store.artifacts.root).rstrip('/')}/{log_folder(store.project_name, name)}/"
    )
    found = segments(store, name)
    if not found:
        raise DataError(
            f"no predictions of {name!r} are logged in {where}; serve the model ('mlcrew serve', "
            "with serving.prediction_log on) or pass new data with --data FILE"
        )
    inputs = read_predictions(store, name, found).column("inputs").combine_chunks()
    table = pa.Table.from_arrays(inputs.flatten(), names=[f.name for f in inputs.type])
    # Segments are never changed once written: their names identify the data read.
    digest = hashlib.sha256("\n".join(found).encode()).hexdigest()
    info = {"file": where, "digest": digest, "segments": len(found), "prepared": "prediction log"}
    return table, info


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


def monitor(
    store: Store,
    spec: Spec,
    data: Path | None,
    alias: str = CHAMPION,
    as_given: bool = False,
    *,
    from_log: bool = False,
) -> dict[str, Any]:
    """Drift per feature (PSI and a two-sample test) and, when labels are present, performance.
    The new data is a file, or (`from_log`) the inputs of the predictions the service logged."""
    from mlcrew.store import file_digest
    from mlcrew.training.evaluate import model_metrics

    if (data is None) == (not from_log):
        raise DataError("give new data with --data FILE, or use the prediction log with --from-log")
    if data is not None and not data.is_file():
        raise DataError(f"{data}: no such file; pass new data with --data FILE (.csv or .parquet)")
    version = get_version(store, spec.name, alias)
    model = TabularModel.from_json(store.artifacts.read_bytes(version.model_digest))
    reference_digest = version.data_digests["split.train"]
    # Profiled once per version and stored: the training data is not read again.
    reference = reference_profile(store, version, feature_kinds(model.schema_))
    if data is None:
        current, data_info = _logged_inputs(store, spec.name)
    else:
        current, how = _prepare(spec, data, model.feature_names, as_given, store.project)
        data_info = {"file": str(data), "digest": file_digest(data), "prepared": how}
    if current.num_rows == 0:
        raise DataError(f"{data_info['file']}: no rows to monitor")
    drift = spec.monitoring.drift
    thresholds = Thresholds(
        drift.numeric, drift.categorical, drift.p_value, drift.small_rows, drift.min_rows
    )
    verdict, features = judge_features(reference, current, thresholds, drift.psi_alert)
    report: dict[str, Any] = {
        "model": {"name": spec.name, "version": version.version},
        "data": {**data_info, "rows": current.num_rows},
        "reference": {
            "digest": reference_digest,
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
    if model.target_ in current.column_names:
        import pyarrow.compute as pc

        # Labels arrive late: only rows that already have one count towards performance.
        labelled = current.filter(pc.is_valid(current.column(model.target_)))
        if labelled.num_rows:
            current_metrics = model_metrics(model, labelled, model.target_)
            report["performance"] = {
                "current": {k: round(v, 6) for k, v in current_metrics.items()},
                "at_training": version.metrics,
                "labelled_rows": labelled.num_rows,
                "unlabelled_rows": current.num_rows - labelled.num_rows,
            }
    text = json.dumps(report, indent=2, sort_keys=True)
    digest = store.artifacts.put_bytes(text.encode())
    summary = {"rows": current.num_rows, "drifted": report["drifted"], "alerts": report["alerts"]}
    with store.session() as s:
        row = MonitorReport(
            name=spec.name,
            version=version.version,
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
