"""HTTP status codes for civicmap errors: the ONE place where the error tree meets HTTP.

:data:`STATUS_CODES` maps error classes to statuses; an exception takes the status of the first
class of its MRO found there. 4xx bodies are OGC API exception documents
``{"code", "description"}`` with the error's message (written for the caller). 5xx bodies are
``{"code", "request_id"}`` only; the details go to the log under that request id.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from civicmap.errors import (
    AuthError,
    CivicmapError,
    ConfigError,
    ConflictError,
    ForbiddenError,
    InputError,
    MediaTypeError,
    NotFoundError,
    RateLimitError,
    StoreError,
    SubmissionError,
    TooLargeError,
)

__all__ = [
    "REQUEST_ID_HEADER",
    "STATUS_CODES",
    "RequestContextMiddleware",
    "error_response",
    "install_error_handlers",
    "status_for",
]

log = logging.getLogger(__name__)

#: Error class -> HTTP status (most specific classes first; the MRO decides).
STATUS_CODES: dict[type[BaseException], int] = {
    ConfigError: 500,  # the service's own project file: not the caller's fault
    NotFoundError: 404,
    SubmissionError: 422,
    TooLargeError: 413,
    MediaTypeError: 415,
    InputError: 400,
    ForbiddenError: 403,
    AuthError: 401,
    ConflictError: 409,
    RateLimitError: 429,
    StoreError: 500,
    TimeoutError: 503,
    CivicmapError: 500,
}
#: OGC API exception ``code`` per status.
_CODES = {
    400: "InvalidParameterValue",
    404: "NotFound",
    405: "MethodNotAllowed",
    401: "Unauthorized",
    403: "Forbidden",
    406: "NotAcceptable",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "UnprocessableContent",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}
REQUEST_ID_HEADER = "X-Request-ID"


def status_for(exc: BaseException) -> int:
    """The HTTP status of an exception (500 when no class of its MRO is mapped)."""
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return 500


def _request_id(scope: Scope) -> str:
    state = scope.get("state") or {}
    return str(state.get("request_id", "-"))


def error_response(status: int, description: str, request_id: str) -> JSONResponse:
    """The JSON error body for ``status``: a description for 4xx, only the request id for 5xx."""
    code = _CODES.get(status, "InternalError" if status >= 500 else "BadRequest")
    body: dict[str, Any] = {"code": code, "request_id": request_id}
    if status < 500:
        body = {"code": code, "description": description}
    headers = {REQUEST_ID_HEADER: request_id, "Cache-Control": "no-store"}
    if status == 503:
        headers["Retry-After"] = "5"
    return JSONResponse(body, status_code=status, headers=headers)


async def _civicmap_error(request: Request, exc: Exception) -> JSONResponse:
    status = status_for(exc)
    rid = _request_id(request.scope)
    if status >= 500:
        log.error("request %s %s failed (%d): %s", rid, request.url.path, status, exc, exc_info=exc)
    response = error_response(status, str(exc), rid)
    if isinstance(exc, SubmissionError):  # every problem, one object each (RowError fields)
        problems = [{"field": p.field, "value": p.value, "problem": p.problem} for p in exc.problems]
        body = {"code": "UnprocessableContent", "description": str(exc), "problems": problems}
        response = JSONResponse(body, status_code=status, headers={REQUEST_ID_HEADER: rid, "Cache-Control": "no-store"})
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="civicmap"'
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "request"
        parts.append(f"{where}: {err.get('msg')} (got {err.get('input')!r})")
    return error_response(400, "; ".join(parts), _request_id(request.scope))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    response = error_response(exc.status_code, str(exc.detail), _request_id(request.scope))
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers: civicmap errors and timeouts by :data:`STATUS_CODES`, framework errors."""
    app.add_exception_handler(CivicmapError, _civicmap_error)
    app.add_exception_handler(TimeoutError, _civicmap_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


class RequestContextMiddleware:
    """Gives every request an id (``X-Request-ID`` on every response) and turns escaped errors into 500s.

    An incoming ``X-Request-ID`` of up to 64 letters, digits and ``-`` is kept; otherwise a new one
    is made. An exception that no handler took is logged with the request id and answered with a
    500 body holding only that id (if the response had not started yet).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(REQUEST_ID_HEADER.lower().encode(), b"").decode("latin-1")
        ok = 0 < len(given) <= 64 and given.replace("-", "").isalnum() and given.isascii()
        rid = given if ok else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            log.exception("request %s %s failed: %s", rid, scope.get("path"), exc)
            if started:
                raise
            await error_response(status_for(exc), "", rid)(scope, receive, send_with_id)
