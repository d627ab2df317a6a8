"""The action each route needs: one table for every route the service answers, the outer
layer's (predict, probes) and FastAPI's. None: open to anyone. A route missing here is refused
(403) and fails the matrix test."""

from __future__ import annotations

from mlcrew.people.roles import Action

Key = tuple[str, str]  # (method, route template); HEAD counts as GET

ROUTES: dict[Key, Action | None] = {
    # the outer layer (api/fastpath.py)
    ("POST", "/v1/models/{name}/predict"): "query",
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
    ("GET", "/metrics"): "read_metrics",
    # pages
    ("GET", "/"): "read_models",
    ("GET", "/docs"): "read_models",
    ("GET", "/openapi.json"): None,  # the API's description, as the /docs page shows it
    ("GET", "/favicon.ico"): None,
    ("GET", "/static"): None,
    ("GET", "/login"): None,
    ("POST", "/login"): None,
    ("POST", "/logout"): None,  # ends the caller's own session (CSRF-checked)
    ("GET", "/label"): "label_assigned",  # the labeling page
    ("GET", "/vendor/plotly.min.js"): None,  # the charts' script, as /static
    ("GET", "/experiments"): "read_models",
    ("GET", "/experiments/runs/{run_id}"): "read_models",
    ("GET", "/experiments/compare"): "read_models",
    ("GET", "/models/{name}/evaluation"): "read_models",
    ("GET", "/data"): "read_data",
    ("GET", "/data/{ref}"): "read_data",
    ("GET", "/query"): "read_data",
    ("GET", "/models/{name}/evaluation/report.{fmt}"): "read_models",
    ("GET", "/models/{name}/monitoring"): "read_models",
    ("GET", "/models/{name}/monitoring/report.html"): "read_models",
    # models, registry, runs, monitoring
    ("GET", "/v1/models"): "read_models",
    ("GET", "/v1/models/{name}"): "read_models",
    ("GET", "/v1/models/{name}/history"): "read_models",
    ("GET", "/v1/models/{name}/evaluation"): "read_models",
    ("POST", "/v1/models/{name}/aliases/{alias}"): "promote",
    ("GET", "/v1/runs"): "read_models",
    ("GET", "/v1/runs/latest"): "read_models",
    ("GET", "/v1/runs/{run_id}"): "read_models",
    ("GET", "/v1/status"): "read_models",
    ("GET", "/v1/monitor/reports"): "read_models",
    ("GET", "/v1/monitor/reports/{report_id}"): "read_models",
    ("GET", "/v1/monitor/timeline"): "read_models",
    # datasets and read-only SQL over them
    ("GET", "/v1/datasets"): "read_data",
    ("GET", "/v1/datasets/{ref}"): "read_data",
    ("GET", "/v1/datasets/{ref}/profile"): "read_data",
    ("GET", "/v1/datasets/{ref}/diff"): "read_data",
    ("POST", "/v1/query"): "read_data",
    # experiments (tracked runs)
    ("GET", "/v1/experiments/runs"): "read_models",
    ("GET", "/v1/experiments/runs/{run_id}"): "read_models",
    ("GET", "/v1/experiments/compare"): "read_models",
    # labeling
    ("GET", "/v1/labeling/next"): "label_assigned",
    ("GET", "/v1/labeling/tasks/{task_id}"): "label_assigned",
    ("GET", "/v1/labeling/tasks/{task_id}/image"): "label_assigned",
    ("POST", "/v1/labeling/tasks/{task_id}/labels"): "label_assigned",
    ("POST", "/v1/labeling/tasks/{task_id}/skip"): "label_assigned",
    ("POST", "/v1/labeling/tasks/{task_id}/flag"): "label_assigned",
    ("POST", "/v1/labeling/undo"): "label_assigned",
    ("GET", "/v1/labeling/spec"): "label_assigned",
    ("GET", "/v1/labeling/me"): "label_assigned",
    ("GET", "/v1/labeling/status"): "read_data",
    ("GET", "/v1/labeling/quality"): "review_labels",
    ("GET", "/v1/labeling/review/next"): "review_labels",
    ("GET", "/v1/labeling/review/tasks/{task_id}/image"): "review_labels",
    ("POST", "/v1/labeling/tasks/{task_id}/review"): "review_labels",
    ("GET", "/labeling"): "review_labels",
    ("GET", "/labeling/review"): "review_labels",
    # people
    ("GET", "/v1/users"): "manage_people",
    ("POST", "/v1/users"): "manage_people",
    ("DELETE", "/v1/users/{user}"): "manage_people",
    ("GET", "/v1/tokens"): "manage_people",
    ("POST", "/v1/tokens"): "manage_people",
    ("DELETE", "/v1/tokens/{token_id}"): "manage_people",
    ("GET", "/v1/consumers"): "manage_people",
    ("POST", "/v1/consumers"): "manage_people",
    ("GET", "/v1/audit"): "read_audit",
}


def key(method: str, template: str) -> Key:
    return ("GET" if method == "HEAD" else method, template)


def allowed_methods(path: str) -> str:
    """The methods some route offers at `path` ("GET, POST"), for a 405's Allow header."""
    from starlette.routing import compile_path

    found = []
    for method, template in ROUTES:
        if method not in found and compile_path(template)[0].match(path):
            found.append(method)
    return ", ".join(sorted(found))


def routes_markdown() -> str:
    """The table of routes and their actions, for docs/security.md."""
    lines = ["| route | action |", "|---|---|"]
    for (method, template), action in ROUTES.items():
        lines.append(f"| `{method} {template}` | {f'`{action}`' if action else 'open'} |")
    return "\n".join(lines) + "\n"
