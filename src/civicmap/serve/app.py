"""The application factory of the map service (FastAPI); nothing is built at import time.

>>> from civicmap.serve import create_app
>>> app = create_app("sample_data/demo")      # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

import uvicorn
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware

import civicmap
from civicmap.errors import ConfigError, InputError
from civicmap.serve._web import install_web
from civicmap.serve.deps import LayerCatalog, ServiceState
from civicmap.serve.errors import REQUEST_ID_HEADER, RequestContextMiddleware, install_error_handlers
from civicmap.serve.routes import ROUTERS, summaries
from civicmap.serve.routes.forms import install_intake
from civicmap.serve.settings import ServiceSettings
from civicmap.store import Store
from civicmap.tiles.cache import TileCache
from civicmap.workspace import open_workspace

__all__ = ["WORKSPACE_ENV", "ServedWorkspace", "create_app", "create_app_from_env", "run"]

log = logging.getLogger(__name__)

#: The project folder a worker process serves (set by :func:`run` for ``workers > 1``).
WORKSPACE_ENV = "CIVICMAP_SERVE_WORKSPACE"


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


def create_app_from_env() -> FastAPI:
    """The app of one uvicorn worker process: the folder in ``CIVICMAP_SERVE_WORKSPACE``, settings from the env."""
    folder = os.environ.get(WORKSPACE_ENV, "")
    if not folder:
        raise ConfigError(f"{WORKSPACE_ENV} is not set; start worker processes with `civicmap serve --workers N`")
    return create_app(folder, ServiceSettings.from_env())


def run(
    workspace_path: str | Path,
    *,
    host: str | None = None,
    port: int | None = None,
    settings: ServiceSettings | None = None,
    log_level: str = "info",
    workers: int = 1,
) -> None:
    """Serve the workspace in folder ``workspace_path`` with uvicorn until interrupted.

    ``host``/``port`` override the settings (default: ``CIVICMAP_HOST``/``CIVICMAP_PORT``, else
    127.0.0.1:8000). ``workers > 1`` starts that many processes on one socket (uvicorn's
    supervisor restarts one that dies), to use more than one CPU: each opens the workspace and its
    intake itself, with its own tile cache, catalogue and anonymous rate limit. Worker processes
    read their settings from the ``CIVICMAP_*`` variables, so other ``settings`` than those
    (apart from host and port) are a :class:`ConfigError`.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers {workers!r} must be a whole number of processes, at least 1")
    base = settings or ServiceSettings.from_env()
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    final = ServiceSettings(**{**base.__dict__, **overrides})
    log.info("serving %s on http://%s:%d (%d worker processes)", workspace_path, final.host, final.port, workers)
    if workers == 1:
        app = create_app(workspace_path, final)
        uvicorn.run(app, host=final.host, port=final.port, log_level=log_level, proxy_headers=True)
        return
    if ServiceSettings.from_env(host=final.host, port=final.port) != final:
        raise ConfigError(
            "with workers > 1 each worker process reads its settings from CIVICMAP_* variables; "
            "set them there instead of passing other settings"
        )
    folder = Path(workspace_path).resolve()
    open_workspace(folder)  # fail here, once, rather than in every worker the supervisor restarts
    os.environ[WORKSPACE_ENV] = str(folder)
    uvicorn.run(
        "civicmap.serve.app:create_app_from_env",
        factory=True,
        workers=workers,
        host=final.host,
        port=final.port,
        log_level=log_level,
        proxy_headers=True,
    )
