"""How errors become responses, in one place: a missing run/model/report is a 404 with the
library's message; bad input is a 422 shaped {"detail": [{"row", "field", "error"}]}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from mlcrew.errors import ModelInputError, NotFoundError


def _problem(err: dict[str, Any]) -> dict[str, Any]:
    loc = [p for p in err.get("loc", ()) if p != "body"]
    # A row number only where the location is inside `rows` (else an int is a char offset).
    row = loc[1] if len(loc) > 1 and loc[0] == "rows" and isinstance(loc[1], int) else None
    field = ".".join(str(p) for p in loc if not isinstance(p, int)) or "body"
    return {"row": row, "field": field, "error": err.get("msg", "invalid")}


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": [_problem(e) for e in exc.errors()]}, status_code=422)


async def _not_found(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _bad_rows(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ModelInputError)
    return JSONResponse({"detail": exc.problems}, status_code=422)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(ModelInputError, _bad_rows)
