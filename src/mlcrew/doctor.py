"""`mlcrew doctor`: the project's production readiness and technical debt, from its own records.

Four sections follow the ML Test Score rubric (Breck et al., "The ML Test Score: A Rubric for
ML Production Readiness and Technical Debt Reduction", 2017): data, model, infrastructure and
monitoring. Each item scores 1 when the project does it automatically, 0.5 when only in part
or by hand, 0 when not at all; a section's score is the sum of its items and the project's
score is the lowest section's, as in the paper. A fifth section lists the debts of Sculley
et al. ("Hidden Technical Debt in Machine Learning Systems", 2015) that the project's records
show: each finding says what was found and how to pay it off.

Items that cannot be judged from the project (privacy controls, fairness reviews) are left
out rather than guessed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from mlcrew.errors import NotFoundError
from mlcrew.registry.versions import CHAMPION, VersionInfo, get_version
from mlcrew.spec import LOWER_IS_BETTER

if TYPE_CHECKING:
    from mlcrew.spec import Spec
    from mlcrew.store import Store
    from mlcrew.training.model import TabularModel

# A feature with less than this share of the model's gain does nothing the model would miss.
IDLE_SHARE = 0.005
# A gate the champion clears by more than this fraction of its bound does not bind.
LOOSE_GATE = 0.5


@dataclass
class Finding:
    id: str
    title: str
    points: float  # 1 done automatically, 0.5 in part or by hand, 0 not done
    found: str
    fix: str

    @property
    def status(self) -> str:
        return {1.0: "ok", 0.5: "partial"}.get(self.points, "missing")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


@dataclass
class Context:
    """What the items read, gathered once."""

    store: Store
    spec: Spec
    champion: VersionInfo | None
    model: TabularModel | None
    train_record: dict[str, Any]

    @property
    def features(self) -> list[str]:
        return self.model.feature_names if self.model is not None else []


def _context(store: Store, spec: Spec) -> Context:
    from mlcrew.training.model import TabularModel

    try:
        champion = get_version(store, spec.name, CHAMPION)
    except NotFoundError:
        return Context(store, spec, None, None, {})
    model = TabularModel.from_json(store.artifacts.read_bytes(champion.model_digest))
    from mlcrew.training.report import stage_execution

    try:
        record = dict(stage_execution(store, champion.run_id, "train").record or {})
    except NotFoundError:
        record = {}
    return Context(store, spec, champion, model, record)


# ----------------------------------------------------------------------------- data


def checked_columns(ctx: Context) -> Finding:
    checks = ctx.spec.checks
    dataset = ctx.spec.dataset.from_ if ctx.spec.dataset else None
    checked = {c.column for c in checks if c.column and c.table in (None, dataset)}
    used = [*ctx.features, *([ctx.spec.target] if ctx.spec.target else [])]
    if not used:
        return Finding(
            "data-1",
            "Feature expectations are captured in checks",
            0,
            "no trained model: no used columns to judge",
            "run the pipeline ('mlcrew run')",
        )
    bare = [c for c in used if c not in checked]
    points = 1.0 if not bare else (0.5 if len(bare) < len(used) else 0.0)
    return Finding(
        "data-1",
        "Feature expectations are captured in checks",
        points,
        "every used column has a check"
        if not bare
        else f"data checks missing on used columns: {', '.join(bare)}",
        "add checks: [{column: NAME, not_null: true, between: [LOW, HIGH]}] for each "
        "(they run on every run and on every monitoring window)",
    )


def idle_features(ctx: Context) -> Finding:
    importance: dict[str, float] = ctx.train_record.get("importance", {})
    if not importance:
        return Finding(
            "data-2",
            "All features are beneficial",
            0,
            "no recorded importance (no trained model)",
            "run the pipeline",
        )
    unused = [f for f, share in importance.items() if share == 0]
    # Below the bar, or negative (an ensemble's permutation loss: the model is better off).
    idle = [f for f, share in importance.items() if share != 0 and share < IDLE_SHARE]
    found = []
    if unused:
        found.append(f"features nobody uses (no split on them): {', '.join(unused)}")
    if idle:
        found.append(
            f"features whose removal costs nothing measurable (< {IDLE_SHARE:.1%} of the gain): "
            + ", ".join(idle)
        )
    return Finding(
        "data-2",
        "All features are beneficial",
        1.0 if not found else 0.0,
        "; ".join(found) or "every feature carries part of the model's gain",
        "measure each removal with 'mlcrew features cleanup', then list the idle ones in "
        "features.exclude",
    )


def feature_tests(ctx: Context) -> Finding:
    python = [n for n, t in ctx.spec.transforms.items() if t.python is not None]
    sql = [n for n, t in ctx.spec.transforms.items() if t.sql is not None]
    if not ctx.spec.transforms:
        return Finding(
            "data-3",
            "Feature code is tested",
            1.0,
            "no transforms: the features are the source's columns",
            "",
        )
    checked_tables = {c.table for c in ctx.spec.checks if c.table}
    untested = [n for n in [*python, *sql] if n not in checked_tables]
    dataset = ctx.spec.dataset.from_ if ctx.spec.dataset else None
    untested = [n for n in untested if n != dataset]
    return Finding(
        "data-3",
        "Feature code is tested",
        1.0 if not untested else 0.5,
        "every transform's output is checked"
        if not untested
        else f"transforms whose output no check reads: {', '.join(untested)}",
        "add checks with table: NAME for each transform's output",
    )


# ----------------------------------------------------------------------------- model


def simpler_model(ctx: Context) -> Finding:
    reasons = (ctx.champion.verdict.get("reasons") or []) if ctx.champion else []
    beats = any(r.startswith("passed") and "dummy baseline" in r for r in reasons)
    return Finding(
        "model-1",
        "A simpler model is not better",
        1.0 if beats else 0.0,
        "the champion's gate compares it with a dummy baseline on the test split"
        if beats
        else "no comparison with a simpler model was recorded",
        "run the pipeline: the evaluate stage gates every model against a dummy baseline",
    )


def tuned(ctx: Context) -> Finding:
    trials = ctx.spec.training.budget.trials
    return Finding(
        "model-2",
        "Hyperparameters are tuned",
        1.0 if trials > 1 else 0.5,
        f"{trials} trial{'s' if trials != 1 else ''} per run",
        "raise training.budget.trials (a search over LightGBM's settings, seeded)",
    )


def slices(ctx: Context) -> Finding:
    found = len(ctx.spec.objective.slices)
    return Finding(
        "model-3",
        "Quality is checked on important slices",
        1.0 if found else 0.0,
        f"{found} slice{'s' if found != 1 else ''} evaluated" if found else "no slices declared",
        "name the slices that matter in objective.slices: [{name, where: ...}]",
    )


def offline_online(ctx: Context) -> Finding:
    from mlcrew.store.models import MonitorWindow

    with ctx.store.session() as s:
        labelled = [
            w.performance
            for w in s.scalars(select(MonitorWindow).where(MonitorWindow.name == ctx.spec.name))
            if (w.performance or {}).get("labelled_rows")
        ]
    return Finding(
        "model-4",
        "Offline and online metrics are compared",
        1.0 if labelled else 0.0,
        f"{len(labelled)} monitoring window(s) with real, labelled performance"
        if labelled
        else "no window of served predictions has labels",
        "send late ground truth with 'mlcrew monitor labels --data FILE'",
    )


def loose_gates(ctx: Context) -> Finding:
    """Thresholds fixed by hand and never revisited: the same bound in every recorded spec,
    cleared by so much that it could not stop a much worse model."""
    from mlcrew.pipeline.runs import recorded_specs

    if ctx.champion is None or not ctx.spec.objective.deal_breakers:
        return Finding(
            "model-5",
            "Gates bind",
            0,
            "no gates (deal_breakers)",
            "add objective.deal_breakers with the worst value the product takes",
        )
    history = recorded_specs(ctx.store)
    loose = []
    for gate in ctx.spec.objective.deal_breakers:
        if gate.metric is None:
            continue
        bound = gate.max if gate.max is not None else gate.min
        value = ctx.champion.metrics.get(gate.metric)
        if bound is None or value is None or bound == 0:
            continue
        same = all(
            any(
                d.metric == gate.metric and d.max == gate.max and d.min == gate.min
                for d in spec.objective.deal_breakers
            )
            for spec in history
        )
        lower = gate.metric in LOWER_IS_BETTER
        slack = (bound - value) / abs(bound) if lower else (value - bound) / abs(bound)
        if same and slack > LOOSE_GATE:
            loose.append(
                f"{gate.metric} {'<=' if lower else '>='} {bound:g} (the champion has "
                f"{value:.4g}; unchanged in all {len(history)} recorded specs)"
            )
    return Finding(
        "model-5",
        "Gates bind",
        1.0 if not loose else 0.5,
        "every gate is near what the champion achieves"
        if not loose
        else "thresholds fixed by hand and never revisited: " + "; ".join(loose),
        "tighten each bound to the worst value the product accepts, near today's model",
    )


# ----------------------------------------------------------------------------- infrastructure


def reproduced(ctx: Context) -> Finding:
    from mlcrew.people.audit import events

    if ctx.champion is None:
        return Finding("infra-1", "Training is reproducible", 0, "no champion", "run the pipeline")
    runs = {
        e.target: e.details.get("identical")
        for e in reversed(events(ctx.store, ctx.store.project_name, 10_000))
        if e.action == "reproduce"
    }
    outcome = runs.get(ctx.champion.run_id)
    if outcome is True:
        return Finding(
            "infra-1",
            "Training is reproducible",
            1.0,
            f"the champion's run {ctx.champion.run_id} reproduced bit for bit",
            "",
        )
    found = (
        f"the champion's run {ctx.champion.run_id} did not reproduce"
        if outcome is False
        else f"models never reproduced: the champion's run {ctx.champion.run_id} was never re-run"
    )
    return Finding(
        "infra-1",
        "Training is reproducible",
        0.5,  # every run is recorded with its inputs and seeds: reproducible, not yet shown
        found,
        f"run 'mlcrew reproduce {ctx.champion.run_id}' (in CI, after every release)",
    )


def gated_serving(ctx: Context) -> Finding:
    gates = ctx.spec.objective.deal_breakers
    auto = ctx.spec.registry.promotion == "auto"
    return Finding(
        "infra-2",
        "Model quality is validated before serving",
        1.0 if gates else 0.5,
        f"{len(gates)} gate(s) decide promotion ({'automatic' if auto else 'by a person'})"
        if gates
        else "only the baseline comparison gates promotion",
        "add objective.deal_breakers (metric bounds, latency_p99_ms)",
    )


def canary(ctx: Context) -> Finding:
    from mlcrew.registry.versions import alias_holder

    challenger = alias_holder(ctx.store, ctx.spec.name, "challenger")
    return Finding(
        "infra-3",
        "New models meet live traffic before they take it (shadow)",
        1.0 if challenger is not None else 0.0,
        f"v{challenger} is scored in shadow on live traffic"
        if challenger is not None
        else "no challenger scores live traffic in shadow",
        "promote a candidate to the challenger alias: the service scores it beside the "
        "champion and logs both",
    )


def latency_gate(ctx: Context) -> Finding:
    has = any(d.latency_p99_ms is not None for d in ctx.spec.objective.deal_breakers)
    return Finding(
        "infra-4",
        "Serving latency is gated",
        1.0 if has else 0.0,
        "a latency_p99_ms gate" if has else "no latency gate",
        "add {latency_p99_ms: N} to objective.deal_breakers",
    )


# ----------------------------------------------------------------------------- monitoring


def monitored(ctx: Context) -> Finding:
    from mlcrew.store.models import MonitorReport

    with ctx.store.session() as s:
        reports = (
            s.scalar(
                select(func.count())
                .select_from(MonitorReport)
                .where(MonitorReport.name == ctx.spec.name)
            )
            or 0
        )
    logged = ctx.spec.serving.prediction_log
    points = 1.0 if logged and reports else (0.5 if logged or reports else 0.0)
    return Finding(
        "monitor-1",
        "Training and serving inputs are compared (drift)",
        points,
        f"prediction log {'on' if logged else 'off'}, {reports} monitoring report(s)",
        "keep serving.prediction_log on and run 'mlcrew monitor run' on a schedule",
    )


def alerting(ctx: Context) -> Finding:
    rules = ctx.spec.monitoring.alerts
    kinds = {r.when for r in rules}
    if not rules:
        return Finding(
            "monitor-2",
            "Monitoring alerts someone",
            0.0,
            "monitoring without alerts: no monitoring.alerts rules",
            "add monitoring.alerts (drift, metric, checks, log_lag) and a monitoring.webhook",
        )
    missing = [k for k in ("drift", "metric") if k not in kinds]
    return Finding(
        "monitor-2",
        "Monitoring alerts someone",
        (1.0 if ctx.spec.monitoring.webhook else 0.5) if not missing else 0.5,
        f"{len(rules)} rule(s) ({', '.join(sorted(kinds))}), webhook "
        f"{'set' if ctx.spec.monitoring.webhook else 'not set'}"
        + (f"; no {' or '.join(missing)} rule" if missing else ""),
        "cover drift and a metric bound, and send them to monitoring.webhook",
    )


def invariants(ctx: Context) -> Finding:
    has = any(r.when == "checks" for r in ctx.spec.monitoring.alerts)
    if not ctx.spec.checks:
        found = "no data checks: nothing to hold on serving inputs"
    elif has:
        found = "every window runs the spec's checks and alerts on a failure"
    else:
        found = "windows run the checks, but no alert rule listens (when: checks)"
    return Finding(
        "monitor-3",
        "Data invariants hold for serving inputs",
        1.0 if has and ctx.spec.checks else (0.5 if ctx.spec.checks else 0.0),
        found,
        "add checks: on the model's columns and {when: checks} to monitoring.alerts",
    )


def staleness(ctx: Context) -> Finding:
    cfg = ctx.spec.monitoring.retrain
    return Finding(
        "monitor-4",
        "Models are not too stale (retraining)",
        1.0 if cfg else 0.0,
        f"retrains on {', '.join(cfg.when)}, approval {cfg.approval}"
        if cfg
        else "no monitoring.retrain: the model ages as the data moves",
        "add monitoring.retrain: {when: [drift, performance], windows: 3}",
    )


# ----------------------------------------------------------------------------- debts


def undeclared_consumers(ctx: Context) -> Finding:
    import pyarrow.compute as pc

    from mlcrew.serving.predlog import read_predictions, segments

    found = segments(ctx.store, ctx.spec.name)[-200:]  # the recent log is enough to name them
    who: set[str] = set()
    anonymous = 0
    if found:
        log = read_predictions(ctx.store, ctx.spec.name, found)
        if "consumer" in log.column_names:
            consumers = log.column("consumer")
            anonymous = int(pc.sum(pc.is_null(consumers)).as_py() or 0)
            who = {c for c in consumers.unique().to_pylist() if c is not None}
    declared = {f"consumer:{c}" for c in ctx.spec.serving.consumers}
    undeclared = sorted(c for c in who if c.startswith("consumer:") and c not in declared)
    people = sorted(c for c in who if not c.startswith("consumer:"))
    problems = []
    if anonymous:
        problems.append(f"{anonymous} recent predictions went to callers without a token")
    if people:
        problems.append(f"predictions asked by people's tokens: {', '.join(people)}")
    if undeclared:
        problems.append(f"consumers not declared in serving.consumers: {', '.join(undeclared)}")
    return Finding(
        "debt-1",
        "Undeclared consumers",
        0.0 if problems else 1.0,
        "; ".join(problems) if problems else "every caller is a declared consumer",
        "declare each system that calls predict in serving.consumers, give it its own token "
        "('mlcrew token create --consumer NAME'), and set serving.require_consumer: true",
    )


SECTIONS: dict[str, list[Callable[[Context], Finding]]] = {
    "data": [checked_columns, idle_features, feature_tests],
    "model": [simpler_model, tuned, slices, offline_online, loose_gates],
    "infrastructure": [reproduced, gated_serving, canary, latency_gate],
    "monitoring": [monitored, alerting, invariants, staleness],
    "technical debt": [undeclared_consumers],
}
# The rubric's four sections make the score; the debts are listed beside them.
RUBRIC = ("data", "model", "infrastructure", "monitoring")


def doctor(store: Store, spec: Spec) -> dict[str, Any]:
    """{"score", "sections": [{"name", "score", "findings": [...]}]}"""
    ctx = _context(store, spec)
    sections = []
    for name, items in SECTIONS.items():
        findings = [item(ctx) for item in items]
        sections.append(
            {
                "name": name,
                "score": sum(f.points for f in findings),
                "max": float(len(findings)),
                "findings": [f.to_json() for f in findings],
            }
        )
    score = min(s["score"] for s in sections if s["name"] in RUBRIC)
    return {"score": score, "sections": sections}
