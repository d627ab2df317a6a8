"""Reading stored monitor reports (metadata in SQL, the full report as an artifact)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from mlcrew.errors import NotFoundError
from mlcrew.store import Store
from mlcrew.store.models import MonitorReport


def list_reports(store: Store, name: str, limit: int = 20) -> list[dict[str, Any]]:
    with store.session() as s:
        rows = s.scalars(
            select(MonitorReport)
            .where(MonitorReport.name == name)
            .order_by(MonitorReport.id.desc())
            .limit(limit)
        )
        return [
            {
                "id": r.id,
                "name": r.name,
                "version": r.version,
                "created_at": r.created_at.isoformat(),
                "data_digest": r.data_digest,
                "report_digest": r.report_digest,
                **r.summary,
            }
            for r in rows
        ]


def get_report(store: Store, report_id: int) -> dict[str, Any]:
    with store.session() as s:
        row = s.get(MonitorReport, report_id)
        if row is None:
            raise NotFoundError(f"monitor report {report_id} not found")
        digest = row.report_digest
    report: dict[str, Any] = json.loads(store.artifacts.read_bytes(digest))
    report["report_id"] = report_id
    return report
