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
    SpecError,
    StoreError,
)
from mlcrew.monitoring.monitor import monitor
from mlcrew.pipeline.runner import Runner, RunResult, load_run, reproduce, status
from mlcrew.pipeline.stage import StageContext, StageDef, StageResult, check_stage
from mlcrew.pipeline.stages import STAGES
from mlcrew.project import Project, init_project
from mlcrew.registry import CHAMPION, VersionInfo, get_version, list_versions, set_alias
from mlcrew.serving.predict import Prediction, PredictionService, predict
from mlcrew.spec import Spec, load_spec, parse_spec
from mlcrew.store import Store

__all__ = [
    "CHAMPION",
    "STAGES",
    "CheckFailed",
    "DataError",
    "MlcrewError",
    "ModelInputError",
    "NotFoundError",
    "Prediction",
    "PredictionService",
    "Project",
    "ProjectError",
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
    "get_version",
    "init_project",
    "list_versions",
    "load_run",
    "load_spec",
    "monitor",
    "parse_spec",
    "predict",
    "reproduce",
    "set_alias",
    "status",
]
