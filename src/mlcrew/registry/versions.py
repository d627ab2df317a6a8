"""Model versions, aliases and lineage. Promotion workflows deepen this module later."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mlcrew.errors import NotFoundError
from mlcrew.store import Store, now
from mlcrew.store.models import Alias, ModelVersion

CHAMPION = "champion"


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
        )


def find_by_digest(session: Session, name: str, model_digest: str) -> ModelVersion | None:
    return session.scalars(
        select(ModelVersion).where(
            ModelVersion.name == name, ModelVersion.model_digest == model_digest
        )
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
) -> tuple[VersionInfo, bool]:
    """Add a version (or return the existing one for the same model bytes); True if new.

    Re-registering the same model bytes after the gates changed updates its verdict and metrics:
    a version always shows its latest evaluation."""
    with store.session() as s:
        existing = find_by_digest(s, name, model_digest)
        if existing is not None:
            if existing.verdict != verdict or existing.metrics != metrics:
                existing.verdict, existing.metrics = verdict, metrics
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
            created_at=now(),
        )
        s.add(row)
        s.flush()
        return VersionInfo.of(row), True


def set_alias(store: Store, name: str, alias: str, version: int) -> None:
    with store.session() as s:
        if (
            s.scalars(
                select(ModelVersion).where(
                    ModelVersion.name == name, ModelVersion.version == version
                )
            ).first()
            is None
        ):
            raise NotFoundError(f"model {name!r} has no version {version}")
        row = s.get(Alias, (name, alias))
        if row is None:
            s.add(Alias(name=name, alias=alias, version=version, updated_at=now()))
        else:
            row.version = version
            row.updated_at = now()


def get_version(store: Store, name: str, ref: str | int = CHAMPION) -> VersionInfo:
    """A version by number or alias ("champion" by default)."""
    with store.session() as s:
        if isinstance(ref, int) or str(ref).isdigit():
            number = int(ref)
        else:
            alias = s.get(Alias, (name, str(ref)))
            if alias is None:
                known = sorted(set(s.scalars(select(ModelVersion.name))))
                if name not in known:
                    raise NotFoundError(
                        f"no model named {name!r}; known models: {', '.join(known) or 'none yet'}"
                    )
                if ref != CHAMPION:
                    names = sorted(s.scalars(select(Alias.alias).where(Alias.name == name)))
                    raise NotFoundError(
                        f"model {name!r} has no alias {ref!r}; aliases: "
                        f"{', '.join(names) or 'none'} (or give a version number)"
                    )
                raise NotFoundError(
                    f"model {name!r} has no {ref!r} yet: no version passed every gate; "
                    "run 'mlcrew run' and check the verdict"
                )
            number = alias.version
        row = s.scalars(
            select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == number)
        ).first()
        if row is None:
            raise NotFoundError(f"model {name!r} has no version {number}")
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
