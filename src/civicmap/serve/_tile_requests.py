"""Tile requests resolved against the catalogue: which layers, format, key, ETag and renderer.

URL forms: ``/tiles/{layer}/{z}/{x}/{y}.{ext}`` and, for several vector layers in one MVT (one
MVT layer each, named after the workspace layer), their names joined by commas in the layer
segment: ``/tiles/buildings,roads/{z}/{x}/{y}.mvt`` (at most ``MAX_LAYERS_PER_TILE``; as MapLibre
Martin's composite sources). Vector layers serve ``.mvt``; rasters ``.png`` and ``.webp``, imagery
also ``.jpg``/``.jpeg``. A format the layer does not serve is 404 (that tile resource does not
exist), as is an unknown or private layer, a zoom outside the layer's range, or x/y outside
``0..2**z-1``; a z/x/y that is not an integer is 400. An empty tile is 204.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from civicmap.errors import InputError, NotFoundError
from civicmap.serve._caching import etag_for
from civicmap.serve.deps import VECTOR_MAXZOOM, LayerCatalog, raster_profile
from civicmap.tiles.cache import TileKey
from civicmap.tiles.grid import validate_tile
from civicmap.tiles.raster import render_tile
from civicmap.tiles.vector import MVT_MEDIA_TYPE, encode_mvt
from civicmap.types import TileXYZ

__all__ = ["MAX_LAYERS_PER_TILE", "MEDIA_TYPES", "TileRequest", "resolve_tile"]

MAX_LAYERS_PER_TILE = 16
MEDIA_TYPES = {"mvt": MVT_MEDIA_TYPE, "png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True)
class TileRequest:
    """A checked tile request: cache key, strong ETag, media type and how to render it."""

    key: TileKey
    etag: str
    media_type: str
    render: Callable[[], bytes | None]


def _names(layers: str) -> list[str]:
    names = layers.split(",")
    if len(names) > MAX_LAYERS_PER_TILE:
        raise InputError(f"{len(names)} layers in one tile; at most {MAX_LAYERS_PER_TILE}")
    if len(set(names)) != len(names):
        raise InputError(f"layer list {layers!r} names a layer twice; MVT layer names must be unique")
    return names


def _vector(catalog: LayerCatalog, names: list[str], tile: TileXYZ) -> Callable[[], bytes | None]:
    def render() -> bytes | None:
        return encode_mvt({name: catalog.vector(name).mvt for name in names}, tile)

    return render


def _raster(catalog: LayerCatalog, name: str, tile: TileXYZ, fmt: str) -> Callable[[], bytes | None]:
    def render() -> bytes | None:
        raster = catalog.raster(name)
        with raster.pool.dataset() as ds:
            return render_tile(ds, tile, style=raster.style, format=fmt)

    return render


def resolve_tile(catalog: LayerCatalog, layers: str, z: str, x: str, y: str, ext: str | None) -> TileRequest:
    """Check a tile request (layers, extension, address) and say how to answer it; errors as the module says.

    Cheap (catalogue entries only); the layers are loaded by ``render``, in a worker thread.
    """
    names = _names(layers)
    infos = [catalog.info(n) for n in names]  # NotFoundError for unknown and private layers
    kinds = {i.kind for i in infos}
    if len(infos) > 1 and kinds != {"vector"}:
        raise NotFoundError(f"only vector layers can share a tile; {layers!r} includes a raster")
    if kinds == {"vector"}:
        fmt = (ext or "mvt").lower()
        if fmt != "mvt":
            raise NotFoundError(f"layer {layers!r} is served as vector tiles (.mvt), not .{fmt}")
        tile = validate_tile(z, x, y, minzoom=0, maxzoom=VECTOR_MAXZOOM)
        render = _vector(catalog, names, tile)
    else:
        profile = raster_profile(infos[0])
        fmt = (ext or profile.formats[0]).lower().replace("jpeg", "jpg")
        if fmt not in profile.formats:
            raise NotFoundError(f"layer {layers!r} is a raster served as {', '.join(profile.formats)}, not .{fmt}")
        tile = validate_tile(z, x, y, minzoom=profile.minzoom, maxzoom=profile.maxzoom)
        render = _raster(catalog, names[0], tile, fmt)

    version = ",".join(str(i.version) for i in infos)
    key = TileKey(layers, version, tile.z, tile.x, tile.y, fmt)
    return TileRequest(key, etag_for(*key), MEDIA_TYPES[fmt], render)
