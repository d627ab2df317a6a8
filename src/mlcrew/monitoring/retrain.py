"""Gated retraining (`monitoring.retrain`): when the loop retrains, on what, and how the
candidate reaches the champion alias.

The newest labelled window is held out as the fresh test; the labelled rows of the windows
before it (up to `windows` in all), after the champion's own training rows unless
`with_training_data: false`, become the training data. The ordinary pipeline runs on them
with the champion's recorded spec (its checks, training budget, seed and gates), the
candidate and the champion are scored on the fresh window, and the candidate is promoted
through the registry's gates: at once (`approval: auto`), or as the challenger, waiting for a
person's `mlcrew promote` (`approval: manual`). Every step is in the audit log."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mlcrew.errors import MlcrewError, PromotionRefused
from mlcrew.people.audit import record
from mlcrew.registry.versions import CHAMPION, VersionInfo, get_version
from mlcrew.store.models import MonitorWindow

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcrew.pipeline.runner import Progress
    from mlcrew.spec import Spec
    from mlcrew.store import Store
    from mlcrew.training.model import TabularModel

ORDER = "__order"
SOURCE = "retrain_data"
CHALLENGER = "challenger"


@dataclass
class RetrainResult:
    status: str  # waiting | refused | promoted | awaiting_approval | failed
    why: str
    version: int | None = None
    champion: int | None = None
    fresh: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    windows: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "why": self.why,
            "version": self.version,
            "champion": self.champion,
            "fresh_test": self.fresh,
            "run_id": self.run_id,
            "windows": self.windows,
        }


def labelled_windows(store: Store, name: str, limit: int) -> list[MonitorWindow]:
    """The newest `limit` windows that have labelled rows, oldest first."""
    with store.session() as s:
        rows = s.scalars(
            select(MonitorWindow).where(MonitorWindow.name == name).order_by(MonitorWindow.id)
        ).all()
        found = [r for r in rows if (r.performance or {}).get("labelled_rows", 0) > 0]
        for r in found:
            s.expunge(r)
    return found[-limit:]


def window_rows(
    store: Store,
    name: str,
    window: MonitorWindow,
    model: TabularModel,
    labels: pa.Table | None = None,
) -> pa.Table:
    """A window's logged model rows with their labels (null where none arrived yet);
    `labels`: every label of the model, when the caller has read them already."""
    from mlcrew.monitoring.labels import all_labels, with_labels
    from mlcrew.monitoring.windows import log_rows, model_rows

    rows = log_rows(store, name, _aware(window.start_at), _aware(window.end_at), closed=True)
    inputs = model_rows(rows, model.schema_) if rows.num_rows else rows
    known = all_labels(store, name) if labels is None else labels
    return with_labels(rows, inputs, known, model.target_)


def labelled(table: pa.Table, model: TabularModel) -> pa.Table:
    import pyarrow.compute as pc

    if model.target_ not in table.column_names:
        return table.slice(0, 0)
    keep = table.filter(pc.is_valid(table.column(model.target_)))
    return keep.select([*model.feature_names, model.target_])


def retrain_spec(recorded: Spec, model: TabularModel, data: Path, project: Path) -> str:
    """The champion's recorded spec, learning from `data` (model columns, target, __order):
    its sources and transforms stay (so new-data files of the new version are prepared as
    before), checks on columns the data lacks are left out (they ran on the original data),
    and promotion is left to the loop."""
    import yaml

    from mlcrew.monitoring.monitor import new_data_route

    # Only what the spec's author wrote (defaults stay defaults), so the text parses back.
    doc = recorded.model_dump(mode="json", by_alias=True, exclude_unset=True)
    route = new_data_route(recorded)
    columns = {*model.feature_names, model.target_}
    doc["sources"] = {**doc["sources"], SOURCE: {"path": data.relative_to(project).as_posix()}}
    split = doc["dataset"].get("split", {})
    doc["dataset"] = {
        **doc["dataset"],
        "from": SOURCE,
        "split": {"by": "time", "order": [ORDER], "test": split.get("test", 0.2)},
    }
    doc["features"] = {
        "include": model.feature_names,
        "exclude": [],
        "categorical": [c for c in recorded.features.categorical if c in columns],
    }
    doc["checks"] = [
        c
        for c in doc.get("checks", [])
        if c.get("column") in columns and c.get("table") in (None, recorded.modeled_dataset.from_)
        and not c.get("sql") and not c.get("references") and not c.get("distribution")
    ]  # fmt: skip
    doc["registry"] = {**doc.get("registry", {}), "promotion": "manual"}
    if route is not None:
        doc.setdefault("monitoring", {})["new_data"] = {"source": route[0], "table": route[1]}
    head = "# A retrain by mlcrew's monitoring loop: the champion's recorded spec, learning from\n"
    head += f"# {data.relative_to(project).as_posix()} (its rows, then labelled windows).\n"
    return head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def retrain(
    store: Store,
    spec: Spec,
    project: Path,
    *,
    reason: str,
    actor: str,
    progress: Progress | None = None,
) -> RetrainResult:
    """One retrain of the champion of `spec.name`, gated and promoted as the spec says."""
    import pyarrow as pa

    from mlcrew.data.tables import read_parquet, write_parquet
    from mlcrew.monitoring.labels import all_labels
    from mlcrew.monitoring.monitor import recorded_spec
    from mlcrew.pipeline.runner import Runner
    from mlcrew.registry.promotion import move_alias, promote, promotion_gates
    from mlcrew.spec import parse_spec
    from mlcrew.training.evaluate import model_metrics
    from mlcrew.training.metrics import better, resolve_metric

    cfg = spec.monitoring.retrain
    assert cfg is not None
    name = spec.name
    champion = get_version(store, name, CHAMPION)
    model = _model(store, champion)
    windows = labelled_windows(store, name, cfg.windows)
    if len(windows) < 2:
        return RetrainResult(
            "waiting",
            f"a retrain needs 2 labelled windows (one to learn from, the newest as the fresh "
            f"test); {len(windows)} so far",
            champion=champion.version,
        )
    held = _held_back(store, name, cfg.approval, champion, [w.id for w in windows])
    if held:
        return RetrainResult("waiting", held, champion=champion.version)
    record(
        store,
        store.project_name,
        actor,
        "retrain",
        name,
        {"reason": reason, "windows": [w.id for w in windows]},
    )
    fresh_window, learn = windows[-1], windows[:-1]
    known = all_labels(store, name)
    fresh = labelled(window_rows(store, name, fresh_window, model, known), model)
    parts = []
    if cfg.with_training_data:
        for key in ("split.train", "split.test"):
            table = read_parquet(store.artifacts.local_path(champion.data_digests[key]))
            parts.append(table.select([*model.feature_names, model.target_]))
    for w in learn:
        parts.append(labelled(window_rows(store, name, w, model, known), model))
    data = pa.concat_tables([_conform(p, parts[0].schema) for p in parts])
    data = data.append_column(ORDER, pa.array(range(data.num_rows), pa.int64()))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = project / ".mlcrew" / "retrain" / stamp
    folder.mkdir(parents=True, exist_ok=True)
    write_parquet(data, folder / "data.parquet")
    recorded = recorded_spec(store, champion)
    text = retrain_spec(recorded, model, folder / "data.parquet", project)
    derived = parse_spec(text, folder / "mlcrew.yaml")
    (folder / "mlcrew.yaml").write_text(text)
    result = RetrainResult("failed", "", champion=champion.version, windows=[w.id for w in windows])
    try:
        run = Runner(
            project, store, derived, text, progress=progress, actor=actor, project_spec=False
        ).run()
    except MlcrewError as exc:
        result.why = f"the retrain run failed: {exc}"
        record(store, store.project_name, actor, "retrain_failed", name, {"why": result.why})
        return result
    result.run_id = run.run_id
    register = next((o for o in run.stages if o.name == "register"), None)
    version = int(register.record["version"]) if register and "version" in register.record else None
    if version is None:
        result.why = "the retrain run registered no version"
        return result
    result.version = version
    candidate = get_version(store, name, version)
    metric = resolve_metric(spec.objective.metric, candidate.metrics)
    new_model = _model(store, candidate)
    mine = model_metrics(new_model, fresh, model.target_).get(metric)
    theirs = model_metrics(model, fresh, model.target_).get(metric)
    result.fresh = {
        "window": fresh_window.id,
        "rows": fresh.num_rows,
        "metric": metric,
        "candidate": mine,
        "champion": theirs,
    }
    reasons = promotion_gates(store, candidate, champion, CHAMPION, spec.registry.margin)
    if mine is None or theirs is None:
        reasons.append(f"{metric} cannot be computed on the fresh window")
    elif not better(metric, mine, theirs) and mine != theirs:
        worse = abs(mine - theirs)
        if worse > spec.registry.margin:
            reasons.append(
                f"v{version} is worse than champion v{champion.version} on the fresh window "
                f"{fresh_window.id} ({metric} {mine:.4g} vs {theirs:.4g})"
            )
    if reasons:
        result.status, result.why = "refused", "; ".join(reasons)
        record(store, store.project_name, actor, "retrain_refused", name, result.to_json())
        return result
    why = (
        f"retrain ({reason}): {metric} {mine:.4g} vs champion v{champion.version}'s "
        f"{theirs:.4g} on fresh window {fresh_window.id}"
    )
    if cfg.approval == "auto":
        try:
            promote(store, name, version, reason=why, actor=actor, margin=spec.registry.margin)
        except PromotionRefused as exc:
            result.status, result.why = "refused", "; ".join(exc.reasons)
            record(store, store.project_name, actor, "retrain_refused", name, result.to_json())
            return result
        result.status, result.why = "promoted", why
    else:
        move_alias(store, name, CHALLENGER, version, action="promote", reason=why,
                   forced=False, actor=actor)  # fmt: skip
        result.status = "awaiting_approval"
        result.why = (
            f"{why}; v{version} is the challenger: approve with 'mlcrew promote {name} "
            f"{version} --reason TEXT'"
        )
    record(store, store.project_name, actor, "retrain_" + result.status, name, result.to_json())
    return result


def _held_back(
    store: Store, name: str, approval: str, champion: VersionInfo, windows: list[int]
) -> str | None:
    """Why not to retrain now, though asked: a candidate still waits for a person, or no
    labelled window arrived since the last retrain (the same data would train the same
    model again)."""
    from mlcrew.people.audit import events
    from mlcrew.registry.versions import alias_holder

    if approval == "manual":
        waiting = alias_holder(store, name, CHALLENGER)
        if waiting is not None and waiting > champion.version:
            return (
                f"v{waiting} still waits for approval as challenger: promote it "
                f"('mlcrew promote {name} {waiting} --reason TEXT') or move the alias first"
            )
    for event in events(store, store.project_name, 1000):
        if event.action == "retrain" and event.target == name:
            if event.details.get("windows") == windows:
                return (
                    f"no labelled window arrived since the last retrain (windows {windows}); "
                    "waiting for new labels"
                )
            break
    return None


def _model(store: Store, version: VersionInfo) -> TabularModel:
    from mlcrew.training.model import TabularModel

    return TabularModel.from_json(store.artifacts.read_bytes(version.model_digest))


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast a window's columns to the training data's types (logged inputs are floats)."""
    return table.select(schema.names).cast(schema, safe=False)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
