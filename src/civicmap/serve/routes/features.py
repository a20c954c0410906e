"""OGC API - Features Part 1 Core: landing page, conformance, collections, items, item (rules in ``_ogc``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from civicmap.errors import NotFoundError
from civicmap.serve import _ogc
from civicmap.serve._caching import cached_response, etag_for, not_modified
from civicmap.serve._feature_writer import GEOJSON_MEDIA_TYPE
from civicmap.serve.deps import State, run_bounded
from civicmap.serve.routes._respond import base_url, json_document

__all__ = ["router"]

router = APIRouter(tags=["OGC API Features"])
Format = Annotated[str | None, Query(description="output format: json (the only one offered)")]


class ItemsParams(BaseModel):
    """Query parameters of ``/collections/{id}/items`` (checked further by ``_ogc.parse_items_query``)."""

    bbox: str | None = Field(None, description="west,south,east,north (or 6 numbers with heights), CRS84")
    limit: int | None = Field(None, ge=1, description="page size; values over the server maximum are clamped")
    offset: int | None = Field(None, ge=0, description="features to skip")
    f: str | None = Field(None, description="output format: json (GeoJSON)")
    bbox_crs: str | None = Field(None, alias="bbox-crs", description="only CRS84 is supported")
    datetime: str | None = Field(None, description="accepted; layers have no time property, so all features match")


@router.get("/", summary="Landing page")
def landing(request: Request, state: State, f: Format = None) -> Response:
    """Links to the API description, documentation, conformance and collections."""
    _ogc.check_params(request.query_params, ("f",))
    _ogc.check_format(f)
    return json_document(request, state, _ogc.landing_doc(base_url(request, state), state.name))


@router.get("/conformance", summary="Conformance classes")
def conformance(request: Request, state: State, f: Format = None) -> Response:
    """The conformance classes implemented (Features core, GeoJSON, OAS 3.0; Tiles core)."""
    _ogc.check_params(request.query_params, ("f",))
    _ogc.check_format(f)
    return json_document(request, state, {"conformsTo": list(_ogc.CONFORMANCE)})


@router.get("/collections", summary="Feature collections")
def collections(request: Request, state: State, f: Format = None) -> Response:
    """Every public vector layer as a collection."""
    _ogc.check_params(request.query_params, ("f",))
    _ogc.check_format(f)
    doc = _ogc.collections_doc(base_url(request, state), state.catalog.infos().values())
    return json_document(request, state, doc)


@router.get("/collections/{collection_id}", summary="One feature collection")
def collection(collection_id: str, request: Request, state: State, f: Format = None) -> Response:
    """Extent (CRS84) and links of one collection; 404 for unknown, private or raster layers."""
    _ogc.check_params(request.query_params, ("f",))
    _ogc.check_format(f)
    info = state.catalog.info(collection_id)
    if info.kind != "vector":
        raise NotFoundError(f"{collection_id!r} is a raster layer: it has tiles, not feature items")
    return json_document(request, state, _ogc.collection_doc(base_url(request, state), info))


@router.get("/collections/{collection_id}/items", summary="Features of a collection")
async def items(
    collection_id: str, request: Request, state: State, params: Annotated[ItemsParams, Query()]
) -> Response:
    """A page of GeoJSON features (RFC 7946) with numberMatched, numberReturned, timeStamp and paging links."""
    _ogc.check_params(request.query_params, _ogc.ITEMS_PARAMS)
    s = state.settings
    p = params
    query = _ogc.parse_items_query(
        bbox=p.bbox, limit=p.limit, offset=p.offset, f=p.f, bbox_crs=p.bbox_crs,
        default_limit=s.default_limit, max_limit=s.max_items_limit,
    )  # fmt: skip
    info = state.catalog.info(collection_id)
    url = f"{base_url(request, state)}/collections/{collection_id}/items"
    extra = {k: v for k, v in (("f", p.f), ("datetime", p.datetime)) if v is not None}
    etag = etag_for("items", collection_id, info.version, url, query, sorted(extra.items()))
    cached = not_modified(request, etag, max_age_s=s.data_max_age_s)
    if cached is not None:
        return cached
    body = await run_bounded(state, lambda: _ogc.items_page(state.catalog.vector(collection_id), query, url, extra))
    return cached_response(
        request, body, media_type=GEOJSON_MEDIA_TYPE, etag=etag, max_age_s=s.data_max_age_s,
        gzip_min_bytes=s.gzip_min_bytes,
    )  # fmt: skip


@router.get("/collections/{collection_id}/items/{feature_id}", summary="One feature")
async def item(collection_id: str, feature_id: str, request: Request, state: State, f: Format = None) -> Response:
    """One GeoJSON feature by id (the layer's index value); 404 when absent."""
    _ogc.check_params(request.query_params, ("f",))
    _ogc.check_format(f)
    s = state.settings
    info = state.catalog.info(collection_id)
    url = f"{base_url(request, state)}/collections/{collection_id}/items/{feature_id}"
    etag = etag_for("item", collection_id, info.version, url)
    cached = not_modified(request, etag, max_age_s=s.data_max_age_s)
    if cached is not None:
        return cached
    body = await run_bounded(state, lambda: _ogc.item_doc(state.catalog.vector(collection_id), feature_id, url))
    return cached_response(
        request, body, media_type=GEOJSON_MEDIA_TYPE, etag=etag, max_age_s=s.data_max_age_s,
        gzip_min_bytes=s.gzip_min_bytes,
    )  # fmt: skip
