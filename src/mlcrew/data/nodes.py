"""Datasets as cached, versioned nodes: each source and each transform is keyed by what makes
its output (its config or code, its inputs' digests, the library versions), and a known key
is not executed again. So changing one transform re-runs it and what reads it, not the others.

Every distinct output is a version of its dataset (`dataset_versions`): the same bytes are the
same version whichever run made them, and each version names the versions it was made from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from mlcrew.pipeline.keys import library_versions
from mlcrew.spec import canonical_json
from mlcrew.store import Store, now
from mlcrew.store.models import DatasetNode, DatasetVersion

# Bump when a node's output for the same key would change (how sources are read, ...).
# 2: Parquet written from contiguous columns (bytes no longer follow the chunking).
NODE_VERSION = "2"
NODE_LIBRARIES = ("duckdb", "pyarrow", "python")


def node_key(name: str, kind: str, config: dict[str, Any], inputs: dict[str, str]) -> str:
    doc = {
        "node": NODE_VERSION,
        "name": name,
        "kind": kind,
        "config": config,
        "inputs": inputs,
        "libraries": library_versions(NODE_LIBRARIES),
    }
    return hashlib.sha256(canonical_json(doc).encode()).hexdigest()


@dataclass
class Node:
    """A source or transform as this run has it."""

    name: str
    kind: str  # source | sql | python
    key: str
    digest: str
    rows: int
    columns: list[dict[str, str]]
    state: str  # executed | cached
    version: int | None = None  # None when nothing is recorded (reproduce)
    parents: list[dict[str, Any]] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def ref(self) -> dict[str, Any]:
        """How a child names this node as its parent."""
        return {"name": self.name, "version": self.version, "digest": self.digest}

    def record(self) -> dict[str, Any]:
        out = {
            "kind": self.kind,
            "rows": self.rows,
            "digest": self.digest,
            "state": self.state,
            "inputs": [p["name"] for p in self.parents],
            **self.detail,
        }
        if self.version is not None:
            out["version"] = self.version
        return out


class NodeStore:
    """The node cache and the dataset versions of one project's store. With `record` off
    (reproduce) nothing is looked up or written; with `fresh` (run --force) nothing is looked
    up, but what is made is recorded."""

    def __init__(self, store: Store, run_id: str, *, record: bool, fresh: bool) -> None:
        self.store = store
        self.run_id = run_id
        self.record = record
        self.fresh = fresh

    def cached(self, key: str, name: str, kind: str, parents: list[dict[str, Any]]) -> Node | None:
        if not self.record or self.fresh:
            return None
        with self.store.session() as s:
            node = s.get(DatasetNode, (self.store.project_name, key))
            if node is None:
                return None
            version = s.scalars(
                select(DatasetVersion).where(
                    DatasetVersion.name == node.name, DatasetVersion.version == node.version
                )
            ).first()
        if version is None or not self.store.artifacts.exists(version.digest):
            return None
        return Node(
            name,
            kind,
            key,
            version.digest,
            version.rows,
            list(version.columns),
            "cached",
            version.version,
            parents,
            dict(version.detail),
        )

    def save(
        self,
        name: str,
        kind: str,
        key: str,
        path: Path,
        parents: list[dict[str, Any]],
        detail: dict[str, Any],
    ) -> Node:
        """Store the node's Parquet output (the file is moved into the store: it is gone
        afterwards); record it as a (new or known) version."""
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        columns = [{"name": f.name, "type": str(f.type)} for f in schema]
        rows = int(pq.read_metadata(path).num_rows)
        with self.store.session() as s:
            digest = self.store.adopt_artifact(path, "dataset", s)
        node = Node(name, kind, key, digest, rows, columns, "executed", None, parents, detail)
        if not self.record:
            return node
        with self.store.session() as s:
            known = s.scalars(
                select(DatasetVersion).where(
                    DatasetVersion.name == name, DatasetVersion.digest == digest
                )
            ).first()
            if known is None:
                latest = s.scalar(
                    select(func.max(DatasetVersion.version)).where(DatasetVersion.name == name)
                )
                known = DatasetVersion(
                    name=name,
                    version=(latest or 0) + 1,
                    digest=digest,
                    kind=kind,
                    rows=rows,
                    columns=columns,
                    parents=parents,
                    detail=detail,
                    run_id=self.run_id,
                    created_at=now(),
                )
                s.add(known)
                s.flush()
            node.version = known.version
            if s.get(DatasetNode, (self.store.project_name, key)) is None:
                s.add(DatasetNode(key=key, name=name, version=known.version, created_at=now()))
        return node
