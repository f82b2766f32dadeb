"""Every error is JSON: ``{"error": {"code": "...", "message": "..."}}`` with a fitting status.

One rule covers every error a room raises: a ``MeldpuntError`` answers its own ``status`` and
``code`` (``meldpunt/errors.py``). ``ApiError`` is the same for what only the API decides (keys,
roles, request shapes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from meldpunt.errors import MeldpuntError


class ApiError(MeldpuntError):
    """An error with its status and code given where it is raised."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message, status=status, code=code, headers=headers)


@dataclass(frozen=True)
class ItemError:
    """Why one item of a check (a JSON item, an uploaded file) could not be checked (in full):
    it is answered in that item's result, and the request's other items are checked."""

    code: str
    message: str
    #: what the item's error would answer on its own (a route that cannot answer per item)
    status: int = 400


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def describe(exc: Exception) -> tuple[int, dict[str, Any], dict[str, str] | None] | None:
    """Status, JSON body and headers for the errors meldpunt answers itself, else None."""
    if isinstance(exc, MeldpuntError):
        return exc.status, error_body(exc.code, exc.message), exc.headers
    return None


def install(app: FastAPI) -> None:
    async def _known(request: Request, exc: Exception) -> JSONResponse:
        status, body, headers = describe(exc) or (500, error_body("internal", "error"), None)
        return JSONResponse(body, status, headers=headers)

    app.add_exception_handler(MeldpuntError, _known)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        message = "; ".join(f"{p['where']}: {p['problem']}" for p in problems[:5])
        return JSONResponse(error_body("invalid_request", message, problems=problems[:50]), 422)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client hung up while sending; nobody is left to answer (nginx's 499).
        return Response(status_code=499)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)
