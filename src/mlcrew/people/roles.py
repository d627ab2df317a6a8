"""Roles and what each may do: the one role x action matrix (docs/security.md is generated from
it, and a test fails when the page is stale)."""

from __future__ import annotations

from typing import Literal, get_args

Role = Literal["admin", "manager", "scientist", "engineer", "reviewer", "labeler", "viewer"]
Action = Literal[
    "read_data",
    "read_models",
    "read_metrics",
    "query",
    "run_pipelines",
    "promote",
    "label",
    "label_assigned",
    "review_labels",
    "manage_people",
    "read_audit",
]
ROLES: tuple[Role, ...] = get_args(Role)
ACTIONS: tuple[Action, ...] = get_args(Action)
# The matrix's column for a labeler granted with --external (an outsourced labeler).
EXTERNAL = "labeler (external)"

DESCRIPTIONS: dict[Action, str] = {
    "read_data": "read the project's data (ingested tables, splits, predictions)",
    "read_models": "read models, versions, runs, reports, stage status and the pages",
    "read_metrics": "scrape /metrics",
    "query": "ask for predictions (POST /v1/models/NAME/predict)",
    "run_pipelines": "run the pipeline",
    "promote": "promote and roll back aliases",
    "label": "label any task of the project",
    "label_assigned": "label the tasks assigned to oneself (and see nothing else)",
    "review_labels": "review labels",
    "manage_people": "manage people, tokens and consumers",
    "read_audit": "read the audit log",
}

_READ: frozenset[Action] = frozenset({"read_data", "read_models", "read_metrics"})
MATRIX: dict[str, frozenset[Action]] = {
    "admin": frozenset(ACTIONS),
    "manager": _READ | {"query", "run_pipelines", "promote", "review_labels", "read_audit"},
    "scientist": _READ | {"query", "run_pipelines"},
    "engineer": _READ | {"query", "run_pipelines", "promote"},
    "reviewer": _READ | {"label", "label_assigned", "review_labels"},
    "labeler": frozenset({"read_data", "label", "label_assigned"}),
    EXTERNAL: frozenset({"label_assigned"}),
    "viewer": frozenset({"read_models", "read_metrics"}),
}


def actions_of(role: Role, external: bool = False) -> frozenset[Action]:
    """What a grant allows: an external grant is only ever a labeler's, and sees only its own
    assigned tasks."""
    return MATRIX[EXTERNAL] if external else MATRIX[role]


def parse_role(text: str) -> Role:
    from mlcrew.errors import MlcrewError

    for role in ROLES:
        if role == text:
            return role
    raise MlcrewError(f"unknown role {text[:32]!r}: use one of {', '.join(ROLES)}")


def parse_scope(items: list[str], allowed: frozenset[Action]) -> list[Action]:
    """A token's scope from names (comma lists too), each one an action the owner has."""
    from mlcrew.errors import MlcrewError

    out: list[Action] = []
    for item in items:
        for name in (p.strip() for p in item.split(",")):
            if not name:
                continue
            action = next((a for a in ACTIONS if a == name), None)
            if action is None:
                raise MlcrewError(
                    f"unknown action {name[:40]!r} in --scope: use one of {', '.join(ACTIONS)}"
                )
            if action not in allowed:
                raise MlcrewError(
                    f"the owner may not {DESCRIPTIONS[action]}, so a token of theirs cannot "
                    f"either: drop {name!r} from --scope"
                )
            if action not in out:
                out.append(action)
    return out


def matrix_markdown() -> str:
    """The matrix as a Markdown table, for docs/security.md."""
    columns = list(MATRIX)
    lines = [
        "| action | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for action in ACTIONS:
        marks = " | ".join("yes" if action in MATRIX[c] else "-" for c in columns)
        lines.append(f"| `{action}`: {DESCRIPTIONS[action]} | {marks} |")
    return "\n".join(lines) + "\n"
