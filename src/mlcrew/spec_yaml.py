"""Reading a spec's YAML cheaply and safely, whatever the file holds.

A spec is small, but a file can be hostile or just wrong: nested aliases that multiply (a "billion
laughs" of nine anchor levels would expand to a billion values), brackets nested thousands deep
(libyaml's composer recurses on the C stack and crashes), bytes that are not UTF-8, or tens of
thousands of lines. So the text goes through libyaml's event parser once to bound the depth and
the values that aliases add (nothing is expanded to be measured), is then composed once, checked
for keys written twice in one pass that visits every node once, and constructed from that same
node. The line of each key path is indexed only when a message needs it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from mlcrew.errors import SpecError

# Values (scalars, lists, mappings) that aliases may add to a spec once expanded. A real spec
# reuses a few blocks; past this the file is an alias bomb, and every later walk would pay for it.
MAX_ALIAS_VALUES = 1_000_000
# Nesting depth. The deepest real key path is about six levels (checks.0.between.1).
MAX_DEPTH = 64

KeyPath = tuple[str | int, ...]

# libyaml when it is installed (about 20x faster than the pure-Python parser).
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlDocument:
    """The constructed data, and where each key path was written (indexed only when asked)."""

    def __init__(self, data: Any, root: yaml.Node | None) -> None:
        self.data = data
        self._root = root

    @functools.cached_property
    def lines(self) -> dict[KeyPath, int]:
        """The 1-based line of each key path (of the key itself, for a mapping entry).

        A value reached through an alias is indexed once, under the first path that reaches it.
        """
        return self._index[0]

    @functools.cached_property
    def written(self) -> dict[KeyPath, str]:
        """Each scalar as written in the file (`yes`, `0.5`), to quote it back in messages."""
        return self._index[1]

    @functools.cached_property
    def _index(self) -> tuple[dict[KeyPath, int], dict[KeyPath, str]]:
        lines: dict[KeyPath, int] = {}
        written: dict[KeyPath, str] = {}
        if self._root is not None:
            for path, node in _walk(self._root):
                lines.setdefault(path, node.start_mark.line + 1)
                if isinstance(node, yaml.ScalarNode):
                    written[path] = node.value
                elif isinstance(node, yaml.MappingNode):
                    for key_node, _ in node.value:
                        if isinstance(key_node, yaml.ScalarNode):
                            lines[(*path, key_node.value)] = key_node.start_mark.line + 1
        return lines, written

    def line_of(self, path: KeyPath) -> int | None:
        """The line of `path`, or of its nearest indexed parent (an alias's use site)."""
        lines = self.lines
        for cut in range(len(path), -1, -1):
            line = lines.get(path[:cut])
            if line is not None:
                return line
        return None


def read_utf8(path: Path) -> str:
    """The file's text; bytes that are not UTF-8 are a SpecError naming line and byte offset."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            kind = "it looks like UTF-16"
        else:
            kind = f"byte 0x{raw[exc.start]:02x} at byte offset {exc.start} is not UTF-8"
        raise SpecError(
            f"{path}:{line}: the spec is not UTF-8 text ({kind}); save it as UTF-8"
        ) from None


def load_yaml(text: str, file: Path) -> YamlDocument:
    """Parse one YAML document into data and a line index, or raise SpecError with file:line."""
    try:
        _bound(text, file)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return YamlDocument(None, None)
            _refuse_duplicate_keys(node, file)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise SpecError(_yaml_message(exc, text, file)) from None
    except RecursionError:  # a backstop: _bound keeps the depth far below Python's limit
        raise SpecError(f"{file}: the spec nests too deeply to read") from None
    return YamlDocument(data, node)


def _bound(text: str, file: Path) -> None:
    """Refuse deep nesting and alias expansion from the event stream, before anything composes.

    Each value counts once, and an alias counts as many values as its anchor expands to (an
    anchor's size is known when its node ends), so nothing is ever expanded to be measured.
    """
    counted = 0  # values of the document so far, aliases expanded
    added = 0  # of those, values reached through aliases
    sizes: dict[str, int] = {}
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, `counted` at its start)
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            anchor = event.anchor or ""
            line = _line(event.start_mark)
            if any(a == anchor for a, _ in open_nodes):
                raise SpecError(
                    f"{file}:{line}: alias *{anchor} is used inside its own anchor &{anchor}; "
                    "a value cannot contain itself"
                )
            size = sizes.get(anchor, 1)  # an undefined alias: the composer names it
            counted += size
            added += size
            if added > MAX_ALIAS_VALUES:
                raise SpecError(
                    f"{file}:{line}: alias *{anchor} takes the spec past {MAX_ALIAS_VALUES:,} "
                    f"values copied through aliases (this use alone copies {size:,}); nested "
                    "aliases that multiply like this are refused: write the values out instead"
                )
        elif isinstance(event, yaml.ScalarEvent):
            counted += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(open_nodes) >= MAX_DEPTH:
                raise SpecError(
                    f"{file}:{_line(event.start_mark)}: the spec nests more than {MAX_DEPTH} "
                    "levels deep here; a spec needs a few: look for unclosed or repeated brackets"
                )
            open_nodes.append((event.anchor, counted))
            counted += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            opened, start = open_nodes.pop()
            if opened is not None:
                sizes[opened] = counted - start


def _line(mark: Any) -> int:
    return int(mark.line) + 1 if mark is not None else 1


def _walk(root: yaml.Node) -> Iterator[tuple[KeyPath, yaml.Node]]:
    """Every node once, with the first key path that reaches it (aliases share nodes)."""
    seen: set[int] = set()
    stack: list[tuple[KeyPath, yaml.Node]] = [((), root)]
    while stack:
        path, node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield path, node
        if isinstance(node, yaml.MappingNode):
            stack.extend(
                ((*path, key_node.value), value_node)
                for key_node, value_node in reversed(node.value)
                if isinstance(key_node, yaml.ScalarNode)
            )
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(((*path, i), item) for i, item in reversed(list(enumerate(node.value))))


def _refuse_duplicate_keys(root: yaml.Node, file: Path) -> None:
    """YAML would silently keep the last of two equal keys: name the first key written twice."""
    seen: set[int] = set()
    stack = [root]
    first: tuple[int, yaml.Node] | None = None
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                # A complex key (a list or a mapping) is left to the constructor, which refuses it.
                if isinstance(key_node, yaml.ScalarNode):
                    line = key_node.start_mark.line + 1
                    if key_node.value in keys and (first is None or line < first[0]):
                        first = (line, key_node)
                    keys.add(key_node.value)
                stack.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    if first is None:
        return
    line, duplicate = first
    for path, node in _walk(root):  # only now: the message names the key's whole path
        if isinstance(node, yaml.MappingNode) and any(k is duplicate for k, _ in node.value):
            dotted = ".".join(str(p) for p in (*path, duplicate.value))
            raise SpecError(f"{file}:{line}: key {dotted!r} appears twice; keep one of them")


def _yaml_message(exc: yaml.YAMLError, text: str, file: Path) -> str:
    """The parser's complaint as `file:LINE: not valid YAML: ...`."""
    if isinstance(exc, yaml.reader.ReaderError):
        char = exc.character
        code = char if isinstance(char, int) else ord(char)
        at = text.find(chr(code))
        where = f"{file}:{text.count(chr(10), 0, at) + 1}" if at >= 0 else str(file)
        return f"{where}: not valid YAML: the character U+{code:04X} is not allowed; remove it"
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}" if mark else str(file)
        parts = []
        if exc.context:
            context_mark = exc.context_mark
            seen_at = (
                f" (line {context_mark.line + 1})"
                if context_mark and mark and context_mark.line != mark.line
                else ""
            )
            parts.append(f"{exc.context}{seen_at}")
        if exc.problem:
            parts.append(exc.problem)
        return f"{where}: not valid YAML: {', '.join(parts) or exc}"
    return f"{file}: not valid YAML: {exc}"
