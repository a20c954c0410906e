"""The application factory of the map service (FastAPI); nothing is built at import time.

>>> from civicmap.serve import create_app
>>> app = create_app("sample_data/demo")      # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

import uvicorn
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware

import civicmap
from civicmap.serve._web import install_web
from civicmap.serve.deps import LayerCatalog, ServiceState
from civicmap.serve.errors import REQUEST_ID_HEADER, RequestContextMiddleware, install_error_handlers
from civicmap.serve.routes import ROUTERS, summaries
from civicmap.serve.routes.forms import install_intake
from civicmap.serve.settings import ServiceSettings
from civicmap.store import Store
from civicmap.tiles.cache import TileCache
from civicmap.workspace import open_workspace

__all__ = ["ServedWorkspace", "create_app", "run"]

log = logging.getLogger(__name__)


class ServedWorkspace(Protocol):
    """What the service needs of a workspace: a name and a store (a :class:`~civicmap.Workspace` has both)."""

    @property
    def name(self) -> str:
        """The workspace's name (the API's title)."""
        ...

    store: Store


def _workspace(workspace: ServedWorkspace | str | Path) -> ServedWorkspace:
    if isinstance(workspace, str | Path):
        return open_workspace(workspace)
    return workspace


def create_app(workspace: ServedWorkspace | str | Path, settings: ServiceSettings | None = None) -> FastAPI:
    """The map service for ``workspace`` (a Workspace or a project folder).

    ``settings`` default to :meth:`ServiceSettings.from_env`, read here. Serves the public layers
    of the workspace's store: tiles, TileJSON, OGC API Features (GeoJSON in EPSG:4326 lon/lat).
    """
    settings = settings or ServiceSettings.from_env()
    ws = _workspace(workspace)
    cache = TileCache(settings.cache_bytes, directory=settings.tile_cache_dir)
    catalog = LayerCatalog(ws.store, ttl_s=settings.catalog_ttl_s, on_new_version=cache.prune)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        catalog.close()

    app = FastAPI(
        title=f"civicmap: {ws.name}",
        version=civicmap.__version__,
        description="Map tiles (MVT, PNG), TileJSON 3.0.0 and OGC API - Features of a civicmap workspace.",
        lifespan=lifespan,
        docs_url=None,  # /docs from install_web: Swagger UI from npm, no CDN
        redoc_url=None,
    )
    app.state.civicmap_workspace = ws
    app.state.civicmap = ServiceState(settings=settings, name=ws.name, catalog=catalog, cache=cache)
    install_error_handlers(app)
    app.add_middleware(GZipMiddleware, minimum_size=settings.gzip_min_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "HEAD", "OPTIONS"],
            allow_headers=["If-None-Match", "Accept", "Accept-Encoding", REQUEST_ID_HEADER],
            expose_headers=["ETag", REQUEST_ID_HEADER],
        )
    app.add_middleware(RequestContextMiddleware)  # outermost: every response carries X-Request-ID
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(summaries.router)
    install_intake(app, ws, cache, catalog)  # survey intake routes, when ws is a project folder
    install_web(app, settings.web_dir)  # /map/, /form/, /vendor/, /docs
    return app


def run(
    workspace_path: str | Path,
    *,
    host: str | None = None,
    port: int | None = None,
    settings: ServiceSettings | None = None,
    log_level: str = "info",
) -> None:
    """Serve the workspace in folder ``workspace_path`` with uvicorn until interrupted.

    ``host``/``port`` override the settings (default: ``CIVICMAP_HOST``/``CIVICMAP_PORT``, else
    127.0.0.1:8000).
    """
    base = settings or ServiceSettings.from_env()
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    final = ServiceSettings(**{**base.__dict__, **overrides})
    app = create_app(workspace_path, final)
    log.info("serving %s on http://%s:%d", workspace_path, final.host, final.port)
    uvicorn.run(app, host=final.host, port=final.port, log_level=log_level, proxy_headers=True)
