"""The monitoring page of a model and `mlcrew monitor report --html`: drift per feature over
windows, real and estimated performance over time, and alerts, retrains and promotions on one
timeline. One document (`timeline`) feeds the page, the report and the JSON route."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlcrew.store import Store

RETRAIN_ACTIONS = ("retrain", "retrain_promoted", "retrain_refused", "retrain_failed",
                   "retrain_awaiting_approval")  # fmt: skip


def timeline(store: Store, name: str, limit: int = 200) -> dict[str, Any]:
    """Windows (oldest first), alerts, alias moves and retrains of model `name`."""
    from dataclasses import asdict

    from mlcrew.monitoring.alerts import list_alerts
    from mlcrew.monitoring.loop import list_windows
    from mlcrew.people.audit import events
    from mlcrew.registry.promotion import history

    windows = list_windows(store, name, limit)
    retrains = [
        {"at": e.at, "action": e.action, "actor": e.actor, **e.details}
        for e in events(store, store.project_name, 1000)
        if e.action in RETRAIN_ACTIONS and e.target == name
    ]
    return {
        "name": name,
        "windows": windows,
        "alerts": list_alerts(store, name, limit),
        "moves": [asdict(m) for m in history(store, name, limit=limit)],
        "retrains": retrains,
    }


def charts(doc: dict[str, Any]) -> dict[str, Any]:
    """Plotly figures: PSI per feature and window (a heatmap), the real and estimated
    metrics per window, rows per window."""
    windows = doc["windows"]
    if not windows:
        return {}
    labels = [f"#{w['id']} v{w['version']}" for w in windows]
    # PSI: one scale for numbers and categories, whichever test or distance judged them.
    features = sorted({f for w in windows for f in w.get("psi", {})})
    out: dict[str, Any] = {}
    if features:
        out["drift"] = {
            "data": [
                {
                    "type": "heatmap",
                    "x": labels,
                    "y": features,
                    "z": [[(w.get("psi") or {}).get(f) for w in windows] for f in features],
                    "zmin": 0,
                    "colorscale": "YlOrRd",
                    "hovertemplate": "%{y} in window %{x}: PSI %{z:.3f}<extra></extra>",
                }
            ],
            "layout": {
                "title": {"text": "PSI per feature and window (from 0.2: a shift worth a look)"},
                "xaxis": {"type": "category"},
            },
        }
    metrics = sorted({k for w in windows for k in (w["performance"].get("metrics") or {})})
    lines = [
        {
            "x": labels,
            "y": [(w["performance"].get("metrics") or {}).get(m) for w in windows],
            "mode": "lines+markers",
            "name": m,
        }
        for m in metrics
        if m in ("mae", "rmse", "accuracy", "roc_auc", "f1")
    ]
    if any(w.get("estimated") for w in windows):
        lines.append(
            {
                "x": labels,
                "y": [(w.get("estimated") or {}).get("accuracy") for w in windows],
                "mode": "lines+markers",
                "name": "accuracy (estimated)",
                "line": {"dash": "dot"},
            }
        )
    if lines:
        out["performance"] = {
            "data": lines,
            "layout": {"title": {"text": "Performance per window"}, "xaxis": {"type": "category"}},
        }
    out["rows"] = {
        "data": [{"type": "bar", "x": labels, "y": [w["rows"] for w in windows], "name": "rows"}],
        "layout": {
            "title": {"text": "Rows per window"},
            "xaxis": {"type": "category"},
            "showlegend": False,
        },
    }
    return out


def events_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Alerts, retrains and alias moves as one timeline, newest first."""
    items = [
        {"at": a["fired_at"], "kind": "alert", "text": f"{a['rule']}: {a['message']}"}
        for a in doc["alerts"]
    ]
    for r in doc["retrains"]:
        text = f"{r['action']}: {r.get('why') or r.get('reason', '')}"
        items.append({"at": r["at"], "kind": "retrain", "text": text})
    items += [
        {
            "at": m["at"],
            "kind": m["action"],
            "text": f"{m['alias']}: {_v(m['from_version'])} -> {_v(m['to_version'])} "
            f"({m['reason']})",
        }
        for m in doc["moves"]
    ]
    return sorted(items, key=lambda e: e["at"], reverse=True)


def _v(version: int | None) -> str:
    return "none" if version is None else f"v{version}"


def render(doc: dict[str, Any]) -> str:
    """The self-contained HTML report (Plotly inlined: it opens offline)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from mlcrew.webassets import TEMPLATES_DIR, plotly_js

    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("monitoring_report.html").render(
        doc=doc,
        events=events_of(doc),
        plotly=plotly_js().read_text(encoding="utf-8"),
        css=(TEMPLATES_DIR.parent / "static" / "style.css").read_text(encoding="utf-8"),
        charts_js=(TEMPLATES_DIR.parent / "static" / "evaluation.js").read_text(encoding="utf-8"),
        charts=charts(doc),
    )


def write_report(store: Store, name: str, path: Path) -> Path:
    """Write the report atomically; return its path."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(timeline(store, name)), encoding="utf-8")
    tmp.replace(path)
    return path
