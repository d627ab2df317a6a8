"""A model version's reference profile: its training data profiled once, on the model's
features, stored as an artifact and named in the version's record (`reference_profile`), so
every later window is judged without reading the training data again."""

from __future__ import annotations

import json
from typing import Any

from mlcrew.monitoring.profile import TableProfile, profile_table
from mlcrew.registry.versions import VersionInfo
from mlcrew.store import Store

KEY = "reference_profile"


def feature_kinds(schema: list[dict[str, Any]]) -> dict[str, str]:
    """The model's features as numeric or categorical, as the model itself reads them."""
    return {f["name"]: "categorical" if f["type"] == "category" else "numeric" for f in schema}


def reference_profile(store: Store, version: VersionInfo, kinds: dict[str, str]) -> TableProfile:
    """The version's stored profile, or (the first time) its training split profiled and
    stored. A profile of other features (a version recorded before) is made again."""
    from mlcrew.data.tables import read_parquet
    from mlcrew.registry.versions import record_data_digest

    stored = version.data_digests.get(KEY)
    if stored and store.artifacts.exists(stored):
        profile = TableProfile.from_json(json.loads(store.artifacts.read_bytes(stored)))
        if list(profile.columns) == list(kinds):
            return profile
    train = read_parquet(store.artifacts.local_path(version.data_digests["split.train"]))
    profile = profile_table(train.select(list(kinds)), kinds=kinds)
    data = json.dumps(profile.to_json(), sort_keys=True).encode()
    digest = store.artifacts.put_bytes(data)
    with store.session() as s:
        store.record_artifact(digest, len(data), "profile", s)
    record_data_digest(store, version, KEY, digest)
    return profile
