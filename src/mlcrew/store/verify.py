"""`mlcrew store verify`: re-hash every recorded artifact and report what is missing or corrupt."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mlcrew.store.models import Artifact

if TYPE_CHECKING:
    from mlcrew.store import Store


@dataclass
class VerifyReport:
    checked: int = 0
    ok: int = 0
    corrupt: list[dict[str, str]] = field(default_factory=list)
    missing: list[dict[str, str]] = field(default_factory=list)
    # Blobs in the artifact store that no record names (harmless; e.g. left by a killed writer).
    unrecorded: int = 0

    @property
    def healthy(self) -> bool:
        return not self.corrupt and not self.missing

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "healthy": self.healthy}


def verify_store(store: Store, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Check every recorded artifact against its digest; `progress(done, total)` as it goes."""
    with store.session() as s:
        rows = [(a.digest, a.kind) for a in s.scalars(select(Artifact).order_by(Artifact.digest))]
    report = VerifyReport()
    for i, (digest, kind) in enumerate(rows, 1):
        state = store.artifacts.check(digest)
        report.checked += 1
        entry = {"digest": digest, "kind": kind, "location": store.artifacts.location(digest)}
        if state is None:
            report.missing.append(entry)
        elif state:
            report.ok += 1
        else:
            report.corrupt.append(entry)
        if progress:
            progress(i, len(rows))
    recorded = {d for d, _ in rows}
    report.unrecorded = sum(1 for d in store.artifacts.digests() if d not in recorded)
    return report
