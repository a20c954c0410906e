"""The web pages of the service: the risk map at ``/map/``, the survey form at ``/form/``, ``/docs``.

The pages are static files of the ``web/`` folder (``web/map``, ``web/form``); their JavaScript
dependencies come from npm (``web/node_modules``, installed by ``scripts/setup``) and are served
under ``/vendor/``: nothing loads from a CDN. Pages carry a Content-Security-Policy that allows
only this origin (plus ``data:``/``blob:`` images and ``blob:`` workers, which MapLibre GL uses).

``web_dir``: :attr:`ServiceSettings.web_dir <civicmap.serve.settings.ServiceSettings.web_dir>`
(``CIVICMAP_WEB_DIR``), else the ``web/`` folder of the source checkout when it exists.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from civicmap.errors import ConfigError

__all__ = ["CONTENT_SECURITY_POLICY", "PAGES", "VENDOR", "default_web_dir", "install_web"]

log = logging.getLogger(__name__)

#: The policy of every page and vendored file (MapLibre GL needs blob: workers and images).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; worker-src 'self' blob:; child-src 'self' blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
#: URL prefix -> page folder inside ``web_dir``.
PAGES = {"/map": "map", "/form": "form"}
#: URL prefix -> npm package folder inside ``web_dir/node_modules`` (only the dist files are served).
VENDOR = {
    "/vendor/maplibre-gl": "maplibre-gl/dist",
    "/vendor/swagger-ui": "swagger-ui-dist",
}
_SWAGGER = "/vendor/swagger-ui"


class _SecuredFiles(StaticFiles):
    """Static files with the page security headers and a cache policy."""

    def __init__(self, directory: Path, *, max_age_s: int) -> None:
        super().__init__(directory=directory, html=True)
        self.max_age_s = max_age_s

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = f"max-age={self.max_age_s}" if self.max_age_s else "no-cache"
        return response


def default_web_dir() -> Path | None:
    """The ``web/`` folder next to ``src/`` in a source checkout, or None (installed wheel)."""
    candidate = Path(__file__).resolve().parents[3] / "web"
    return candidate if (candidate / "map" / "index.html").is_file() else None


def _web_dir(configured: Path | None) -> Path | None:
    if configured is None:
        return default_web_dir()
    if not (configured / "map" / "index.html").is_file():
        raise ConfigError(
            f"CIVICMAP_WEB_DIR={str(configured)!r} has no map/index.html; point it at the repository's "
            "web/ folder, or unset it to serve no web pages"
        )
    return configured


def install_web(app: FastAPI, configured: Path | None) -> Path | None:
    """Mount the pages and their npm packages and add ``/docs``; returns the web folder used (or None)."""
    web = _web_dir(configured)
    vendor_ok = web is not None and (web / "node_modules" / VENDOR[_SWAGGER]).is_dir()
    _add_docs(app, swagger=vendor_ok)
    if web is None:
        log.info("no web/ folder: the map and form pages are not served (set CIVICMAP_WEB_DIR)")
        return None
    for prefix, folder in PAGES.items():
        if (web / folder).is_dir():
            app.mount(prefix, _SecuredFiles(web / folder, max_age_s=0), name=f"web{prefix.replace('/', '_')}")
    for prefix, folder in VENDOR.items():
        path = web / "node_modules" / folder
        if path.is_dir():
            app.mount(prefix, _SecuredFiles(path, max_age_s=86_400), name=f"vendor{prefix.replace('/', '_')}")
        else:
            log.warning("%s is missing: run scripts/setup (npm ci in web/) to serve %s", path, prefix)
    return web


def _add_docs(app: FastAPI, *, swagger: bool) -> None:
    """``/docs``: Swagger UI from the npm package, or a page that says how to install it."""

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        openapi_url = request.scope.get("root_path", "") + (app.openapi_url or "/openapi.json")
        if not swagger:
            return HTMLResponse(
                "<!doctype html><title>API documentation</title><p>Swagger UI is not installed "
                "(run <code>scripts/setup</code>, which runs <code>npm ci</code> in <code>web/</code>). "
                f'The OpenAPI document is at <a href="{openapi_url}">{openapi_url}</a>.</p>'
            )
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API documentation",
            swagger_js_url=f"{_SWAGGER}/swagger-ui-bundle.js",
            swagger_css_url=f"{_SWAGGER}/swagger-ui.css",
            swagger_favicon_url=f"{_SWAGGER}/favicon-32x32.png",
        )
