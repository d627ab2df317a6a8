"""The one seam where `mlcrew server` asks whether a request may go on.

The host (api/host.py) calls `Authorizer.check` once per request, before any project code runs,
with the project (None for the host's own pages: the project list) and the kind of action.
`AllowAll` lets everything through; people, roles and tokens plug in here by implementing the
protocol (reading e.g. the `Authorization` header from the ASGI scope) and answering a refusal.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

# read: GET/HEAD of pages and JSON; predict: POST .../predict; write: any other change.
Action = Literal["read", "predict", "write"]


@dataclass(frozen=True)
class Refusal:
    """Why a request may not go on: 401 (who are you?) or 403 (not allowed)."""

    status: Literal[401, 403]
    detail: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


class Authorizer(Protocol):
    def check(
        self, project: str | None, action: Action, scope: MutableMapping[str, Any]
    ) -> Refusal | None:
        """None lets the request through; a `Refusal` answers it."""
        ...


class AllowAll:
    """Every request may go on (until people and tokens exist)."""

    def check(
        self, project: str | None, action: Action, scope: MutableMapping[str, Any]
    ) -> Refusal | None:
        return None


def action_of(method: str, path: str) -> Action:
    """The kind of action a request is, from its method and its path inside a project."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return "read"
    if method == "POST" and path.startswith("/v1/models/") and path.endswith("/predict"):
        return "predict"
    return "write"
