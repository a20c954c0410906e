"""``/layers`` (tile-layer catalogue) and ``/layers/{layer}/tilejson.json`` (TileJSON 3.0.0)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from civicmap.serve._layer_docs import layer_entry, layer_tilejson
from civicmap.serve._ogc import check_params
from civicmap.serve.deps import State, run_bounded
from civicmap.serve.routes._respond import base_url, json_document

__all__ = ["router"]

router = APIRouter(tags=["tiles"])


@router.get("/layers", summary="Public tile layers")
async def layers(request: Request, state: State) -> Response:
    """Every public layer: id, type, title, legend, version, lon/lat bounds, zooms, tile URL template, TileJSON URL."""
    check_params(request.query_params, ())
    base = base_url(request, state)
    infos = list(state.catalog.infos().values())
    entries = await run_bounded(state, lambda: [layer_entry(base, i, state.catalog) for i in infos])
    return json_document(request, state, entries)


@router.get("/layers/{layer}/tilejson.json", summary="TileJSON 3.0.0 of a layer")
async def layer_tilejson_route(layer: str, request: Request, state: State) -> Response:
    """TileJSON with absolute tile URLs, bounds, zooms, ``vector_layers`` (vector) and attribution."""
    check_params(request.query_params, ())
    info = state.catalog.info(layer)
    doc = await run_bounded(state, layer_tilejson, base_url(request, state), info, state.catalog)
    return json_document(request, state, doc)
