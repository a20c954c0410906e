"""Tiles without HTTP: the XYZ grid, MVT encoding, PNG rendering and TileJSON (all EPSG:3857 XYZ)."""

from civicmap.tiles.grid import tile_bounds, tile_bounds_lonlat, tiles_for_bbox, validate_tile
from civicmap.tiles.raster import TileStyle, render_png, render_tile
from civicmap.tiles.tilejson import TileSetMeta, tilejson
from civicmap.tiles.vector import MVT_MEDIA_TYPE, encode_mvt, mvt_fields

__all__ = [
    "MVT_MEDIA_TYPE",
    "TileSetMeta",
    "TileStyle",
    "encode_mvt",
    "mvt_fields",
    "render_png",
    "render_tile",
    "tile_bounds",
    "tile_bounds_lonlat",
    "tilejson",
    "tiles_for_bbox",
    "validate_tile",
]
