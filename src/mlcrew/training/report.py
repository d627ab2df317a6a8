"""A version's evaluation for people: what the evaluate stage wrote, the champion's value on the
same test rows beside it, and the same document rendered as Markdown or self-contained HTML."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from mlcrew.errors import MlcrewError, NotFoundError
from mlcrew.registry.versions import CHAMPION, VersionInfo, aliases, get_version
from mlcrew.store import Store
from mlcrew.store.models import StageExecution


def stage_execution(store: Store, run_id: str, stage: str) -> StageExecution:
    with store.session() as s:
        row = s.scalars(
            select(StageExecution).where(
                StageExecution.run_id == run_id, StageExecution.stage == stage
            )
        ).first()
        if row is None:
            raise NotFoundError(f"run {run_id} has no {stage} stage")
        s.expunge(row)
        return row


def evaluation(store: Store, name: str, ref: str | int = CHAMPION) -> dict[str, Any]:
    """The evaluation of version `ref` of model `name`, with the champion's value beside it."""
    info = get_version(store, name, ref)
    evaluate = stage_execution(store, info.run_id, "evaluate")
    doc: dict[str, Any] = json.loads(store.artifacts.read_bytes(evaluate.outputs["report"]))
    train = stage_execution(store, info.run_id, "train").record
    doc["model"] = {
        "name": info.name,
        "version": info.version,
        "run_id": info.run_id,
        "created_at": info.created_at,
        "aliases": [a for a, v in aliases(store, name).items() if v == info.version],
        "task_reason": train.get("task_reason"),
        "trials": len(train.get("trials", [])),
        "ensemble": train.get("ensemble", []),
        "decision": train.get("decision"),
        "importance": train.get("importance", {}),
    }
    doc["champion"] = _champion_value(store, info, evaluate, doc)
    return doc


def _champion_value(
    store: Store, info: VersionInfo, evaluate: StageExecution, doc: dict[str, Any]
) -> dict[str, Any] | None:
    """The current champion scored on this version's test rows, in the same money."""
    if doc.get("value") is None:
        return None
    try:
        champion = get_version(store, info.name, CHAMPION)
    except NotFoundError:
        return None
    if champion.version == info.version:
        return {"version": champion.version, "total": doc["value"]["total"], "same": True}
    import pyarrow.parquet as pq

    from mlcrew.spec import Objective
    from mlcrew.training import analysis
    from mlcrew.training.model import TabularModel

    split = stage_execution(store, info.run_id, "split")
    test = pq.read_table(store.artifacts.local_path(split.outputs["test"]))
    train = pq.read_table(store.artifacts.local_path(split.outputs["train"]))
    objective = Objective(**evaluate.config["objective"])
    out: dict[str, Any] = {"version": champion.version, "total": None}
    if champion.data_digests.get("split.train") != info.data_digests.get("split.train"):
        # Another split: some of these test rows may be rows the champion learned from.
        out["caveat"] = "the champion was trained on another training split"
    try:
        model = TabularModel.from_json(store.artifacts.read_bytes(champion.model_digest))
        missing = [c for c in [*model.feature_names, model.target_] if c not in test.column_names]
        if missing or objective.value is None:
            return out | {"why": f"this test split lacks its columns {missing}"}
        raw = model.predict_raw(test)
        value = analysis.value_report(objective.value, model, train, test, raw)
    except MlcrewError as exc:  # another task, other classes: say so, keep the page
        return out | {"why": str(exc)}
    return out | {"total": value["total"], "per_row": value["per_row"]}


# ---------------------------------------------------------------------- rendering


def money(value: float | None, currency: str = "$") -> str:
    """-$119,700 or $39.90: whole units from 100 up, cents below."""
    if value is None:
        return "–"
    sign = "-" if value < 0 else ""
    return (
        f"{sign}{currency}{abs(value):,.0f}"
        if abs(value) >= 100
        else f"{sign}{currency}{abs(value):,.2f}"
    )


def render(doc: dict[str, Any], fmt: str) -> str:
    """The evaluation as `md` (Markdown) or `html` (one file, charts drawn with inline Plotly)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from mlcrew.webassets import TEMPLATES_DIR, plotly_js

    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    if fmt == "md":
        return env.get_template("evaluation_report.md").render(doc=doc)
    return env.get_template("evaluation_report.html").render(
        doc=doc,
        plotly=plotly_js().read_text(encoding="utf-8"),
        css=(TEMPLATES_DIR.parent / "static" / "style.css").read_text(encoding="utf-8"),
        charts_js=(TEMPLATES_DIR.parent / "static" / "evaluation.js").read_text(encoding="utf-8"),
        charts=charts(doc),
    )


def charts(doc: dict[str, Any]) -> dict[str, Any]:
    """Plotly figures (data + layout) of the evaluation, shared by the page and the report."""
    details = doc.get("details") or {}
    out: dict[str, Any] = {}
    if "confusion" in details:
        classes = details["classes"]
        out["confusion"] = {
            "data": [
                {
                    "type": "heatmap",
                    "z": details["confusion"],
                    "x": classes,
                    "y": classes,
                    "colorscale": "Blues",
                    "reversescale": True,
                    "texttemplate": "%{z}",
                    "hovertemplate": "actual %{y}, predicted %{x}: %{z}<extra></extra>",
                }
            ],
            "layout": {
                "title": {"text": "Confusion matrix (test split)"},
                "xaxis": {"title": {"text": "predicted"}, "type": "category"},
                "yaxis": {"title": {"text": "actual"}, "type": "category", "autorange": "reversed"},
            },
        }
    if "roc" in details:
        out["roc"] = _line(
            "ROC curve", details["roc"], "fpr", "tpr", "false positive rate", "true positive rate"
        )
        out["pr"] = _line(
            "Precision-recall curve", details["pr"], "recall", "precision", "recall", "precision"
        )
    if details.get("reliability"):
        fig = _line(
            "Reliability (calibration)",
            details["reliability"],
            "predicted",
            "observed",
            "mean predicted probability",
            "observed frequency",
        )
        fig["data"].append(
            {"x": [0, 1], "y": [0, 1], "mode": "lines", "name": "perfect", "line": {"dash": "dot"}}
        )
        out["reliability"] = fig
    value = doc.get("value") or {}
    if value.get("curve"):
        fig = _line(
            f"Value on the test split by threshold ({value['currency']})",
            value["curve"],
            "threshold",
            "value",
            f"threshold on P({value['positive']})",
            f"total value ({value['currency']})",
        )
        fig["layout"]["shapes"] = [
            {
                "type": "line",
                "x0": value["threshold"],
                "x1": value["threshold"],
                "yref": "paper",
                "y0": 0,
                "y1": 1,
                "line": {"dash": "dash", "color": "#c0392b"},
            }
        ]
        out["value"] = fig
    if "scatter" in details:
        fig = _line(
            "Predicted against actual (test split)",
            details["scatter"],
            "actual",
            "predicted",
            "actual",
            "predicted",
        )
        fig["data"][0]["mode"] = "markers"
        out["scatter"] = fig
    return out


def _line(
    title: str, points: list[dict[str, float]], x: str, y: str, x_title: str, y_title: str
) -> dict[str, Any]:
    return {
        "data": [
            {
                "x": [p[x] for p in points],
                "y": [p[y] for p in points],
                "mode": "lines+markers" if len(points) <= 20 else "lines",
                "name": title,
            }
        ],
        "layout": {
            "title": {"text": title},
            "xaxis": {"title": {"text": x_title}},
            "yaxis": {"title": {"text": y_title}},
            "showlegend": False,
        },
    }
