"""Rows of JSON checked against a model's input schema and turned into its float matrix in one
pass: the request path never builds an Arrow table or a pydantic model per row.

Compiled once per model version from the schema the model recorded in training. Values are
encoded exactly as `TabularModel` encodes them (categories by their index in the training levels,
unknown categories and nulls as missing values), so served predictions equal batch ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from mlcrew.errors import ModelInputError

if TYPE_CHECKING:
    import numpy as np

Kind = Literal["category", "boolean", "integer", "number"]
# Beyond 2**53 an integer no longer survives the trip to float64 intact.
MAX_SAFE_INTEGER = 2**53 - 1
# A response names at most this many problems (a 10,000-row body could hold 90,000).
MAX_PROBLEMS = 100
EXCERPT_CHARS = 40
# The prediction log keeps at most this much of a category it has never seen.
UNSEEN_CHARS = 200
_MISSING = object()


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """`repr(value)` cut to a short excerpt: no error echoes a large input back."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value)} characters)"
    if isinstance(value, dict | list) and len(value) > 3:
        return f"a {type(value).__name__} of {len(value)} items"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def category_text(value: Any) -> str:
    """The text of a category value, as training saw it (5 and 5.0 are the level "5")."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind
    nullable: bool
    levels: dict[str, float]
    low: float | None
    high: float | None

    @property
    def categories(self) -> list[str]:
        return list(self.levels)


class Encoded(NamedTuple):
    X: np.ndarray
    warnings: list[dict[str, Any]]
    # (row, field index, text) of each category value training never saw; None if there is none.
    unseen: tuple[tuple[int, int, str], ...] | None


class InputSchema:
    """A model version's input fields, compiled for validating and encoding rows fast."""

    def __init__(
        self, schema: list[dict[str, Any]], target: str | None, allow_nulls: bool = False
    ) -> None:
        self.fields = [_compile(f) for f in schema]
        self.names = frozenset(f.name for f in self.fields)
        self.target = target
        self.allow_nulls = allow_nulls

    def matrix(self, rows: list[Any]) -> Encoded:
        """The float matrix of `rows`, warnings about values unlike training, and the text of
        categories training never saw (the matrix holds them as missing values).

        Raises ModelInputError naming every bad row and field (up to MAX_PROBLEMS)."""
        import numpy as np

        fields = self.fields
        width = len(fields)
        X = np.empty((len(rows), width), dtype=np.float64)
        problems: list[dict[str, Any]] = []
        warnings: list[dict[str, Any]] = []
        unseen: list[tuple[int, int, str]] = []
        for i, row in enumerate(rows):
            if type(row) is not dict:
                problems.append({"row": i, "field": None, "error": "a row must be a JSON object"})
                continue
            present = 0
            for j, f in enumerate(fields):
                value = row.get(f.name, _MISSING)
                if value is _MISSING:
                    problems.append({"row": i, "field": f.name, "error": "missing field"})
                    continue
                present += 1
                x, error, note = _encode(f, value, self.allow_nulls)
                if error is not None:
                    problems.append({"row": i, "field": f.name, "error": error})
                elif note is not None:
                    warnings.append({"row": i, "field": f.name, "warning": note})
                    if f.kind == "category" and value is not None:
                        unseen.append((i, j, category_text(value)[:UNSEEN_CHARS]))
                X[i, j] = x
            if present != len(row):
                problems.extend(self._unknown(i, row))
            if len(problems) > MAX_PROBLEMS:
                break
        if problems:
            raise _input_error(problems, len(rows))
        return Encoded(X, warnings, tuple(unseen) if unseen else None)

    def _unknown(self, i: int, row: dict[str, Any]) -> list[dict[str, Any]]:
        found = []
        for key in row:
            if key in self.names:
                continue
            if key == self.target:
                error = (
                    f"{excerpt(key)} is the target the model predicts, not an input; "
                    "leave it out of the rows"
                )
            else:
                error = "unknown field; the model's inputs are: " + ", ".join(
                    f.name for f in self.fields
                )
            found.append({"row": i, "field": excerpt(key, 60).strip("'"), "error": error})
        return found

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema of one row, for the OpenAPI document."""
        props: dict[str, Any] = {}
        for f in self.fields:
            prop: dict[str, Any]
            if f.kind == "category":
                prop = {"type": ["string", "number"]}
                if f.levels:
                    prop["examples"] = [next(iter(f.levels))]
                    prop["description"] = "one of: " + ", ".join(list(f.levels)[:20])
            elif f.kind == "boolean":
                prop = {"type": ["boolean"]}
            elif f.kind == "integer":
                prop = {
                    "type": ["integer"],
                    "minimum": -MAX_SAFE_INTEGER,
                    "maximum": MAX_SAFE_INTEGER,
                }
            else:
                prop = {"type": ["number"]}
            if f.low is not None and f.high is not None:
                prop["description"] = f"training range [{f.low:g}, {f.high:g}]"
            if f.nullable or self.allow_nulls:
                prop["type"] = [*prop["type"], "null"]
            if len(prop["type"]) == 1:
                prop["type"] = prop["type"][0]
            props[f.name] = prop
        return {
            "type": "object",
            "properties": props,
            "required": [f.name for f in self.fields],
            "additionalProperties": False,
        }


def _compile(f: dict[str, Any]) -> Field:
    low, high = f.get("range") or (None, None)
    return Field(
        name=f["name"],
        kind=f["type"],
        nullable=bool(f.get("nullable")),
        levels={c: float(i) for i, c in enumerate(f.get("categories") or [])},
        low=low,
        high=high,
    )


def _encode(f: Field, value: Any, allow_nulls: bool) -> tuple[float, str | None, str | None]:
    """(encoded value, error, warning) of one value."""
    if value is None:
        if f.nullable:
            return math.nan, None, None
        if allow_nulls:
            return math.nan, None, "missing value; training had none (treated as unknown)"
        return (
            math.nan,
            "null, but training had no missing values here; send a value "
            "(or set serving.allow_nulls: true)",
            None,
        )
    kind = f.kind
    t = type(value)
    if kind == "category":
        if t is bool or t not in (str, int, float):
            return math.nan, f"expected a category (string), got {_kind(value)}", None
        text = category_text(value)
        code = f.levels.get(text)
        if code is None:
            return (
                math.nan,
                None,
                f"category {excerpt(value)} not seen in training " + ("(treated as unknown)"),
            )
        return code, None, None
    if kind == "boolean":
        if t is not bool:
            return math.nan, f"expected true or false, got {excerpt(value)}", None
        return float(value), None, None
    if t is not int and t is not float:
        return math.nan, f"expected a number, got {excerpt(value)}", None
    if (
        t is int
        and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
        and (kind == "integer" or not _finite(value))
    ):
        return math.nan, f"expected a number within ±{MAX_SAFE_INTEGER}, got {excerpt(value)}", None
    x = float(value) if t is int else value
    if x != x or x in (math.inf, -math.inf):
        return math.nan, f"expected a finite number, got {str(value)[:20]}", None
    if kind == "integer" and t is float and not x.is_integer():
        return math.nan, f"expected an integer, got {excerpt(value)}", None
    low, high = f.low, f.high
    if low is not None and high is not None and not low <= x <= high:
        return x, None, f"{excerpt(value)} is outside the training range [{low:g}, {high:g}]"
    return x, None, None


def _finite(value: int) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _input_error(problems: list[dict[str, Any]], rows: int) -> ModelInputError:
    shown = problems[:MAX_PROBLEMS]
    if len(problems) > MAX_PROBLEMS:
        shown.append(
            {"row": None, "field": "rows", "error": f"more problems in {rows} rows not shown"}
        )
    first = shown[0]
    where = f"row {first['row']}, field {first['field']!r}" if first["row"] is not None else "rows"
    return ModelInputError(f"{where}: {first['error']}", shown)
