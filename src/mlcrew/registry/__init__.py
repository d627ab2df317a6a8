"""Model registry: versions with lineage, aliases such as `champion`, and the audited,
gated ways aliases move (promote, rollback)."""

from mlcrew.registry.promotion import AliasMove, history, promote, rollback
from mlcrew.registry.versions import (
    CHALLENGER,
    CHAMPION,
    VersionInfo,
    alias_holder,
    aliases,
    get_version,
    list_versions,
    register_version,
    set_alias,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "AliasMove",
    "VersionInfo",
    "alias_holder",
    "aliases",
    "get_version",
    "history",
    "list_versions",
    "promote",
    "register_version",
    "rollback",
    "set_alias",
]
