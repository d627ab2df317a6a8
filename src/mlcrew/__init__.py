"""mlcrew: one system in which a whole ML team works, from raw data to a monitored model.

The public Python API. Every name but the errors loads on first use (PEP 562), so
`import mlcrew` and every CLI command pay only for what they touch: a server does not import
the pipeline, a `status` does not import LightGBM.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
    TrackingError,
)

if TYPE_CHECKING:
    from mlcrew.experiments.tracking import ActiveRun, start_run
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

# Public name -> the module that defines it.
_LAZY: dict[str, str] = {
    "ActiveRun": "mlcrew.experiments.tracking",
    "start_run": "mlcrew.experiments.tracking",
    "monitor": "mlcrew.monitoring.monitor",
    "reproduce": "mlcrew.pipeline.reproduce",
    "Runner": "mlcrew.pipeline.runner",
    "RunResult": "mlcrew.pipeline.runs",
    "list_runs": "mlcrew.pipeline.runs",
    "load_run": "mlcrew.pipeline.runs",
    "StageContext": "mlcrew.pipeline.stage",
    "StageDef": "mlcrew.pipeline.stage",
    "StageResult": "mlcrew.pipeline.stage",
    "check_stage": "mlcrew.pipeline.stage",
    "STAGES": "mlcrew.pipeline.stages",
    "status": "mlcrew.pipeline.status",
    "Project": "mlcrew.project",
    "init_project": "mlcrew.project",
    "AliasMove": "mlcrew.registry",
    "CHALLENGER": "mlcrew.registry",
    "CHAMPION": "mlcrew.registry",
    "VersionInfo": "mlcrew.registry",
    "get_version": "mlcrew.registry",
    "history": "mlcrew.registry",
    "list_versions": "mlcrew.registry",
    "promote": "mlcrew.registry",
    "rollback": "mlcrew.registry",
    "set_alias": "mlcrew.registry",
    "score_file": "mlcrew.serving.batch",
    "export_model": "mlcrew.serving.export",
    "load_package": "mlcrew.serving.package",
    "Prediction": "mlcrew.serving.predict",
    "PredictionService": "mlcrew.serving.predict",
    "predict": "mlcrew.serving.predict",
    "Spec": "mlcrew.spec",
    "load_spec": "mlcrew.spec",
    "parse_spec": "mlcrew.spec",
    "Store": "mlcrew.store",
    "verify_store": "mlcrew.store.verify",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlcrew' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "STAGES",
    "ActiveRun",
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
    "TrackingError",
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
    "start_run",
    "status",
    "verify_store",
]
