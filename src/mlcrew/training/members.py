"""The estimators a model can be made of, each trained on the float matrix `TabularModel` builds.

Three kinds, each saved without pickle:
- `lightgbm`: LightGBM's own text model;
- `linear`: a linear baseline (median imputation, standardisation, one-hot categories, then
  logistic or ridge regression) saved as its coefficients in JSON and predicted with NumPy;
- `sklearn`: any scikit-learn-compatible estimator named by dotted path, saved with skops. Loading
  refuses any type outside the allow-list (`ALLOWED_MODULES`), since skops would build it.

Every member predicts the same raw shape as LightGBM: values (regression), P(class 1) (binary), or
one probability per class (multiclass), so they average into an ensemble (`Ensemble`).
"""

from __future__ import annotations

import base64
import importlib
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mlcrew.errors import DataError, SpecError

if TYPE_CHECKING:
    import lightgbm as lgb
    import numpy as np

# Types a skops-saved estimator may hold beyond those skops trusts itself (NumPy arrays and
# dtypes, builtins): classes defined in scikit-learn's own modules, nothing else. A name is
# resolved and must be a class defined there: a function, or anything a scikit-learn module
# merely imports (subprocess.check_output under sklearn.utils._testing, say), is refused.
ALLOWED_MODULES = ("sklearn.",)
REFUSED_MODULES = ("sklearn.utils._testing", "sklearn.datasets", "sklearn.externals")
LINEAR_MAX_LEVELS = 50  # one-hot columns per categorical feature in the linear baseline


@dataclass(frozen=True)
class Problem:
    """What every member is fitted for: the task, the classes and which columns are codes."""

    task: str  # regression | classification
    n_classes: int  # 0 for regression
    categorical: tuple[int, ...]  # column indices holding category codes
    seed: int
    threads: int


class Member(Protocol):
    kind: str

    def fit(self, X: np.ndarray, y: np.ndarray, problem: Problem) -> Member: ...
    def predict(self, X: np.ndarray, num_threads: int = 1) -> np.ndarray: ...
    def describe(self) -> dict[str, Any]: ...
    def to_doc(self) -> dict[str, Any]: ...


# ---------------------------------------------------------------------- LightGBM


def lightgbm_dataset(X: np.ndarray, y: Any, categorical: tuple[int, ...] | list[int]) -> Any:
    import lightgbm as lgb

    return lgb.Dataset(
        X,
        label=y,
        # Positional names: LightGBM rejects some characters in names; ours live in the schema.
        feature_name=[f"f{i}" for i in range(X.shape[1])],
        categorical_feature=list(categorical) or "auto",
        free_raw_data=True,
        params={"verbosity": -1, "max_bin": 255},
    )


def train_lightgbm(
    X: np.ndarray,
    y: Any,
    categorical: tuple[int, ...] | list[int],
    params: dict[str, Any],
    rounds: int,
    valid: tuple[np.ndarray, Any] | None = None,
    patience: int = 0,
) -> lgb.Booster:
    """`lgb.train`, with LightGBM's refusals as DataErrors; early stopping on `valid` if given."""
    import lightgbm as lgb

    data = lightgbm_dataset(X, y, categorical)
    kw: dict[str, Any] = {}
    if valid is not None and patience:
        kw["valid_sets"] = [lgb.Dataset(valid[0], label=valid[1], reference=data)]
        kw["callbacks"] = [lgb.early_stopping(patience, verbose=False)]
    try:
        with warnings.catch_warnings():
            # The validation set shares the training set's bins; LightGBM says so every time.
            warnings.filterwarnings("ignore", "Overriding the parameters from Reference Dataset")
            return lgb.train(params, data, num_boost_round=rounds, **kw)
    except lgb.basic.LightGBMError as exc:
        reason = str(exc).strip().splitlines()[0].split(" at /")[0]
        raise DataError(
            f"LightGBM refused to train: {reason}; check training.params in mlcrew.yaml"
        ) from None


