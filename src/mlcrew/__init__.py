"""mlcrew: one system in which a whole ML team works, from raw data to a monitored model.

The public Python API. Heavy parts (DuckDB, LightGBM, FastAPI) load only when used.
"""

from __future__ import annotations

__version__ = "0.1.0"

from mlcrew.errors import (
    CheckFailed,
    DataError,
    MlcrewError,
    ModelInputError,
    NotFoundError,
    ProjectError,
    PromotionRefused,
    SpecError,
    StoreError,
)
from mlcrew.monitoring.monitor import monitor
from mlcrew.pipeline.reproduce import reproduce
from mlcrew.pipeline.runner import Runner
from mlcrew.pipeline.runs import RunResult, list_runs, load_run
from mlcrew.pipeline.stage import StageContext, StageDef, StageResult, check_stage
from mlcrew.pipeline.stages import STAGES
from mlcrew.pipeline.status import status
from mlcrew.project import Project, init_project
from mlcrew.registry import (
    CHALLENGER,
    CHAMPION,
    AliasMove,
    VersionInfo,
    get_version,
    history,
    list_versions,
    promote,
    rollback,
    set_alias,
)
from mlcrew.serving.batch import score_file
from mlcrew.serving.export import export_model
from mlcrew.serving.package import load_package
from mlcrew.serving.predict import Prediction, PredictionService, predict
from mlcrew.spec import Spec, load_spec, parse_spec
from mlcrew.store import Store
from mlcrew.store.verify import verify_store

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "STAGES",
    "AliasMove",
    "CheckFailed",
    "DataError",
    "MlcrewError",
    "ModelInputError",
    "NotFoundError",
    "Prediction",
    "PredictionService",
    "Project",
    "ProjectError",
    "PromotionRefused",
    "RunResult",
    "Runner",
    "Spec",
    "SpecError",
    "StageContext",
    "StageDef",
    "StageResult",
    "Store",
    "StoreError",
    "VersionInfo",
    "__version__",
    "check_stage",
    "export_model",
    "get_version",
    "history",
    "init_project",
    "list_runs",
    "list_versions",
    "load_package",
    "load_run",
    "load_spec",
    "monitor",
    "parse_spec",
    "predict",
    "promote",
    "reproduce",
    "rollback",
    "score_file",
    "set_alias",
    "status",
    "verify_store",
]
