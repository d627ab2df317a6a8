"""Model registry: versions with lineage, and aliases such as `champion`."""

from mlcrew.registry.versions import (
    CHAMPION,
    VersionInfo,
    aliases,
    get_version,
    list_versions,
    register_version,
    set_alias,
)

__all__ = [
    "CHAMPION",
    "VersionInfo",
    "aliases",
    "get_version",
    "list_versions",
    "register_version",
    "set_alias",
]
