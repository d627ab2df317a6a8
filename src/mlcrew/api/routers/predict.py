"""`POST /v1/models/{name}/predict`: its OpenAPI operation. The route itself is answered by the
service's outer layer (api/fastpath.py), which skips the framework on the hot path; this module
declares what it accepts and every status it returns, with the row schema of the served model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from mlcrew.api.fastpath import MAX_NAME, PREDICT_ROUTE
from mlcrew.api.schemas import Message, Problems
from mlcrew.registry.versions import ALIAS_PATTERN as ALIAS
from mlcrew.registry.versions import MAX_VERSION
from mlcrew.spec import Serving


class ModelRef(BaseModel):
    name: str
    version: int


class InputWarning(BaseModel):
    row: int
    field: str
    warning: str


class PredictResponse(BaseModel):
    predictions: list[float | int | str | bool | None] = Field(
        description="One prediction per row, in order: a number (regression) or a class label."
    )
    model: ModelRef
    warnings: list[InputWarning] = Field(
        description="Values unlike anything in training (unseen categories, out-of-range "
        "numbers, allowed missing values): the prediction is made, but is less reliable."
    )


ANY_ROW: dict[str, Any] = {"type": "object", "description": "One row: feature name to value."}


def operation(
    row: dict[str, Any] | None, serving: Serving
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(path, operation, component schemas) of predict, for the served model's row schema."""
    components: dict[str, Any] = {}
    for model in (PredictResponse, Problems, Message):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    components["PredictRow"] = row or ANY_ROW
    components["PredictRequest"] = {
        "type": "object",
        "title": "PredictRequest",
        "required": ["rows"],
        "additionalProperties": False,
        "properties": {
            "rows": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/components/schemas/PredictRow"},
                "description": f"Input rows, one object per row (at most {serving.max_rows}).",
            }
        },
    }

    def ref(name: str, description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }

    op = {
        "tags": ["models"],
        "summary": "Predict",
        "operationId": "predict",
        "description": (
            "Predict for each row with the model behind `alias` (default: champion) or "
            "`version`. Unknown fields, the target column and (unless `serving.allow_nulls`) "
            "nulls where training had none are refused. Every prediction is written to the "
            "prediction log; a `challenger` alias, if set, scores the same rows in the shadow."
        ),
        "parameters": [
            {
                "name": "name",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "maxLength": MAX_NAME, "title": "Name"},
            },
            {
                "name": "alias",
                "in": "query",
                "required": False,
                "description": "An alias such as champion or challenger (default: champion).",
                "schema": {"type": "string", "pattern": f"^{ALIAS.pattern}$", "title": "Alias"},
            },
            {
                "name": "version",
                "in": "query",
                "required": False,
                "description": "A version number (with `alias`, the alias must hold it).",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_VERSION,
                    "title": "Version",
                },
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}
            },
        },
        "responses": {
            "200": ref("PredictResponse", "One prediction per row"),
            "404": ref("Message", "No such model, alias or version"),
            "413": ref(
                "Message",
                f"More than serving.max_rows ({serving.max_rows}) rows, or a body over "
                f"serving.max_body_bytes ({serving.max_body_bytes})",
            ),
            "415": ref("Message", "Body not sent as application/json"),
            "422": ref("Problems", "Invalid JSON, parameters or rows (each problem named)"),
            "503": ref("Message", "The model registry or the model cannot be reached"),
        },
    }
    return PREDICT_ROUTE, op, components
