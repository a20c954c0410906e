"""The tile-layer catalogue (``/layers``) and TileJSON documents of the served layers."""

from __future__ import annotations

from typing import Any

from civicmap.serve.deps import VECTOR_MAXZOOM, LayerCatalog, legend_for, raster_profile
from civicmap.store import LayerInfo
from civicmap.tiles.colormaps import HAZARD_CLASSES
from civicmap.tiles.tilejson import TileSetMeta, tilejson

__all__ = ["OSM_ATTRIBUTION", "attribution", "layer_entry", "layer_tilejson"]

OSM_ATTRIBUTION = "© OpenStreetMap contributors"
#: A column of this name holds hazard classes 0..4 (coloured with ``HAZARD_CLASSES``).
HAZARD_COLUMN = "hazard_class"


def attribution(info: LayerInfo) -> str | None:
    """``© OpenStreetMap contributors`` for layers whose licence names ODbL or OpenStreetMap."""
    licence = str((info.provenance or {}).get("licence") or "")
    return OSM_ATTRIBUTION if any(k in licence.lower() for k in ("odbl", "openstreetmap")) else None


def _zooms(info: LayerInfo) -> tuple[int, int, str]:
    if info.kind == "vector":
        return 0, VECTOR_MAXZOOM, "mvt"
    profile = raster_profile(info)
    return profile.minzoom, profile.maxzoom, profile.formats[0]


def _tiles_url(base: str, info: LayerInfo) -> str:
    return f"{base}/tiles/{info.name}/{{z}}/{{x}}/{{y}}.{_zooms(info)[2]}"


def layer_entry(base: str, info: LayerInfo, catalog: LayerCatalog) -> dict[str, Any]:
    """One ``/layers`` entry: id, type, title, legend, version, lon/lat bounds, zooms, URLs, fields (vector)."""
    minzoom, maxzoom, _ = _zooms(info)
    entry: dict[str, Any] = {
        "id": info.name,
        "type": info.kind,
        "title": info.name.replace("_", " ").capitalize(),
        "version": info.version,
        "updated_at": info.updated_at,
        "bounds": [round(v, 7) for v in info.bounds_wgs84] if info.bounds_wgs84 else None,
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "tiles": _tiles_url(base, info),
        "tilejson": f"{base}/layers/{info.name}/tilejson.json",
        "attribution": attribution(info),
    }
    if info.kind == "vector":
        layer = catalog.vector(info.name)
        entry["legend"] = legend_for(HAZARD_CLASSES) if HAZARD_COLUMN in layer.fields else None
        entry["fields"] = layer.fields
        entry["items"] = f"{base}/collections/{info.name}/items"
    else:
        entry["legend"] = catalog.raster(info.name).legend
    return entry


def layer_tilejson(base: str, info: LayerInfo, catalog: LayerCatalog) -> dict[str, Any]:
    """TileJSON 3.0.0 of one layer, absolute tile URL, ``vector_layers`` with fields for vector layers."""
    minzoom, maxzoom, _ = _zooms(info)
    vector_layers = None
    if info.kind == "vector":
        vector_layers = [{"id": info.name, "fields": catalog.vector(info.name).fields}]
    meta = TileSetMeta(name=info.name, attribution=attribution(info), version=f"{info.version}.0.0")
    return tilejson(
        info.name,
        tiles_url=_tiles_url(base, info),
        bounds_lonlat=tuple(info.bounds_wgs84) if info.bounds_wgs84 else None,
        minzoom=minzoom,
        maxzoom=maxzoom,
        vector_layers=vector_layers,
        meta=meta,
    )
