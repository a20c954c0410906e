"""The XYZ ("slippy map") tile grid of Web Mercator (EPSG:3857, Google / OSM tile scheme).

Tile ``(z, x, y)``: ``2**z`` columns from the west (x) and rows from the north (y); z=0 is one
tile covering the world between latitudes ±85.0511287798066°. Bounds are (west, south, east,
north), in EPSG:3857 metres or in degrees of longitude/latitude (EPSG:4326).

The spherical Mercator maths is a dozen lines, written here rather than taken from morecantile
so that it stays vectorisable with numpy, has no dependency, and returns civicmap's own
:class:`~civicmap.types.BBox`; the tests check it against morecantile.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from civicmap.errors import InputError, NotFoundError
from civicmap.types import BBox, TileXYZ

__all__ = [
    "EARTH_RADIUS_M",
    "MAX_LATITUDE",
    "MAX_ZOOM",
    "ORIGIN_SHIFT_M",
    "lonlat_to_mercator",
    "tile_bounds",
    "tile_bounds_lonlat",
    "tile_resolution_m",
    "tiles_for_bbox",
    "validate_tile",
]

#: Radius of the Web Mercator sphere (WGS 84 semi-major axis), metres.
EARTH_RADIUS_M = 6378137.0
#: Half the width of the Web Mercator world, metres (x of the antimeridian).
ORIGIN_SHIFT_M = math.pi * EARTH_RADIUS_M
#: Latitude (degrees) where Web Mercator y reaches ``ORIGIN_SHIFT_M``: the square world's edge.
MAX_LATITUDE = math.degrees(math.atan(math.sinh(math.pi)))
#: Highest zoom the grid maths accepts (TileJSON allows 0..30).
MAX_ZOOM = 30

_INT_TEXT = re.compile(r"^[+-]?\d{1,10}$")


def tile_bounds(tile: TileXYZ) -> BBox:
    """Bounds of ``tile`` in EPSG:3857 metres: (west, south, east, north)."""
    z, x, y = tile
    size = 2 * ORIGIN_SHIFT_M / 2**z
    west = -ORIGIN_SHIFT_M + x * size
    north = ORIGIN_SHIFT_M - y * size
    return BBox(west, north - size, west + size, north)


def _lat_of_row(row: float, z: int) -> float:
    return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / 2**z))))


def tile_bounds_lonlat(tile: TileXYZ) -> BBox:
    """Bounds of ``tile`` in degrees (EPSG:4326): (west, south, east, north)."""
    z, x, y = tile
    n = 2**z
    return BBox(x / n * 360 - 180, _lat_of_row(y + 1, z), (x + 1) / n * 360 - 180, _lat_of_row(y, z))


def tile_resolution_m(z: int, *, tilesize: int = 256) -> float:
    """Size of one pixel of a ``tilesize`` tile at zoom ``z``, in EPSG:3857 metres.

    EPSG:3857 metres equal ground metres only at the equator; on the ground a pixel is
    ``cos(latitude)`` times this.
    """
    return 2 * ORIGIN_SHIFT_M / (tilesize * 2**z)


def lonlat_to_mercator(lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
    """Longitude/latitude degrees to EPSG:3857 metres; latitudes are clamped to ±MAX_LATITUDE (no inf)."""
    lon_arr = np.asarray(lon, dtype="float64")
    lat_arr = np.clip(np.asarray(lat, dtype="float64"), -MAX_LATITUDE, MAX_LATITUDE)
    x = np.radians(lon_arr) * EARTH_RADIUS_M
    y = np.log(np.tan(np.pi / 4 + np.radians(lat_arr) / 2)) * EARTH_RADIUS_M
    return x, y


def _column_row(lon: float, lat: float, z: int) -> tuple[float, float]:
    """Fractional tile column and row of a lon/lat (lat clamped to the Mercator limit)."""
    lat = min(max(lat, -MAX_LATITUDE), MAX_LATITUDE)
    n = 2**z
    col = (lon + 180) / 360 * n
    row = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return col, row


def _zoom_list(zooms: int | Iterable[int]) -> list[int]:
    values = [zooms] if isinstance(zooms, int | np.integer) else list(zooms)
    bad = [z for z in values if isinstance(z, bool) or not isinstance(z, int | np.integer) or not 0 <= z <= MAX_ZOOM]
    if bad:
        raise InputError(f"zooms {bad!r} are not integers in 0..{MAX_ZOOM}; pass e.g. zooms=range(10, 15)")
    return [int(z) for z in values]


def _spans(bbox: Sequence[float]) -> list[tuple[float, float, float, float]]:
    """The bbox as one or two boxes: a west > east box crosses the antimeridian (RFC 7946 §5.2)."""
    try:
        w, s, e, n = (float(v) for v in bbox)
    except (TypeError, ValueError) as exc:
        raise InputError(f"bbox {bbox!r} is not four numbers (west, south, east, north) in degrees") from exc
    if w > e:
        BBox.parse((w, s, 180.0, n))
        BBox.parse((-180.0, s, e, n))
        return [(w, s, 180.0, n), (-180.0, s, e, n)]
    BBox.parse((w, s, e, n))
    return [(w, s, e, n)]


def tiles_for_bbox(bbox_lonlat: Sequence[float], zooms: int | Iterable[int]) -> Iterator[TileXYZ]:
    """Every tile at each zoom in ``zooms`` that intersects ``bbox_lonlat`` (degrees, EPSG:4326).

    Tiles are yielded zoom by zoom, then row by row from the north, then west to east. A
    bbox with west > east crosses the antimeridian and yields the tiles on both sides.
    Latitudes beyond ±85.0511° are clamped; a tile that only touches the bbox edge is left out.
    """
    boxes = _spans(bbox_lonlat)
    for z in _zoom_list(zooms):
        last = 2**z - 1
        for w, s, e, n in boxes:
            col0, row0 = _column_row(w, n, z)
            col1, row1 = _column_row(e, s, z)
            x0, y0 = min(max(math.floor(col0), 0), last), min(max(math.floor(row0), 0), last)
            # a bbox edge on a tile edge does not pull in the next tile (1e-9 tile ~ 40 µm at z0)
            x1 = min(max(math.ceil(col1 - 1e-9) - 1, x0), last)
            y1 = min(max(math.ceil(row1 - 1e-9) - 1, y0), last)
            for y in range(y0, y1 + 1):
                for x in range(x0, x1 + 1):
                    yield TileXYZ(z, x, y)


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise InputError(f"tile {name} {value!r} is a boolean; expected an integer")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, str) and _INT_TEXT.match(value.strip()):
        return int(value.strip())
    raise InputError(f"tile {name} {value!r} is not an integer; tile addresses are whole numbers such as 14/9876/8765")


def validate_tile(z: Any, x: Any, y: Any, *, minzoom: int = 0, maxzoom: int = 24) -> TileXYZ:
    """Check a requested tile address and return it as a :class:`TileXYZ`.

    Raises :class:`InputError` (HTTP 400) when z, x or y is not an integer (``1.5``, ``"abc"``,
    ``True``), and :class:`NotFoundError` (HTTP 404, OGC API Tiles) when it is an integer
    outside the grid: z not in ``minzoom..maxzoom`` or x, y not in ``0..2**z - 1``. Strings of
    digits (path parameters) are accepted.
    """
    zi, xi, yi = _as_int(z, "z"), _as_int(x, "x"), _as_int(y, "y")
    if not 0 <= minzoom <= maxzoom <= MAX_ZOOM:
        raise InputError(f"zoom range {minzoom}..{maxzoom} is not within 0..{MAX_ZOOM} with minzoom <= maxzoom")
    if not minzoom <= zi <= maxzoom:
        raise NotFoundError(f"zoom {zi} is outside this layer's zoom range {minzoom}..{maxzoom}")
    last = 2**zi - 1
    bad = [f"{name}={v}" for name, v in (("x", xi), ("y", yi)) if not 0 <= v <= last]
    if bad:
        raise NotFoundError(f"tile {zi}/{xi}/{yi}: {', '.join(bad)} outside 0..{last}, the tile range at zoom {zi}")
    return TileXYZ(zi, xi, yi)
