"""Shared response helpers of the routes: base URL and cacheable JSON documents."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request, Response

from civicmap.serve._caching import cached_response, json_etag
from civicmap.serve.deps import ServiceState

__all__ = ["base_url", "json_document"]


def base_url(request: Request, state: ServiceState) -> str:
    """Prefix of absolute links: ``settings.base_url`` or the request's own base URL, without trailing /."""
    return (state.settings.base_url or str(request.base_url)).rstrip("/")


def json_document(request: Request, state: ServiceState, doc: Any, *, media_type: str = "application/json") -> Response:
    """``doc`` as compact JSON with a strong ETag of its bytes, ``Cache-Control`` and gzip when accepted."""
    body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    settings = state.settings
    return cached_response(
        request,
        body,
        media_type=media_type,
        etag=json_etag(body),
        max_age_s=settings.data_max_age_s,
        gzip_min_bytes=settings.gzip_min_bytes,
    )
