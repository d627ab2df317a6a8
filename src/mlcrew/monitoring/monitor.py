"""`mlcrew monitor --data FILE | --from-log`: one file (or the whole prediction log) judged
against the champion, prepared by the transforms of the spec that trained it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from mlcrew.data.tables import connect, fetch_arrow, format_of, load_file
from mlcrew.errors import DataError
from mlcrew.monitoring.assess import assess, save_report
from mlcrew.registry.versions import CHAMPION, VersionInfo, get_version
from mlcrew.spec import Spec
from mlcrew.store import Store
from mlcrew.training.model import TabularModel


def _source_columns(spec: Spec, source: str, project: Path | None) -> list[str]:
    """The columns of a source file of the spec, when it is at hand."""
    src = spec.sources[source]
    if project is None or src.path is None:
        return []
    file = project / src.path
    if not file.is_file():
        return []
    con = connect()
    load_file(con, "__src", file, src.resolved_format, str(file), src.read_options())
    return [r[0] for r in con.execute('DESCRIBE "__src"').fetchall()]


def recorded_spec(store: Store, version: VersionInfo) -> Spec:
    """The spec of the run that trained `version`: how its data was made, whatever the spec
    file says today."""
    from mlcrew.spec import parse_spec

    text = store.artifacts.read_bytes(version.spec_digest).decode()
    return parse_spec(text, f"the spec that trained v{version.version}")


def new_data_route(spec: Spec) -> tuple[str, str] | None:
    """(source, table): how a file of new data becomes model rows under `spec`, or None
    when the spec cannot say (several sources and no monitoring.new_data)."""
    if spec.monitoring.new_data is not None:
        return spec.monitoring.new_data.source, spec.monitoring.new_data.table
    if len(spec.sources) != 1 or spec.dataset is None:
        return None
    return next(iter(spec.sources)), spec.dataset.from_


def _prepare(
    spec: Spec, path: Path, features: list[str], as_given: bool, project: Path | None = None
) -> tuple[Any, str]:
    """New data as model rows. New data arrives in the raw format of a source of `spec` (the
    version's recorded spec), so it goes through that spec's transforms; a file already in
    the model's columns is used as is with `as_given`. A file that fits neither is an error
    naming what it lacks, never a silent fallback."""
    from mlcrew.data.transforms import compute

    con = connect()
    route = new_data_route(spec)
    # New data arrives like the source did: read it with the source's CSV options.
    options = spec.sources[route[0]].read_options() if route else {}
    load_file(con, "__new", path, format_of(path), str(path), options)
    columns = [r[0] for r in con.execute('DESCRIBE "__new"').fetchall()]
    missing = [f for f in features if f not in columns]
    new = fetch_arrow(con, 'SELECT * FROM "__new"')
    if as_given or route is None or route[0] == route[1]:
        if missing:
            why = (
                ""
                if as_given or route is not None
                else " (the spec has several sources; name one in monitoring.new_data)"
            )
            raise DataError(
                f"{path}: missing model features {missing}; give rows with these columns{why}"
            )
        return new, "as given"
    source, table_name = route
    try:
        table = compute({source: new}, _transforms_for(spec, table_name), table_name, project)
    except DataError as exc:
        expected = _source_columns(spec, source, project)
        lacking = [c for c in expected if c not in columns]
        detail = (
            f"it lacks {lacking} of source {source!r}"
            if lacking
            else f"the transforms of the version's spec do not run on it as source {source!r} "
            f"({exc})"
        )
        hint = (
            "; it already has the model's columns: pass --as-given"
            if not missing
            else f", and it lacks model features {missing}"
        )
        raise DataError(
            f"{path}: {detail}{hint}; give new data in the source's raw format, or in the "
            "model's columns with --as-given"
        ) from None
    return table, "through the transforms"


def _transforms_for(spec: Spec, table: str) -> dict[str, Any]:
    """The transforms `table` is made from (a new-data file stands in for one source, so the
    others' transforms are left out)."""
    from mlcrew.data.transforms import sql_tables

    wanted: dict[str, Any] = {}
    todo = [table]
    while todo:
        name = todo.pop()
        if name in wanted or name not in spec.transforms:
            continue
        t = spec.transforms[name]
        wanted[name] = t
        if t.sql is not None:
            todo += sorted(sql_tables(t.sql) or ())
        elif t.embed is not None:
            todo.append(t.embed.table)
        else:
            todo += list(t.inputs or ())
    return {n: spec.transforms[n] for n in spec.transforms if n in wanted}


def _logged_inputs(
    store: Store, name: str, schema: list[dict[str, Any]]
) -> tuple[Any, dict[str, Any]]:
    """The inputs of every logged prediction of the model (local folder or object store), as
    a table in the model's columns, and what to say about them in the report."""
    from mlcrew.monitoring.windows import model_rows
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
    table = model_rows(read_predictions(store, name, found), schema)
    # Segments are never changed once written: their names identify the data read.
    digest = hashlib.sha256("\n".join(found).encode()).hexdigest()
    info = {"file": where, "digest": digest, "segments": len(found), "prepared": "prediction log"}
    return table, info


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

    if (data is None) == (not from_log):
        raise DataError("give new data with --data FILE, or use the prediction log with --from-log")
    if data is not None and not data.is_file():
        raise DataError(f"{data}: no such file; pass new data with --data FILE (.csv or .parquet)")
    version = get_version(store, spec.name, alias)
    model = TabularModel.from_json(store.artifacts.read_bytes(version.model_digest))
    recorded = recorded_spec(store, version)
    if data is None:
        current, data_info = _logged_inputs(store, spec.name, model.schema_)
    else:
        current, how = _prepare(recorded, data, model.feature_names, as_given, store.project)
        data_info = {"file": str(data), "digest": file_digest(data), "prepared": how}
    if current.num_rows == 0:
        raise DataError(f"{data_info['file']}: no rows to monitor")
    report = assess(store, spec, version, model, current, data_info, checks=recorded.checks)
    return save_report(store, report)