@dataclass
class LightGBMMember:
    params: dict[str, Any]
    rounds: int
    kind: str = "lightgbm"
    booster_: Any = None
    best_rounds_: int = 0  # rounds kept by early stopping (all of them without it)

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        problem: Problem,
        valid: tuple[np.ndarray, np.ndarray] | None = None,
        patience: int = 0,
    ) -> LightGBMMember:
        self.booster_ = train_lightgbm(
            X, y, problem.categorical, self.params, self.rounds, valid, patience
        )
        best = int(getattr(self.booster_, "best_iteration", 0) or 0)
        self.best_rounds_ = best if best > 0 else self.rounds
        return self

    def predict(self, X: np.ndarray, num_threads: int = 1) -> np.ndarray:
        import numpy as np

        kw = {"num_iteration": self.best_rounds_} if self.best_rounds_ else {}
        return np.asarray(self.booster_.predict(X, num_threads=num_threads, **kw))

    def describe(self) -> dict[str, Any]:
        rounds = self.best_rounds_ or self.rounds
        return {"kind": self.kind, "rounds": rounds, **_tuned(self.params)}

    def to_doc(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "params": self.params,
            "rounds": self.rounds,
            "lightgbm": self.booster_.model_to_string(),
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any], source: str) -> LightGBMMember:
        try:
            member = cls(dict(doc["params"]), int(doc["rounds"]))
            text = str(doc["lightgbm"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{source}: the LightGBM member is damaged ({exc!r})") from None
        member.booster_ = native_booster(text, source)
        return member


def native_booster(text: str, source: str) -> Any:
    """LightGBM's text model loaded through its C library; a DataError naming `source` if the
    text is not one (the artifact is damaged, or not an mlcrew model)."""
    from mlcrew.training.native import NativeBooster, NativeLightGBMError

    try:
        return NativeBooster(text)
    except NativeLightGBMError as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "unreadable"
        raise DataError(
            f"{source}: field 'lightgbm' is not a LightGBM text model ({reason}); the "
            "artifact is damaged or not an mlcrew model: re-run 'mlcrew run --force'"
        ) from None


TUNED_KEYS = (
    "learning_rate",
    "num_leaves",
    "min_data_in_leaf",
    "feature_fraction",
    "lambda_l2",
)


def _tuned(params: dict[str, Any]) -> dict[str, Any]:
    return {k: params[k] for k in TUNED_KEYS if k in params}


# ---------------------------------------------------------------------- linear baseline


@dataclass
class LinearMember:
    """Logistic (classification) or ridge (regression) regression on standardised inputs."""

    c: float = 1.0  # inverse regularisation (LogisticRegression's C; ridge alpha = 1 / c)
    kind: str = "linear"
    numeric_: list[int] = field(default_factory=list)
    medians_: list[float] = field(default_factory=list)
    means_: list[float] = field(default_factory=list)
    scales_: list[float] = field(default_factory=list)
    onehot_: list[tuple[int, list[int]]] = field(default_factory=list)  # (column, codes)
    coef_: list[list[float]] = field(default_factory=list)  # outputs x design columns
    intercept_: list[float] = field(default_factory=list)
    task_: str = "regression"

    def _design(self, X: np.ndarray) -> np.ndarray:
        import numpy as np

        parts = []
        if self.numeric_:
            num = X[:, self.numeric_]
            num = np.where(np.isnan(num), np.asarray(self.medians_), num)
            parts.append((num - np.asarray(self.means_)) / np.asarray(self.scales_))
        for col, codes in self.onehot_:
            parts.append((X[:, [col]] == np.asarray(codes, dtype=np.float64)).astype(np.float64))
        if not parts:
            return np.zeros((X.shape[0], 0))
        return np.hstack(parts)

    def fit(self, X: np.ndarray, y: np.ndarray, problem: Problem) -> LinearMember:
        import numpy as np
        from sklearn.linear_model import LogisticRegression, Ridge

        self.task_ = problem.task
        cats = set(problem.categorical)
        self.numeric_ = [j for j in range(X.shape[1]) if j not in cats]
        num = X[:, self.numeric_]
        with np.errstate(all="ignore"):
            medians = np.nanmedian(num, axis=0) if num.size else np.zeros(0)
        medians = np.where(np.isnan(medians), 0.0, medians)
        filled = np.where(np.isnan(num), medians, num)
        means = filled.mean(axis=0) if num.size else np.zeros(0)
        scales = filled.std(axis=0) if num.size else np.zeros(0)
        scales = np.where(scales > 0, scales, 1.0)
        self.medians_, self.means_, self.scales_ = (
            medians.tolist(),
            means.tolist(),
            scales.tolist(),
        )
        self.onehot_ = []
        for j in sorted(cats):
            codes, counts = np.unique(X[:, j][~np.isnan(X[:, j])], return_counts=True)
            top = codes[np.argsort(-counts, kind="stable")][:LINEAR_MAX_LEVELS]
            self.onehot_.append((j, sorted(int(c) for c in top)))
        design = self._design(X)
        if problem.task == "regression":
            ridge = Ridge(alpha=1.0 / self.c).fit(design, y)
            self.coef_ = [np.atleast_1d(ridge.coef_).tolist()]
            self.intercept_ = [float(ridge.intercept_)]
        else:
            logit = LogisticRegression(C=self.c, max_iter=2000).fit(design, y)
            self.coef_ = np.atleast_2d(logit.coef_).tolist()
            self.intercept_ = np.atleast_1d(logit.intercept_).tolist()
        return self

    def predict(self, X: np.ndarray, num_threads: int = 1) -> np.ndarray:
        import numpy as np
        from scipy.special import expit, softmax

        z = self._design(X) @ np.asarray(self.coef_).T + np.asarray(self.intercept_)
        if self.task_ == "regression":
            return z[:, 0]  # type: ignore[no-any-return]
        if z.shape[1] == 1:
            return expit(z[:, 0])  # type: ignore[no-any-return]
        return softmax(z, axis=1)  # type: ignore[no-any-return]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "C": self.c}

    def to_doc(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "task": self.task_,
            "c": self.c,
            "numeric": self.numeric_,
            "medians": self.medians_,
            "means": self.means_,
            "scales": self.scales_,
            "onehot": [[col, codes] for col, codes in self.onehot_],
            "coef": self.coef_,
            "intercept": self.intercept_,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any], source: str) -> LinearMember:
        try:
            m = cls(float(doc["c"]))
            m.task_ = str(doc["task"])
            m.numeric_ = [int(j) for j in doc["numeric"]]
            m.medians_ = [float(v) for v in doc["medians"]]
            m.means_ = [float(v) for v in doc["means"]]
            m.scales_ = [float(v) for v in doc["scales"]]
            m.onehot_ = [(int(col), [int(c) for c in codes]) for col, codes in doc["onehot"]]
            m.coef_ = [[float(v) for v in row] for row in doc["coef"]]
            m.intercept_ = [float(v) for v in doc["intercept"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"{source}: the linear member is damaged ({exc.__class__.__name__}: {exc}); "
                "re-run 'mlcrew run --force'"
            ) from None
        return m


# ---------------------------------------------------------------------- scikit-learn estimators


def import_estimator(path: str, where: str) -> type:
    """The class at a dotted path (`sklearn.ensemble.HistGradientBoostingClassifier`)."""
    module, _, name = path.rpartition(".")
    if not module:
        raise SpecError(f"{where}: {path!r} is not a dotted path such as sklearn.svm.SVC")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise SpecError(
            f"{where}: cannot import {path!r} ({exc.__class__.__name__}: {exc}); name a class "
            "importable here, such as sklearn.ensemble.HistGradientBoostingClassifier"
        ) from None
    if not isinstance(cls, type) or not hasattr(cls, "fit"):
        raise SpecError(f"{where}: {path!r} is not an estimator class (no fit method)")
    return cls


@dataclass
class SklearnMember:
    path: str
    params: dict[str, Any]
    kind: str = "sklearn"
    estimator_: Any = None
    impute_: list[float] | None = None  # medians, for estimators that refuse missing values
    task_: str = "regression"

    def build(self, problem: Problem, where: str = "training.search.estimators") -> Any:
        from sklearn.base import is_classifier, is_regressor

        cls = import_estimator(self.path, where)
        try:
            est = cls(**self.params)
        except TypeError as exc:
            raise SpecError(f"{where}: {self.path}: {exc}; fix its params") from None
        if problem.task == "classification" and not is_classifier(est):
            raise SpecError(f"{where}: {self.path} is not a classifier, but the task is")
        if problem.task == "regression" and not is_regressor(est):
            raise SpecError(f"{where}: {self.path} is not a regressor, but the task is")
        if not cls.__module__.startswith(ALLOWED_MODULES):
            raise SpecError(
                f"{where}: {self.path} is defined in {cls.__module__}, outside mlcrew's "
                "allow-list of saved types (scikit-learn's own classes): its model could not "
                "be loaded again; use a scikit-learn estimator"
            )
        if "random_state" in est.get_params() and "random_state" not in self.params:
            est.set_params(random_state=problem.seed)  # the spec's seed, so refits repeat
        return est

    def fit(self, X: np.ndarray, y: np.ndarray, problem: Problem) -> SklearnMember:
        """Fit the estimator (with median imputation if it refuses missing values)."""
        import numpy as np
        from sklearn.utils import get_tags
        from threadpoolctl import threadpool_limits

        est = self.build(problem)
        self.task_ = problem.task
        self.impute_ = None
        if not get_tags(est).input_tags.allow_nan:
            # Always: a missing value or an unseen category (NaN) may come at predict time
            # even when the training rows had none.
            with np.errstate(all="ignore"):
                medians = np.nanmedian(X, axis=0) if len(X) else np.zeros(X.shape[1])
            self.impute_ = np.where(np.isnan(medians), 0.0, medians).tolist()
        with threadpool_limits(problem.threads):
            self.estimator_ = est.fit(self._input(X), y)
        return self

    def _input(self, X: np.ndarray) -> np.ndarray:
        import numpy as np

        if self.impute_ is None:
            return X
        return np.where(np.isnan(X), np.asarray(self.impute_), X)

    def predict(self, X: np.ndarray, num_threads: int = 1) -> np.ndarray:
        import numpy as np
        from threadpoolctl import threadpool_limits

        with threadpool_limits(num_threads):
            if self.task_ == "regression":
                return np.asarray(self.estimator_.predict(self._input(X)), dtype=np.float64)
            proba = np.asarray(self.estimator_.predict_proba(self._input(X)), dtype=np.float64)
        return proba[:, 1] if proba.shape[1] == 2 else proba

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "estimator": self.path, **self.params}

    def to_doc(self) -> dict[str, Any]:
        import skops.io as sio

        return {
            "kind": self.kind,
            "task": self.task_,
            "estimator": self.path,
            "params": self.params,
            "impute": self.impute_,
            "skops": base64.b64encode(_stable_zip(sio.dumps(self.estimator_))).decode("ascii"),
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any], source: str) -> SklearnMember:
        import skops.io as sio

        path = str(doc.get("estimator", "?"))
        try:
            data = base64.b64decode(str(doc["skops"]), validate=True)
            found = sio.get_untrusted_types(data=data)
        except Exception as exc:  # binascii.Error, zipfile.BadZipFile, KeyError, ...
            raise DataError(
                f"{source}: the {path} member is not a skops file ({exc.__class__.__name__}); "
                "the artifact is damaged: re-run 'mlcrew run --force'"
            ) from None
        refused = [t for t in found if not allowed_type(t)]
        if refused:
            raise DataError(
                f"{source}: the {path} member holds type{'s' if len(refused) > 1 else ''} "
                f"{', '.join(refused)}, outside mlcrew's allow-list (scikit-learn's own "
                "classes); it is not loaded, since loading would run that type's code. Train "
                "with a scikit-learn estimator instead"
            )
        member = cls(path, dict(doc.get("params") or {}))
        member.task_ = str(doc.get("task", "regression"))
        impute = doc.get("impute")
        member.impute_ = [float(v) for v in impute] if impute is not None else None
        member.estimator_ = sio.loads(data, trusted=found)
        return member


