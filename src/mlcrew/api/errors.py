"""How errors become responses, in one place: a missing run/model/report is a 404 with the
library's message, a request over a limit a 413, an unreachable store or database a 503; bad
input is a 422
shaped {"detail": [{"row", "field", "error"}]}. No message echoes more than an excerpt."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from mlcrew.api.fastpath import ERROR_STATUS, status_of
from mlcrew.errors import AuthError, ModelInputError

MAX_MESSAGE = 500


def _problem(err: dict[str, Any]) -> dict[str, Any]:
    loc = [p for p in err.get("loc", ()) if p not in ("body", "query", "path")]
    # A row number only where the location is inside `rows` (else an int is a char offset).
    row = loc[1] if len(loc) > 1 and loc[0] == "rows" and isinstance(loc[1], int) else None
    field = ".".join(str(p) for p in loc if not isinstance(p, int)) or "body"
    return {"row": row, "field": field[:100], "error": str(err.get("msg", "invalid"))[:300]}


def _detail(exc: Exception, status: int) -> JSONResponse:
    text = str(exc)
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + "..."
    return JSONResponse({"detail": text}, status_code=status)


async def _by_status(_request: Request, exc: Exception) -> JSONResponse:
    return _detail(exc, status_of(exc) or 500)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse({"detail": [_problem(e) for e in errors]}, status_code=422)


async def _database_down(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {
            "detail": f"the metadata database cannot be reached ({exc.__class__.__name__}); "
            "check store.db or MLCREW_DB_URL"
        },
        status_code=503,
    )


async def _bad_rows(_request: Request, exc: Exception) -> JSONResponse:
    problems = exc.problems if isinstance(exc, ModelInputError) else []
    return JSONResponse({"detail": problems}, status_code=422)


async def _unauthorised(_request: Request, exc: Exception) -> JSONResponse:
    response = _detail(exc, 401)
    response.headers["www-authenticate"] = 'Bearer realm="mlcrew"'
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    """The framework's own refusals, in our shapes: a body that is not JSON text at all is a
    422 like any bad body; a 405 names every method the path has (the table of routes in
    people/routes.py), not only the first route's."""
    from fastapi.exception_handlers import http_exception_handler
    from starlette.exceptions import HTTPException

    if not isinstance(exc, HTTPException):
        raise exc
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        problem = {"row": None, "field": "body", "error": "invalid JSON: not UTF-8 JSON text"}
        return JSONResponse({"detail": [problem]}, status_code=422)
    if exc.status_code == 405:
        from mlcrew.people.routes import allowed_methods

        methods = allowed_methods(request.url.path)
        if methods:
            exc = HTTPException(405, exc.detail, {**(exc.headers or {}), "allow": methods})
    return await http_exception_handler(request, exc)


def install(app: FastAPI) -> None:
    from starlette.exceptions import HTTPException

    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for error, _status in ERROR_STATUS:
        app.add_exception_handler(error, _by_status)
    app.add_exception_handler(ModelInputError, _bad_rows)
    app.add_exception_handler(SQLAlchemyError, _database_down)
    app.add_exception_handler(AuthError, _unauthorised)
