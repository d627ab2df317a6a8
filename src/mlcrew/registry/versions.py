"""Model versions and aliases. Aliases move only through registry/promotion.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mlcrew.errors import NotFoundError
from mlcrew.store import Store, now
from mlcrew.store.models import Alias, ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
# Python's int is unbounded; a database integer is not. Anything beyond is "no such version".
MAX_VERSION = 2**31 - 1
# The one rule for alias names, everywhere (CLI, REST path and query, Python).
ALIAS_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,31}")
ALIAS_RULE = "1-32 lowercase letters, digits, '-' or '_', starting with a letter"


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: int
    model_digest: str
    run_id: str
    spec_digest: str
    data_digests: dict[str, Any]
    metrics: dict[str, Any]
    verdict: dict[str, Any]
    created_at: str
    metric: str | None = None

    @classmethod
    def of(cls, row: ModelVersion) -> VersionInfo:
        return cls(
            row.name,
            row.version,
            row.model_digest,
            row.run_id,
            row.spec_digest,
            dict(row.data_digests),
            dict(row.metrics),
            dict(row.verdict),
            row.created_at.isoformat(),
            row.metric,
        )


def find_by_digest(session: Session, name: str, model_digest: str) -> ModelVersion | None:
    return session.scalars(
        select(ModelVersion).where(
            ModelVersion.name == name, ModelVersion.model_digest == model_digest
        )
    ).first()


def find_version(session: Session, name: str, version: int) -> ModelVersion | None:
    if not 0 < version <= MAX_VERSION:
        return None
    return session.scalars(
        select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)
    ).first()


def register_version(
    store: Store,
    name: str,
    model_digest: str,
    *,
    run_id: str,
    spec_digest: str,
    data_digests: dict[str, Any],
    metrics: dict[str, Any],
    verdict: dict[str, Any],
    metric: str | None = None,
) -> tuple[VersionInfo, bool]:
    """Add a version (or return the existing one for the same model bytes); True if new.

    Re-registering the same model bytes after the gates changed updates its verdict and metrics:
    a version always shows its latest evaluation. Numbers are allocated under the project's run
    lock, and the (name, version) unique constraint backs that up."""
    with store.session() as s:
        existing = find_by_digest(s, name, model_digest)
        if existing is not None:
            update_evaluation(existing, verdict, metrics, metric)
            return VersionInfo.of(existing), False
        latest = s.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.name == name))
        row = ModelVersion(
            name=name,
            version=(latest or 0) + 1,
            model_digest=model_digest,
            run_id=run_id,
            spec_digest=spec_digest,
            data_digests=data_digests,
            metrics=metrics,
            verdict=verdict,
            metric=metric,
            created_at=now(),
        )
        s.add(row)
        s.flush()
        return VersionInfo.of(row), True


def update_evaluation(
    row: ModelVersion, verdict: dict[str, Any], metrics: dict[str, Any], metric: str | None
) -> None:
    """The version's latest evaluation (one place for both a new registration and a cached one)."""
    if row.verdict != verdict:
        row.verdict = verdict
    if row.metrics != metrics:
        row.metrics = metrics
    if metric and row.metric != metric:
        row.metric = metric


def record_data_digest(store: Store, version: VersionInfo, key: str, digest: str) -> None:
    """Name something derived from a version's data (its reference profile) in its record."""
    with store.session() as s:
        row = find_version(s, version.name, version.version)
        if row is not None:
            row.data_digests = {**row.data_digests, key: digest}
    version.data_digests[key] = digest


def alias_holder(store: Store, name: str, alias: str) -> int | None:
    """The version an alias points to, or None."""
    with store.session() as s:
        row = s.get(Alias, (store.project_name, name, alias))
        return row.version if row else None


def set_alias(store: Store, name: str, alias: str, version: int, reason: str = "") -> None:
    """Point an alias at a version without gates, as an audited, forced move.

    Prefer `promote` (gated) and `rollback`; this is for scripts that know better."""
    from mlcrew.registry.promotion import move_alias

    move_alias(
        store,
        name,
        alias,
        version,
        action="promote",
        reason=reason or "set_alias (Python API, ungated)",
        forced=True,
    )


def get_version(store: Store, name: str, ref: str | int = CHAMPION) -> VersionInfo:
    """A version by number or alias ("champion" by default)."""
    with store.session() as s:
        if isinstance(ref, int) or str(ref).isdigit():
            number = int(ref)
        else:
            alias = s.get(Alias, (store.project_name, name, str(ref)))
            if alias is None:
                known = sorted(set(s.scalars(select(ModelVersion.name))))
                if name not in known:
                    raise NotFoundError(
                        f"no model named {name[:64]!r}; known models: "
                        f"{', '.join(known) or 'none yet'}"
                    )
                if ref != CHAMPION:
                    names = sorted(s.scalars(select(Alias.alias).where(Alias.name == name)))
                    raise NotFoundError(
                        f"model {name!r} has no alias {str(ref)[:64]!r}; aliases: "
                        f"{', '.join(names) or 'none'} (or give a version number)"
                    )
                raise NotFoundError(
                    f"model {name!r} has no {ref!r} yet: no version has been promoted; run "
                    "'mlcrew run' and check the verdict, or 'mlcrew promote'"
                )
            number = alias.version
        row = find_version(s, name, number)
        if row is None:
            raise NotFoundError(f"model {name[:64]!r} has no version {str(number)[:20]}")
        return VersionInfo.of(row)


def list_versions(store: Store, name: str | None = None) -> list[VersionInfo]:
    with store.session() as s:
        q = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version)
        if name:
            q = q.where(ModelVersion.name == name)
        return [VersionInfo.of(r) for r in s.scalars(q)]


def aliases(store: Store, name: str) -> dict[str, int]:
    with store.session() as s:
        return {a.alias: a.version for a in s.scalars(select(Alias).where(Alias.name == name))}