def allowed_type(name: str) -> bool:
    """Is `name` (module.Qualname, as skops lists it) a class scikit-learn itself defines?"""
    module, _, attr = name.rpartition(".")
    if not module.startswith(ALLOWED_MODULES) or module.startswith(REFUSED_MODULES):
        return False
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return False
    return isinstance(obj, type) and obj.__module__ == module and not issubclass(obj, BaseException)


def _stable_zip(data: bytes) -> bytes:
    """skops' file made repeatable: skops names objects and array files by `id()` (a memory
    address) and stamps entries with the time; here ids are renumbered in order of first use,
    entries sorted and their times fixed, so the same estimator always gives the same bytes."""
    import io
    import re
    import zipfile

    ids: dict[str, str] = {}

    def renumber(m: re.Match[str]) -> str:
        return m.group(1) + ids.setdefault(m.group(2), str(len(ids))) + m.group(3)

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        schema = src.read("schema.json").decode("utf-8")
        schema = re.sub(r'("__id__": |"file": ")(\d+)((?:\.npy")?)', renumber, schema)
        entries = {"schema.json": schema.encode("utf-8")}
        for name in src.namelist():
            if name != "schema.json":
                stem, dot, ext = name.partition(".")
                entries[ids.get(stem, stem) + dot + ext] = src.read(name)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, entries[name])
    return out.getvalue()


def member_from_doc(doc: Any, source: str) -> Member:
    kinds: dict[str, Any] = {
        "lightgbm": LightGBMMember,
        "linear": LinearMember,
        "sklearn": SklearnMember,
    }
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if kind not in kinds:
        raise DataError(
            f"{source}: a member of kind {kind!r} is unknown (known: {', '.join(kinds)}); it was "
            "written by a newer mlcrew or the artifact is damaged"
        )
    member: Member = kinds[kind].from_doc(doc, source)
    return member


# ---------------------------------------------------------------------- the ensemble


@dataclass
class Ensemble:
    """Members and their weights: predicts the weighted mean of their raw outputs. Has the
    `predict(X, num_threads=)` of a LightGBM booster, so serving treats it like one."""

    members: list[Member]
    weights: list[float]

    def predict(self, X: np.ndarray, num_threads: int = 1) -> np.ndarray:
        total: Any = None
        for member, weight in zip(self.members, self.weights, strict=True):
            part = weight * member.predict(X, num_threads=num_threads)
            total = part if total is None else total + part
        return total  # type: ignore[no-any-return]

    def num_feature(self) -> int:  # for symmetry with NativeBooster; the schema says it
        return -1
