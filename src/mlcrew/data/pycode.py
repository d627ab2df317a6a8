"""Python transforms' code, read without importing it: where a `module:function` lives in the
project, the function's parameters (the datasets it takes), and the files of its module and
of every module of the project that it imports, directly or not. Those files are an input of
the ingest stage (like a glob source: a manifest of names and digests), so editing the
function or a helper it imports re-runs it, and a run can be reproduced from the store."""

from __future__ import annotations

import ast
from pathlib import Path

from mlcrew.errors import SpecError


def module_file(project: Path, module: str) -> Path | None:
    """The project's file for a dotted module name (a .py file or a package's __init__.py)."""
    base = project.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _parse(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        raise SpecError(
            f"{path}: line {exc.lineno}: {exc.msg}; fix the Python transform's code"
        ) from None


def locate(project: Path, ref: str, where: str) -> tuple[Path, list[str]]:
    """The file of `module:function` and the function's parameter names."""
    module, _, function = ref.partition(":")
    path = module_file(project, module)
    if path is None:
        raise SpecError(
            f"{where}: module {module!r} is not a file of the project ({project}); write the "
            f"function in {module.replace('.', '/')}.py next to mlcrew.yaml"
        )
    for node in _parse(path).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function:
            args = node.args
            if args.vararg or args.kwarg:
                raise SpecError(
                    f"{where}: {ref} takes *args or **kwargs; name each dataset it takes as a "
                    "parameter, or list them in inputs:"
                )
            names = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
            return path, names
    raise SpecError(f"{where}: {path.name} has no top-level function {function!r}")


def module_files(project: Path, ref: str) -> list[tuple[str, Path]]:
    """The module of `module:function` and every module of the project it imports, directly
    or not, as (path relative to the project, path): what the transform's code is. Packages'
    __init__.py files on the way are included, so the code imports the same way elsewhere."""
    module = ref.partition(":")[0]
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        parts = name.split(".")
        # The packages a dotted module sits in: run on import, so their imports count too.
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        path = module_file(project, name)
        if path is None:
            continue
        seen[name] = path
        package = name.rpartition(".")[0] if path.name != "__init__.py" else name
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".") if package else []
                    up = up[: len(up) - (node.level - 1)]
                    base = ".".join([*up, base] if base else up)
                todo.append(base)
                todo += [f"{base}.{a.name}" if base else a.name for a in node.names]
    files = {str(p.relative_to(project)): p for p in seen.values()}
    return sorted(files.items())
