"""A model version's package: the model document joined with what the registry knows of it.

The train stage writes the model document (schema, task, target and its type, classes, library
versions, LightGBM's text model): everything known when the model is fitted, nothing
run-dependent, so re-training gives the same bytes. Metrics, verdict and lineage (run, spec and
data digests) are known only after evaluation and registration, so they live in the registry row.
`load_package` joins the two; `manifest()` is the whole package as one JSON document (what
`mlcrew export` ships beside the model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlcrew.monitoring.reference import DERIVED
from mlcrew.registry.versions import CHAMPION, VersionInfo, get_version
from mlcrew.store import Store
from mlcrew.training.model import TabularModel

MANIFEST_FORMAT = "mlcrew.package/1"


@dataclass(frozen=True)
class ModelPackage:
    info: VersionInfo
    model: TabularModel
    document: bytes  # the model document exactly as stored (its sha256 is info.model_digest)

    @property
    def warnings(self) -> list[str]:
        """Library versions that differ in major from those that trained the model."""
        return list(self.model.environment_warnings_)

    def manifest(self) -> dict[str, Any]:
        m, info = self.model, self.info
        return {
            "format": MANIFEST_FORMAT,
            "name": info.name,
            "version": info.version,
            "model_digest": info.model_digest,
            "task": m.task,
            "target": m.target_,
            "target_type": m.target_type_,
            "classes": m.class_values,
            "input_schema": m.input_schema(),
            "metrics": info.metrics,
            "verdict": info.verdict,
            "lineage": {
                "run_id": info.run_id,
                "spec_digest": info.spec_digest,
                # The data the model was built from; what monitoring derives from it (the
                # reference profile and extras) travels beside it.
                "data": {k: v for k, v in info.data_digests.items() if k not in DERIVED},
                "reference_profile": info.data_digests.get("reference_profile"),
                "reference_extras": info.data_digests.get("reference_extras"),
            },
            "libraries": m.libraries_,
            "created_at": info.created_at,
        }


def load_package(store: Store, name: str, ref: str | int = CHAMPION) -> ModelPackage:
    """The version behind an alias or number, its bytes checked against their digest and parsed
    without running anything from them (JSON and LightGBM text only)."""
    info = get_version(store, name, ref)
    data = store.artifacts.read_bytes(info.model_digest)  # checked against its sha256 here
    model = TabularModel.from_json(data, f"model {name!r} version {info.version}")
    return ModelPackage(info, model, data)
