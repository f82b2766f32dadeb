"""Every error is JSON: ``{"error": {"code": "...", "message": "..."}}`` with a fitting status."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from meldpunt.checks import ChecksError
from meldpunt.checks import NotFound as ChecksNotFound
from meldpunt.registry import NotFound as RegistryNotFound
from meldpunt.registry import RegistryError
from meldpunt.signals import SignalError

SIGNAL_STATUS = {
    "file_too_large": 413,
    "image_too_large": 413,
    "not_an_image": 415,
    "corrupt_image": 400,
    "unreadable": 400,
    "invalid_signal": 400,
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), exc.status, headers=exc.headers)

    @app.exception_handler(SignalError)
    async def _signal(request: Request, exc: SignalError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, str(exc)), SIGNAL_STATUS.get(exc.code, 400))

    @app.exception_handler(ChecksError)
    async def _checks(request: Request, exc: ChecksError) -> JSONResponse:
        status = 404 if isinstance(exc, ChecksNotFound) else 400
        return JSONResponse(
            error_body("not_found" if status == 404 else "invalid", str(exc)), status
        )

    @app.exception_handler(RegistryError)
    async def _registry(request: Request, exc: RegistryError) -> JSONResponse:
        status = 404 if isinstance(exc, RegistryNotFound) else 400
        return JSONResponse(
            error_body("not_found" if status == 404 else "invalid", str(exc)), status
        )

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
