"""JSON errors with field-level messages, never a stack trace.

Shape: {"detail": "<one line>", "errors": [{"field": "title", "message": "..."}]}.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.exc import StaleDataError

from cases.db import DatabaseUnavailable
from cases.kb import KbError
from cases.service import CaseInputError
from cases.state_machine import IllegalTransition

log = logging.getLogger(__name__)


def _field_name(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or "<request>"


def _problem(status: int, detail: str, errors: list[dict[str, str]] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "errors": errors or []}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            message = str(err.get("msg", "invalid"))
            # pydantic prefixes messages from our validators with "Value error, ".
            message = message.removeprefix("Value error, ")
            errors.append({"field": _field_name(tuple(err.get("loc", ()))), "message": message})
        first = errors[0] if errors else {"field": "<request>", "message": "invalid"}
        return _problem(422, f"{first['field']}: {first['message']}", errors)

    @app.exception_handler(CaseInputError)
    async def _case_input(_: Request, exc: CaseInputError) -> JSONResponse:
        return _problem(422, str(exc), [{"field": exc.field, "message": exc.message}])

    @app.exception_handler(KbError)
    async def _kb_input(_: Request, exc: KbError) -> JSONResponse:
        return _problem(422, str(exc), [{"field": exc.field, "message": exc.message}])

    @app.exception_handler(IllegalTransition)
    async def _illegal(_: Request, exc: IllegalTransition) -> JSONResponse:
        return _problem(409, str(exc))

    @app.exception_handler(StaleDataError)
    async def _stale(_: Request, exc: StaleDataError) -> JSONResponse:
        return _problem(409, "the case was changed by someone else; reload and try again")

    @app.exception_handler(DatabaseUnavailable)
    async def _db_down(_: Request, exc: DatabaseUnavailable) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return _problem(503, "database temporarily unavailable; try again shortly")

    @app.exception_handler(OperationalError)
    async def _db_operational(_: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database error: %s", str(exc).splitlines()[0])
        return _problem(503, "database temporarily unavailable; try again shortly")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _problem(500, "internal error; it has been logged")
