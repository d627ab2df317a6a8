"""The audit log: every state-changing action (runs, promotions, rollbacks, people and token
changes) as one event. Written in the caller's transaction where there is one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlcrew.people.tables import AuditEvent
from mlcrew.store import Store, now


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    target: str
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "details": self.details,
        }


def record_in(
    session: Session,
    project: str,
    actor: str,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Append an event inside an open transaction (it commits or rolls back with the change)."""
    session.add(
        AuditEvent(
            project=project,
            at=now(),
            actor=actor[:128],
            action=action[:32],
            target=target[:256],
            details=details or {},
        )
    )


def record(
    store: Store,
    project: str,
    actor: str,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
) -> None:
    with store.session() as s:
        record_in(s, project, actor, action, target, details)


def events(store: Store, project: str, limit: int = 100) -> list[AuditEntry]:
    """The project's events, newest first."""
    with store.session() as s:
        rows = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.project == project)
            .order_by(AuditEvent.id.desc())
            .limit(limit)
        ).all()
        return [
            AuditEntry(r.id, r.at.isoformat(), r.actor, r.action, r.target, dict(r.details or {}))
            for r in rows
        ]
