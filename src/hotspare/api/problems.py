"""One error shape for every refusal, so operators and peers read failures the same way.

Every non-2xx answer is `{"error": code, "detail": text}`: `error` is a stable machine code a client
can branch on, `detail` tells the operator what is wrong and what to do about it. FastAPI's own
validation and HTTP errors are translated here, so no route ever answers in another shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hotspare.wire import Problem


class ApiError(Exception):
    """Raised by routes to refuse a request with a known code; becomes a `Problem` response."""

    def __init__(
        self, status: int, error: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers


def problem_response(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        Problem(error=error, detail=detail).model_dump(), status_code=status, headers=headers
    )


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    411: "length_required",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
}


def _describe_validation(errors: list[Any]) -> str:
    parts = []
    for item in errors:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_problem_handlers(app: FastAPI) -> None:
    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return problem_response(exc.status, exc.error, exc.detail, exc.headers)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(422, "invalid_request", _describe_validation(list(exc.errors())))

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such route; see /docs or /openapi.json for the API"
        return problem_response(exc.status_code, code, detail, dict(exc.headers or {}) or None)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


# Declared on every route so the OpenAPI spec promises exactly what the server answers.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _problem("missing or wrong bearer token"),
    422: _problem("a parameter has the wrong type or is out of range"),
}
CAMERA_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem("bad camera id or time, or a range longer than the route answers "
                  "(`range_too_large`, see `x-hotspare-limits`)"),
    404: _problem("the camera is not known to this node"),
}
