"""Serves the web UI's static files at `/ui/`, in front of the node's token check.

The page, its CSS, JavaScript and icon (also at `/favicon.ico`, which browsers fetch on their
own) hold no site data, so they are served without the token (a
browser cannot send a bearer header when it opens a page); every call the page makes for data
goes to `/api/v1/...` with the token the operator typed, kept in sessionStorage. hls.js comes
from `web/node_modules` (installed by `scripts/setup` with `npm ci` from `web/package-lock.json`)
and is served at `/ui/vendor/hls.min.js`; when it is missing that path answers 404 and the page
falls back to the browser's native HLS, saying so.

swagger-ui for the API's `/docs` page comes from the same lockfile (`swagger-ui-dist`), so an
offline site can render it; its files are served by the API itself, behind the token like every
API path (`swagger_ui_routes`), since the page they belong to is.
"""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
HLS_JS = WEB_DIR / "node_modules" / "hls.js" / "dist" / "hls.min.js"
SWAGGER_UI_DIR = WEB_DIR / "node_modules" / "swagger-ui-dist"
SWAGGER_UI_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
PREFIX = "/ui"
FAVICON_PATH = "/favicon.ico"

_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class WebUiMiddleware:
    """Answers `/ui` and `/ui/...` itself; passes everything else on to the API unchanged."""

    def __init__(self, app: ASGIApp, static_dir: Path = STATIC_DIR, hls_js: Path = HLS_JS) -> None:
        self.app = app
        self.hls_js = hls_js
        self.static = StaticFiles(directory=static_dir, html=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == FAVICON_PATH and scope.get("method") in ("GET", "HEAD"):
            # Browsers ask for it on their own, without the token: answered here, a 401 in
            # every browser console looked like a failed login.
            await FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml",
                               headers=_HEADERS)(scope, receive, send)
            return
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        response: Response | None = None
        if scope.get("method") not in ("GET", "HEAD"):
            response = PlainTextResponse("the web UI is read-only", status_code=405)
        elif path == PREFIX:
            response = RedirectResponse(PREFIX + "/", status_code=307)
        elif path == PREFIX + "/vendor/hls.min.js":
            response = vendor_file(self.hls_js, "text/javascript", "hls.js")
        if response is not None:
            await response(scope, receive, send)
            return
        inner = dict(scope)
        inner["path"] = path[len(PREFIX):] or "/"
        inner["raw_path"] = inner["path"].encode("utf-8")
        inner["root_path"] = ""

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in _HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.static(inner, receive, send_with_headers)
        except HTTPException as exc:
            # Outside the API app no exception handler turns StaticFiles' "not found" into an
            # answer: without this, every probe of a missing /ui path was a logged 500.
            missing = PlainTextResponse("no such page of the web UI", status_code=exc.status_code,
                                        headers=_HEADERS)
            await missing(scope, receive, send)


def vendor_file(path: Path, media_type: str, package: str) -> Response:
    """A file of an npm package from the lockfile; 404 saying how to install it when absent."""
    if path.is_file():
        return FileResponse(path, media_type=media_type, headers=_HEADERS)
    return PlainTextResponse(f"{package} is not installed (run scripts/setup)", status_code=404)


def swagger_ui_routes(prefix: str, folder: Path = SWAGGER_UI_DIR) -> list[Route]:
    """`prefix/<file>` for each file the docs page loads, to add to the API app."""

    def serve(name: str, media_type: str) -> Route:
        async def endpoint(request: Request) -> Response:
            return vendor_file(folder / name, media_type, "swagger-ui-dist")

        return Route(f"{prefix}/{name}", endpoint, methods=["GET"], include_in_schema=False)

    return [serve(name, media_type) for name, media_type in SWAGGER_UI_FILES.items()]


def mount_web_ui(app: ASGIApp) -> None:
    """Add to a FastAPI/Starlette app last, so it sits outside the bearer-token middleware."""
    app.add_middleware(WebUiMiddleware)  # type: ignore[attr-defined]
