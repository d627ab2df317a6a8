"""The OpenAPI document: the framework's routes, one 422 shape everywhere, and the predict
operation with the row schema of the model being served (rebuilt when the champion changes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from mlcrew.api.routers import predict
from mlcrew.api.schemas import Problems
from mlcrew.errors import MlcrewError
from mlcrew.serving.predict import PredictionService

PROBLEMS_REF = {"$ref": "#/components/schemas/Problems"}


def builder(app: FastAPI, service: PredictionService, model: str) -> Callable[[], dict[str, Any]]:
    cache: dict[str, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        try:
            loaded = service.models.get(model)
            key, row = loaded.info.model_digest, loaded.inputs.json_schema()
        except MlcrewError:
            key, row = "", None
        if key in cache:
            return cache[key]
        doc = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            servers=app.servers or None,  # the mount prefix, under `mlcrew server`
        )
        components = doc.setdefault("components", {}).setdefault("schemas", {})
        # FastAPI documents its own 422 shape; ours is {"detail": [{"row", "field", "error"}]}.
        for methods in doc.get("paths", {}).values():
            for op in methods.values():
                bad = op.get("responses", {}).get("422")
                if bad:
                    bad["content"] = {"application/json": {"schema": PROBLEMS_REF}}
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        components["Problems"] = Problems.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components.update(components["Problems"].pop("$defs", {}))
        path, op, schemas = predict.operation(row, service.serving)
        doc["paths"].setdefault(path, {})["post"] = op
        components.update(schemas)
        _document_refusals(doc)
        cache.clear()
        cache[key] = doc
        return doc

    return openapi


def _document_refusals(doc: dict[str, Any]) -> None:
    """401 and 403 on every operation whose route needs an action (people/routes.py)."""
    from mlcrew.people.routes import ROUTES, key

    message = {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}}
    for path, methods in doc.get("paths", {}).items():
        for method, op in methods.items():
            if ROUTES.get(key(method.upper(), path)) is None:
                continue
            responses = op.setdefault("responses", {})
            responses.setdefault(
                "401",
                {"description": "No credentials, or a token that is unknown, expired or "
                 "revoked (sign in, or send Authorization: Bearer TOKEN)", "content": message},
            )  # fmt: skip
            responses.setdefault(
                "403",
                {"description": "The caller's role or token scope lacks this route's action, "
                 "or a session's request came without its CSRF token", "content": message},
            )  # fmt: skip
