"""The label spec in force: the `labeling:` section and its guidelines as last imported.

The queue, the pages and `mlcrew server` (which has no project folder) all read the stored copy,
so what labelers see changes when someone runs `mlcrew label import`, never half-way.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlcrew.errors import NotFoundError, SpecError
from mlcrew.labeling.tables import LabelSpecRecord
from mlcrew.spec import Labeling, Spec, canonical_json
from mlcrew.store import Store, now

NOT_IMPORTED = (
    "no labeling tasks yet: add a labeling: section to mlcrew.yaml and run `mlcrew label import`"
)
CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class LabelSpec:
    """A stored label spec: its digest (what exported labels point back to), the section and
    the guidelines' Markdown."""

    id: int
    digest: str
    labeling: Labeling
    guidelines: str


def guidelines_text(spec: Spec, project: Path) -> str:
    """The guidelines as Markdown: a file relative to the project when one is named, else the
    text itself."""
    text = require_labeling(spec).guidelines
    candidate = text.strip()
    if (
        candidate
        and "\n" not in candidate
        and candidate.lower().endswith((".md", ".markdown", ".txt"))
    ):
        path = project / candidate
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SpecError(
                f"{project / 'mlcrew.yaml'}: labeling.guidelines names {candidate!r}, which does "
                f"not exist in {project}; create it or write the guidelines inline"
            ) from None
        except UnicodeDecodeError:
            raise SpecError(f"{path}: guidelines must be UTF-8 text") from None
    return text


def require_labeling(spec: Spec) -> Labeling:
    if spec.labeling is None:
        raise SpecError(
            f"{spec.name} has no labeling: section in mlcrew.yaml; add one (docs/spec.md, "
            "'labeling') to say what is labeled and how"
        )
    return spec.labeling


def publish(session: Session, labeling: Labeling, guidelines: str) -> LabelSpec:
    """Record the label spec (once per content) in the caller's transaction."""
    body = labeling.model_dump(mode="json", by_alias=True)
    digest = hashlib.sha256(canonical_json([body, guidelines]).encode()).hexdigest()
    row = session.scalars(select(LabelSpecRecord).where(LabelSpecRecord.digest == digest)).first()
    if row is None:
        row = LabelSpecRecord(digest=digest, spec=body, guidelines=guidelines, created_at=now())
        session.add(row)
        session.flush()
    else:  # the same content again becomes the latest
        row.created_at = now()
    return LabelSpec(row.id, digest, labeling, guidelines)


def _latest(session: Session) -> LabelSpec | None:
    row = session.scalars(
        select(LabelSpecRecord).order_by(
            LabelSpecRecord.created_at.desc(), LabelSpecRecord.id.desc()
        )
    ).first()
    if row is None:
        return None
    return LabelSpec(row.id, row.digest, Labeling.model_validate(row.spec), row.guidelines)


class LabelSpecs:
    """The latest label spec of a store's project, re-read at most every CACHE_SECONDS (a server
    answers thousands of labeling requests a second; an import is seen within two seconds)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cached: tuple[float, LabelSpec | None] = (-1e9, None)
        self._lock = threading.Lock()

    def current(self) -> LabelSpec:
        found = self.find()
        if found is None:
            raise NotFoundError(NOT_IMPORTED)
        return found

    def find(self) -> LabelSpec | None:
        at, spec = self._cached
        if time.monotonic() - at <= CACHE_SECONDS:
            return spec
        with self._lock:
            with self.store.session() as s:
                spec = _latest(s)
            self._cached = (time.monotonic(), spec)
        return spec

    def forget(self) -> None:
        self._cached = (-1e9, None)


def latest(store: Store) -> LabelSpec | None:
    with store.session() as s:
        return _latest(s)


def guidelines_html(markdown: str) -> str:
    """The guidelines as HTML, with raw HTML in the Markdown escaped (labelers' pages must not
    run what a spec author pasted)."""
    from markdown_it import MarkdownIt

    renderer = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    return str(renderer.render(markdown))
