"""One error shape for every endpoint: {"detail": [{"row", "field", "error"}]} on bad input."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


def _problem(err: dict[str, Any]) -> dict[str, Any]:
    loc = [p for p in err.get("loc", ()) if p != "body"]
    # A row number only where the location is inside `rows` (else an int is a char offset).
    row = loc[1] if len(loc) > 1 and loc[0] == "rows" and isinstance(loc[1], int) else None
    field = ".".join(str(p) for p in loc if not isinstance(p, int)) or "body"
    return {"row": row, "field": field, "error": err.get("msg", "invalid")}


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": [_problem(e) for e in exc.errors()]}, status_code=422)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
