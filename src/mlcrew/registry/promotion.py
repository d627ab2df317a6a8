"""Promotion, rollback and the alias audit log: the only ways an alias moves.

Every move is one transaction that updates the alias and appends its event, so a process killed
at any moment leaves the alias and the audit log agreeing (both moved, or neither). Promotion is
gated: the candidate's verdict must pass, and it must not be worse than the alias's current
holder on the objective metric by more than the margin, both scored on the candidate's own test
split. `force` skips the gates, needs a reason and is recorded as forced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select

from mlcrew.errors import MlcrewError, NotFoundError, PromotionRefused
from mlcrew.people.audit import record_in
from mlcrew.registry.versions import (
    ALIAS_PATTERN,
    ALIAS_RULE,
    CHAMPION,
    VersionInfo,
    find_version,
)
from mlcrew.spec import LOWER_IS_BETTER
from mlcrew.store import Store, now
from mlcrew.store.models import Alias, AliasEvent

Action = Literal["promote", "rollback"]


@dataclass(frozen=True)
class AliasMove:
    """One entry of the audit log."""

    at: str
    actor: str
    alias: str
    from_version: int | None
    to_version: int | None
    reason: str
    forced: bool
    action: Action
    verdict: dict[str, Any]

    @classmethod
    def of(cls, row: AliasEvent) -> AliasMove:
        action: Action = "rollback" if row.action == "rollback" else "promote"
        return cls(
            row.at.isoformat(),
            row.actor,
            row.alias,
            row.from_version,
            row.to_version,
            row.reason,
            bool(row.forced),
            action,
            dict(row.verdict or {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "actor": self.actor,
            "alias": self.alias,
            "from": self.from_version,
            "to": self.to_version,
            "reason": self.reason,
            "forced": self.forced,
            "action": self.action,
            "verdict": self.verdict,
        }


def default_actor() -> str:
    """Who is acting from the local CLI, for the audit log: the OS user (the service passes
    the token's or session's user instead)."""
    from mlcrew.people.identity import os_user

    return os_user()


def check_alias_name(alias: str) -> str:
    if not ALIAS_PATTERN.fullmatch(alias):
        raise MlcrewError(
            f"alias {alias[:40]!r} is not valid: use {ALIAS_RULE} (like champion or challenger)"
        )
    return alias


def move_alias(
    store: Store,
    name: str,
    alias: str,
    version: int,
    *,
    action: Action,
    reason: str,
    forced: bool,
    actor: str | None = None,
    expect_from: int | Literal["any"] | None = "any",
) -> AliasMove | None:
    """Point `alias` at `version` and log it, in one transaction. None if it already points
    there. With `expect_from`, refuse if the alias moved since the caller decided."""
    check_alias_name(alias)
    # One mover at a time per alias, on every backend: SQLite takes no row lock for a SELECT,
    # and two first promotions on PostgreSQL would both insert the alias row.
    with (
        store.lock(f"mlcrew:alias:{store.project_name}:{name}:{alias}").hold(),
        store.session() as s,
    ):
        row = find_version(s, name, version)
        if row is None:
            raise NotFoundError(f"model {name!r} has no version {version}")
        current = s.scalars(
            select(Alias).where(Alias.name == name, Alias.alias == alias).with_for_update()
        ).first()
        before = current.version if current else None
        if expect_from != "any" and before != expect_from:
            raise PromotionRefused(
                f"{alias} of {name} moved to v{before} while this promotion was being decided; "
                "try again",
                [f"{alias} moved meanwhile (now v{before})"],
            )
        if before == version:
            return None
        at = now()
        if current is None:
            s.add(Alias(name=name, alias=alias, version=version, updated_at=at))
        else:
            current.version = version
            current.updated_at = at
        event = AliasEvent(
            name=name,
            alias=alias,
            action=action,
            from_version=before,
            to_version=version,
            actor=actor or default_actor(),
            reason=reason,
            forced=forced,
            verdict=dict(row.verdict),
            at=at,
        )
        s.add(event)
        details = {"alias": alias, "from": before, "to": version, "reason": reason}
        record_in(s, name, event.actor, action, f"{name}@{alias}", {**details, "forced": forced})
        s.flush()
        return AliasMove.of(event)


def _score_on(store: Store, holder: VersionInfo, candidate: VersionInfo, metric: str) -> float:
    """The holder's metric on the candidate's test split (the same data for both)."""
    from mlcrew.data.tables import read_parquet_bytes
    from mlcrew.training.evaluate import model_metrics
    from mlcrew.training.model import TabularModel

    test_digest = candidate.data_digests.get("split.test")
    if not test_digest:
        raise MlcrewError(f"v{candidate.version} records no test split to compare on")
    table = read_parquet_bytes(store.artifacts.read_bytes(test_digest))
    model = TabularModel.from_json(store.artifacts.read_bytes(holder.model_digest))
    lacking = [c for c in [*model.feature_names, model.target_] if c not in table.column_names]
    if lacking:
        raise MlcrewError(
            f"it reads {', '.join(map(repr, lacking))}, which v{candidate.version}'s test split "
            "lacks"
        )
    try:
        value = model_metrics(model, table, model.target_).get(metric)
    except MlcrewError:
        raise
    except Exception as exc:  # LightGBM, Arrow or NumPy refusing this data
        raise MlcrewError(f"{exc.__class__.__name__}: {str(exc)[:200]}") from exc
    if value is None:
        raise MlcrewError(f"{metric} cannot be computed for v{holder.version} on this data")
    return float(value)


def promotion_gates(
    store: Store, candidate: VersionInfo, holder: VersionInfo | None, alias: str, margin: float
) -> list[str]:
    """Why the candidate may not take the alias (empty: it may)."""
    reasons = []
    if not candidate.verdict.get("passed"):
        failed = [r for r in candidate.verdict.get("reasons", []) if r.startswith("FAILED")]
        reasons.append(
            f"v{candidate.version}'s verdict did not pass"
            + (f" ({'; '.join(failed)})" if failed else "")
        )
    if holder is None or holder.version == candidate.version:
        return reasons
    metric = candidate.metric or holder.metric
    if not metric or metric not in candidate.metrics:
        reasons.append(f"v{candidate.version} records no objective metric to compare with")
        return reasons
    mine = float(candidate.metrics[metric])
    try:
        theirs = _score_on(store, holder, candidate, metric)
    except MlcrewError as exc:
        reasons.append(
            f"{alias} v{holder.version} cannot be scored on v{candidate.version}'s test split "
            f"({exc}); compare by hand and use --force with a reason"
        )
        return reasons
    lower = metric in LOWER_IS_BETTER
    worse_by = (mine - theirs) if lower else (theirs - mine)
    if worse_by > margin:
        reasons.append(
            f"v{candidate.version} is worse than {alias} v{holder.version} on {metric} "
            f"({mine:.6g} vs {theirs:.6g} on v{candidate.version}'s test split, by "
            f"{worse_by:.4g} > registry.margin {margin:g})"
        )
    return reasons


def promote(
    store: Store,
    name: str,
    version: int,
    *,
    reason: str,
    alias: str = CHAMPION,
    actor: str | None = None,
    force: bool = False,
    margin: float = 0.0,
) -> AliasMove | None:
    """Move `alias` to `version` if the gates allow (or `force`, with a reason).

    Returns the logged move, or None if the alias already points there; raises
    PromotionRefused with the reasons otherwise."""
    from mlcrew.registry.versions import get_version

    check_alias_name(alias)
    reason = reason.strip()
    if not reason:
        raise MlcrewError(
            "a promotion needs a reason (--reason TEXT): it goes into the audit log"
            + ("; a forced one especially" if force else "")
        )
    candidate = get_version(store, name, int(version))
    with store.session() as s:
        current = s.get(Alias, (store.project_name, name, alias))
        holder_version = current.version if current else None
    if holder_version == candidate.version:
        return None
    holder = get_version(store, name, holder_version) if holder_version is not None else None
    if not force:
        reasons = promotion_gates(store, candidate, holder, alias, margin)
        if reasons:
            raise PromotionRefused(
                f"promotion of {name} v{version} to {alias} refused: "
                + "; ".join(reasons)
                + " (--force with a reason overrides, and is recorded)",
                reasons,
            )
    return move_alias(
        store,
        name,
        alias,
        candidate.version,
        action="promote",
        reason=reason,
        forced=force,
        actor=actor,
        expect_from=holder_version,
    )


def rollback(
    store: Store,
    name: str,
    *,
    alias: str = CHAMPION,
    reason: str = "",
    actor: str | None = None,
) -> AliasMove:
    """Move `alias` back to the version that held it before its current holder was promoted.

    Repeated rollbacks walk further back (rollbacks themselves are skipped in the walk)."""
    check_alias_name(alias)
    with store.session() as s:
        current = s.get(Alias, (store.project_name, name, alias))
        if current is None:
            raise NotFoundError(f"model {name!r} has no alias {alias!r}; nothing to roll back")
        holder = current.version
        events = list(
            s.scalars(
                select(AliasEvent)
                .where(
                    AliasEvent.name == name,
                    AliasEvent.alias == alias,
                    AliasEvent.action == "promote",
                    AliasEvent.to_version == holder,
                )
                .order_by(AliasEvent.id.desc())
                .limit(1)
            )
        )
    previous = events[0].from_version if events else None
    if previous is None:
        raise MlcrewError(
            f"{alias} of {name} (v{holder}) has no previous holder to roll back to; promote a "
            f"version instead: mlcrew promote {name} VERSION --alias {alias} --reason TEXT"
        )
    move = move_alias(
        store,
        name,
        alias,
        previous,
        action="rollback",
        reason=reason.strip() or f"rollback from v{holder}",
        forced=False,
        actor=actor,
        expect_from=holder,
    )
    if move is None:  # cannot happen: previous != holder by construction of the log
        raise MlcrewError(f"{alias} of {name} already points to v{previous}")
    return move


def was_replaced(store: Store, name: str, alias: str, version: int) -> bool:
    """True if `version` once held `alias` and was moved away from (replaced or rolled back)."""
    with store.session() as s:
        found = s.scalars(
            select(AliasEvent.id)
            .where(
                AliasEvent.name == name,
                AliasEvent.alias == alias,
                AliasEvent.from_version == version,
            )
            .limit(1)
        ).first()
    return found is not None


def history(store: Store, name: str, alias: str | None = None, limit: int = 100) -> list[AliasMove]:
    """The audit log of alias moves, newest first."""
    limit = max(1, min(int(limit), 10_000))
    with store.session() as s:
        q = select(AliasEvent).where(AliasEvent.name == name)
        if alias:
            q = q.where(AliasEvent.alias == alias)
        rows = s.scalars(q.order_by(AliasEvent.id.desc()).limit(limit))
        return [AliasMove.of(r) for r in rows]
