"""Tiles: XYZ ``/tiles/{layers}/{z}/{x}/{y}.{ext}`` and OGC API Tiles (WebMercatorQuad); rules in ``_tile_requests``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from civicmap.serve._caching import accepts_gzip, cached_response, gzip_bytes, not_modified
from civicmap.serve._ogc import check_params
from civicmap.serve._tile_requests import TileRequest, resolve_tile
from civicmap.serve.deps import ServiceState, State, run_bounded
from civicmap.tiles.vector import MVT_MEDIA_TYPE

__all__ = ["router"]

router = APIRouter(tags=["tiles"])
_TILE_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {MVT_MEDIA_TYPE: {}, "image/png": {}, "image/jpeg": {}, "image/webp": {}}},
    204: {"description": "empty tile"},
    304: {"description": "not modified (If-None-Match)"},
    400: {"description": "z, x or y is not an integer"},
    404: {"description": "unknown layer, wrong format for the layer, or tile outside the grid / zoom range"},
}


async def _answer(request: Request, state: ServiceState, tile: TileRequest) -> Response:
    max_age = state.settings.tile_max_age_s
    cached = not_modified(request, tile.etag, max_age_s=max_age)
    if cached is not None:
        return cached
    cache = state.cache
    if tile.media_type == MVT_MEDIA_TYPE and accepts_gzip(request):  # gzip cached beside the plain tile
        key = tile.key._replace(format=f"{tile.key.format}.gz")
        body = await run_bounded(
            state, cache.get_or_render, key, lambda: gzip_bytes(cache.get_or_render(tile.key, tile.render))
        )
        return cached_response(
            request, body, media_type=tile.media_type, etag=tile.etag, max_age_s=max_age, gzipped=True
        )
    body = await run_bounded(state, cache.get_or_render, tile.key, tile.render)
    return cached_response(request, body, media_type=tile.media_type, etag=tile.etag, max_age_s=max_age)


@router.get("/tiles/{layers}/{z}/{x}/{y}.{ext}", summary="XYZ tile", responses=_TILE_RESPONSES)
async def xyz_tile(layers: str, z: str, x: str, y: str, ext: str, request: Request, state: State) -> Response:
    """MVT of one or several vector layers (``a,b``) or an image of a raster; 204 when empty."""
    check_params(request.query_params, ())
    return await _answer(request, state, resolve_tile(state.catalog, layers, z, x, y, ext))


@router.get(
    "/collections/{collection_id}/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}",
    summary="OGC API Tiles tile (WebMercatorQuad)",
    responses=_TILE_RESPONSES,
)
async def ogc_tile(
    collection_id: str,
    tileMatrix: str,  # noqa: N803 - OGC API Tiles template variable names
    tileRow: str,  # noqa: N803
    tileCol: str,  # noqa: N803
    request: Request,
    state: State,
    f: Annotated[
        str | None, Query(description="mvt (vector), png, webp or jpg (imagery); default by layer kind")
    ] = None,
) -> Response:
    """The tile at zoom ``tileMatrix``, row ``tileRow`` (y) and column ``tileCol`` (x)."""
    check_params(request.query_params, ("f",))
    return await _answer(request, state, resolve_tile(state.catalog, collection_id, tileMatrix, tileCol, tileRow, f))
