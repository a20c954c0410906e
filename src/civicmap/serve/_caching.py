"""Cacheable responses: strong ETags, ``If-None-Match`` -> 304, ``Cache-Control``, deterministic gzip."""

from __future__ import annotations

import gzip
import hashlib
from typing import Any

from fastapi import Request, Response

import civicmap

__all__ = ["accepts_gzip", "cached_response", "etag_for", "gzip_bytes", "json_etag", "not_modified"]

#: zlib level of gzip-encoded responses.
GZIP_LEVEL = 6


def etag_for(*parts: Any) -> str:
    """A strong ETag (quoted) from the parts that determine a response's bytes (and the civicmap version)."""
    text = "\x1f".join(map(str, (civicmap.__version__, *parts)))
    digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return f'"{digest}"'


def accepts_gzip(request: Request) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (``q=0`` refuses it)."""
    for item in request.headers.get("accept-encoding", "").split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=").strip() if params.strip().startswith("q=") else "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


def _matches(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    if header.strip() == "*":
        return True
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return etag in tags


def not_modified(request: Request, etag: str, *, max_age_s: int) -> Response | None:
    """304 when ``If-None-Match`` holds ``etag`` or its gzip variant (checked before any work), else None."""
    for tag in (etag, etag[:-1] + '-gz"'):
        if _matches(request, tag):
            headers = {"ETag": tag, "Cache-Control": f"public, max-age={max_age_s}", "Vary": "Accept-Encoding"}
            return Response(status_code=304, headers=headers)
    return None


def cached_response(
    request: Request,
    body: bytes | None,
    *,
    media_type: str,
    etag: str,
    max_age_s: int,
    gzip_min_bytes: int | None = None,
    gzipped: bool = False,
) -> Response:
    """A response with ``ETag`` and ``Cache-Control: public, max-age``; 304 when the client has it.

    ``body`` None or ``b""`` gives 204 (empty tile). With ``gzip_min_bytes`` set and a client that
    accepts gzip, bodies of at least that size are sent gzip-encoded (``mtime`` 0, so the bytes are
    deterministic) under their own ETag (suffix ``-gz``), with ``Vary: Accept-Encoding``.
    ``gzipped``: ``body`` is already gzip-compressed (see :func:`gzip_bytes`).
    """
    headers = {"Cache-Control": f"public, max-age={max_age_s}"}
    zipped = bool(body) and gzip_min_bytes is not None and len(body or b"") >= gzip_min_bytes and accepts_gzip(request)
    if gzip_min_bytes is not None or gzipped:
        headers["Vary"] = "Accept-Encoding"
    if zipped or (gzipped and body):
        etag = etag[:-1] + '-gz"'
        headers["Content-Encoding"] = "gzip"
    headers["ETag"] = etag
    if _matches(request, etag):
        return Response(status_code=304, headers=headers)
    if not body:
        return Response(status_code=204, headers=headers)
    data = gzip_bytes(body) if zipped else body
    return Response(data, media_type=media_type, headers=headers)


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip (``mtime`` 0) of ``data``; ``b""`` stays ``b""`` (an empty tile)."""
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0) if data else b""


def json_etag(body: bytes) -> str:
    """Strong ETag of a (small) JSON body from its bytes."""
    return etag_for(hashlib.blake2b(body, digest_size=16).hexdigest())
