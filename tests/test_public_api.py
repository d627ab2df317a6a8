"""The public API: every exported name resolves, and importing it stays cheap."""

from __future__ import annotations

import json
import subprocess
import sys

import mlcrew


def test_every_exported_name_resolves() -> None:
    missing = [name for name in mlcrew.__all__ if getattr(mlcrew, name, None) is None]
    assert missing == []
    assert sorted(dir(mlcrew)) == sorted(mlcrew.__all__)


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        mlcrew.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("an unknown name resolved")


def test_import_loads_no_heavy_library() -> None:
    """`import mlcrew` (and so every CLI command's start) loads no database, model or web layer."""
    code = (
        "import json, sys, mlcrew;"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'lightgbm', 'duckdb', 'pyarrow', 'fastapi', 'pydantic', 'numpy'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []
