"""Settings of the map service: one frozen dataclass, read from ``CIVICMAP_*`` environment variables.

Nothing is read at import time: :func:`civicmap.serve.create_app` builds the settings (from the
environment) when it is not handed them.

========================  ===========================  ==============================================
variable                  field                        meaning (default)
========================  ===========================  ==============================================
CIVICMAP_HOST             host                         interface uvicorn binds (127.0.0.1)
CIVICMAP_PORT             port                         TCP port (8000)
CIVICMAP_BASE_URL         base_url                     public URL prefix for absolute links; default:
                                                       the request's own base URL
CIVICMAP_CORS_ORIGINS     cors_origins                 comma-separated origins allowed by CORS, or
                                                       ``*`` (then without credentials); none = no CORS
CIVICMAP_MAX_ITEMS_LIMIT  max_items_limit              largest page of features (10000); larger
                                                       ``limit`` values are clamped, not refused
CIVICMAP_DEFAULT_LIMIT    default_limit                page size without ``limit`` (10: the published
                                                       OGC API Features 1.0 default)
CIVICMAP_CACHE_BYTES      cache_bytes                  memory tile cache size in bytes (256 MiB)
CIVICMAP_TILE_CACHE_DIR   tile_cache_dir               optional folder for a disk tile cache
CIVICMAP_GZIP_MIN_BYTES   gzip_min_bytes               smallest body sent gzip-compressed (1000)
CIVICMAP_REQUEST_TIMEOUT  request_timeout_s            seconds a tile or feature page may take (30);
                                                       then 503
CIVICMAP_TILE_MAX_AGE     tile_max_age_s               ``Cache-Control: max-age`` of tiles (3600)
CIVICMAP_DATA_MAX_AGE     data_max_age_s               max-age of catalogue and feature responses (60)
CIVICMAP_CATALOG_TTL      catalog_ttl_s                seconds between looks at the store's catalogue
                                                       for new layer versions (2)
CIVICMAP_WEB_DIR          web_dir                      folder of the web pages (map, form) and their
                                                       npm packages; default: ``web/`` of the source
                                                       checkout; pages are not served if it is absent
========================  ===========================  ==============================================
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from civicmap.errors import ConfigError

__all__ = ["ServiceSettings"]

_PREFIX = "CIVICMAP_"
_ENV_NAMES = {
    "request_timeout_s": "REQUEST_TIMEOUT",
    "tile_max_age_s": "TILE_MAX_AGE",
    "data_max_age_s": "DATA_MAX_AGE",
    "catalog_ttl_s": "CATALOG_TTL",
}


@dataclass(frozen=True)
class ServiceSettings:
    """How the map service runs; see the module docstring for each field and its variable."""

    host: str = "127.0.0.1"
    port: int = 8000
    base_url: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_items_limit: int = 10_000
    default_limit: int = 10
    cache_bytes: int = 256 * 1024 * 1024
    tile_cache_dir: Path | None = None
    gzip_min_bytes: int = 1000
    request_timeout_s: float = 30.0
    tile_max_age_s: int = 3600
    data_max_age_s: int = 60
    catalog_ttl_s: float = 2.0
    web_dir: Path | None = None

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append(f"port {self.port} must be in 0..65535")
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                problems.append(f"base_url {self.base_url!r} must be an absolute http(s) URL")
        if not 1 <= self.default_limit <= self.max_items_limit:
            problems.append(
                f"default_limit {self.default_limit} must be in 1..max_items_limit ({self.max_items_limit})"
            )
        for name in ("cache_bytes", "gzip_min_bytes", "tile_max_age_s", "data_max_age_s"):
            if getattr(self, name) < 0:
                problems.append(f"{name} {getattr(self, name)} must not be negative")
        if self.request_timeout_s <= 0 or self.catalog_ttl_s < 0:
            problems.append("request_timeout_s must be > 0 and catalog_ttl_s >= 0")
        if problems:
            raise ConfigError("service settings: " + "; ".join(problems))

    @property
    def cors_allow_credentials(self) -> bool:
        """Credentials are allowed only with an explicit origin list, never with ``*``."""
        return bool(self.cors_origins) and "*" not in self.cors_origins

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServiceSettings:
        """Settings from ``CIVICMAP_*`` variables of ``environ`` (default ``os.environ``), then ``overrides``.

        A value that does not parse raises :class:`~civicmap.errors.ConfigError` naming the variable.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            var = _PREFIX + _ENV_NAMES.get(f.name, f.name.upper())
            text = env.get(var)
            if text is None or text.strip() == "":
                continue
            try:
                values[f.name] = _PARSERS[f.name](text.strip())
            except ValueError as exc:
                raise ConfigError(f"{var}={text!r} is not valid: {exc}") from exc
        return cls(**{**values, **overrides})


def _origins(text: str) -> tuple[str, ...]:
    return tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())


_PARSERS: dict[str, Callable[[str], Any]] = {
    "host": str,
    "port": int,
    "base_url": lambda t: t.rstrip("/"),
    "cors_origins": _origins,
    "max_items_limit": int,
    "default_limit": int,
    "cache_bytes": int,
    "tile_cache_dir": Path,
    "gzip_min_bytes": int,
    "request_timeout_s": float,
    "tile_max_age_s": int,
    "data_max_age_s": int,
    "catalog_ttl_s": float,
    "web_dir": Path,
}
