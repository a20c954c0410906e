"""Geometry side of MVT encoding (private to :mod:`civicmap.tiles.vector`), vectorised.

Input geometries are in EPSG:3857 metres. Steps, all on whole arrays: keep the parts of the
highest dimension (no GeometryCollection in MVT 2.1 §4.3.4), clip to the buffered tile, drop
features under one pixel, simplify, then to integer tile coordinates (origin top-left, y down),
drop repeated points, orient rings (exterior positive surveyor's area in tile coordinates,
holes negative; MVT 2.1 §4.3.4.4), and write MoveTo/LineTo/ClosePath commands with zigzag
deltas (§4.3.1-4.3.3). ClosePath never repeats the first point.

"Pixel" here is one pixel of a 256-pixel rendering of the tile: ``extent / 256`` tile units.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import shapely

from civicmap.tiles._mvt_wire import zigzag
from civicmap.tiles.grid import ORIGIN_SHIFT_M
from civicmap.types import TileXYZ

__all__ = ["LINE", "POINT", "POLYGON", "EncodedGeometry", "TileFrame", "encode_family", "prepare_geometries", "reduce"]

log = logging.getLogger("civicmap.tiles.vector")

POINT, LINE, POLYGON = 1, 2, 3
_MOVE_TO_1 = 1 | (1 << 3)
_CLOSE_PATH = 7 | (1 << 3)


@dataclass(frozen=True)
class TileFrame:
    """A tile's placement in EPSG:3857 metres and its integer coordinate system."""

    west: float
    north: float
    size_m: float
    extent: int
    buffer: int

    @classmethod
    def for_tile(cls, tile: TileXYZ, *, extent: int, buffer: int) -> TileFrame:
        """The frame of ``tile``."""
        size = 2 * ORIGIN_SHIFT_M / 2**tile.z
        return cls(-ORIGIN_SHIFT_M + tile.x * size, ORIGIN_SHIFT_M - tile.y * size, size, extent, buffer)

    @property
    def pixel_m(self) -> float:
        """One pixel of a 256-pixel rendering, in metres."""
        return self.size_m / 256

    @property
    def clip_box(self) -> tuple[float, float, float, float]:
        """The buffered tile, (west, south, east, north) in metres."""
        pad = self.size_m * self.buffer / self.extent
        return (self.west - pad, self.north - self.size_m - pad, self.west + self.size_m + pad, self.north + pad)

    def to_tile(self, coords: np.ndarray) -> np.ndarray:
        """Metres (N, 2) to integer tile coordinates (N, 2), y down."""
        scale = self.extent / self.size_m
        out = np.empty(coords.shape, dtype=np.int64)
        out[:, 0] = np.rint((coords[:, 0] - self.west) * scale)
        out[:, 1] = np.rint((self.north - coords[:, 1]) * scale)
        return out


def _explode_collections(geoms: np.ndarray) -> np.ndarray:
    """Replace each GeometryCollection by a multi-geometry of its parts of the highest dimension."""
    is_gc = shapely.get_type_id(geoms) == 7
    if not is_gc.any():
        return geoms
    parts, owner = shapely.get_parts(geoms[is_gc], return_index=True)
    while (shapely.get_type_id(parts) >= 4).any():  # nested multi-geometries and collections
        parts, inner = shapely.get_parts(parts, return_index=True)
        owner = owner[inner]
    ok = ~shapely.is_empty(parts)
    parts, owner = parts[ok], owner[ok]
    dims = shapely.get_dimensions(parts)
    top = np.full(int(is_gc.sum()), -1)
    np.maximum.at(top, owner, dims)
    keep = dims == top[owner]
    if (~keep).any():
        log.info("dropped %d lower-dimension parts of GeometryCollections (MVT has no collections)", (~keep).sum())
    rebuilt = np.full(int(is_gc.sum()), None, dtype=object)
    for dim, build in ((0, shapely.multipoints), (1, shapely.multilinestrings), (2, shapely.multipolygons)):
        sel = keep & (dims == dim)
        if sel.any():
            idx = np.unique(owner[sel])
            rebuilt[idx] = build(parts[sel], indices=np.searchsorted(idx, owner[sel]))
    out = geoms.copy()
    out[is_gc] = rebuilt
    return out


def prepare_geometries(geoms: np.ndarray, frame: TileFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip EPSG:3857 geometries to the buffered tile and sort them into families.

    Returns (kept positions into ``geoms``, clipped geometries, family per geometry).
    Null, empty and outside geometries are dropped; LinearRings become LineStrings.
    """
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    pos = np.flatnonzero(keep)
    g = geoms[pos]
    w, s, e, n = frame.clip_box
    b = shapely.bounds(g)
    crossing = (b[:, 0] < w) | (b[:, 1] < s) | (b[:, 2] > e) | (b[:, 3] > n)
    if crossing.any():
        g = g.copy()
        g[crossing] = shapely.clip_by_rect(g[crossing], w, s, e, n)
    rings = np.flatnonzero(shapely.get_type_id(g) == 2)
    if rings.size:
        counts = shapely.get_num_coordinates(g[rings])
        g[rings] = shapely.linestrings(
            shapely.get_coordinates(g[rings]), indices=np.repeat(np.arange(rings.size), counts)
        )
    g = _explode_collections(g)
    ok = ~(shapely.is_missing(g) | shapely.is_empty(g))
    pos, g = pos[ok], g[ok]
    family = (shapely.get_dimensions(g) + 1).astype(np.int8)  # 0/1/2 dimensions -> POINT/LINE/POLYGON
    return pos, g, family


def feature_sizes(geoms: np.ndarray, family: int, frame: TileFrame) -> np.ndarray:
    """Area (polygons, pixels²), length (lines, pixels) or 0 (points), after clipping."""
    if family == POLYGON:
        return shapely.area(geoms) / frame.pixel_m**2
    if family == LINE:
        return shapely.length(geoms) / frame.pixel_m
    return np.zeros(len(geoms))


def reduce(
    geoms: np.ndarray, sizes: np.ndarray, family: int, frame: TileFrame, *, tolerance_px: float, min_size_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Drop features under ``min_size_px`` and simplify the rest by ``tolerance_px`` pixels.

    Polygons keep their topology (GEOS TopologyPreservingSimplifier); lines use Douglas-Peucker.
    Only geometries with more than 5 vertices are simplified (a rectangle cannot lose any).
    Returns (kept positions, geometries).
    """
    pos = np.flatnonzero(sizes >= min_size_px) if family != POINT and min_size_px > 0 else np.arange(len(geoms))
    g = geoms[pos]
    if family == POINT or tolerance_px <= 0 or not g.size:
        return pos, g
    busy = shapely.get_num_coordinates(g) > 5
    if busy.any():
        g = g.copy()
        g[busy] = shapely.simplify(g[busy], tolerance_px * frame.pixel_m, preserve_topology=family == POLYGON)
        ok = ~shapely.is_empty(g)
        pos, g = pos[ok], g[ok]
    return pos, g


@dataclass(frozen=True)
class EncodedGeometry:
    """Command arrays of F features: ``features`` are positions into the input, in order."""

    features: np.ndarray
    values: np.ndarray
    offsets: np.ndarray


def _ragged(geoms: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Coordinates and offsets, normalised to the multi-geometry layout of their family."""
    kind, coords, offsets = shapely.to_ragged_array(geoms, include_z=False)
    offs = [np.asarray(o, dtype=np.int64) for o in offsets]
    single = np.arange(len(geoms) + 1, dtype=np.int64)
    if kind == shapely.GeometryType.POINT:
        offs = [single]
    elif kind in (shapely.GeometryType.LINESTRING, shapely.GeometryType.POLYGON):
        offs = [*offs, single]
    return coords, offs


def _segments(offsets: np.ndarray) -> np.ndarray:
    """For offsets of P segments, the segment index of each element."""
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


def _dedupe(xy: np.ndarray, part_off: np.ndarray, *, closed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Drop closing points (rings) and repeated consecutive points; returns (xy, per-part sizes)."""
    part = _segments(part_off)
    keep = np.ones(len(xy), dtype=bool)
    if closed:
        sizes = np.diff(part_off)
        keep[part_off[1:][sizes > 0] - 1] = False
    same = np.zeros(len(xy), dtype=bool)
    same[1:] = (xy[1:] == xy[:-1]).all(axis=1) & (part[1:] == part[:-1])
    keep &= ~same
    xy, part = xy[keep], part[keep]
    sizes = np.bincount(part, minlength=len(part_off) - 1)
    if closed and len(xy):  # a last point equal to the first, once rounded, is a repeat too
        starts = np.cumsum(sizes) - sizes
        ends = starts + sizes - 1
        wrap = (sizes > 1) & (xy[np.maximum(ends, 0)] == xy[np.minimum(starts, len(xy) - 1)]).all(axis=1)
        drop = np.zeros(len(xy), dtype=bool)
        drop[ends[wrap]] = True
        xy, part = xy[~drop], part[~drop]
        sizes = np.bincount(part, minlength=len(part_off) - 1)
    return xy, sizes


def _commands(
    xy: np.ndarray, sizes: np.ndarray, part_feature: np.ndarray, n_features: int, *, closed: bool
) -> tuple[np.ndarray, np.ndarray]:
    """MoveTo/LineTo(/ClosePath) values of parts (in feature order); returns (values, feature offsets)."""
    per = 2 * sizes + 2 + closed
    starts = np.cumsum(per) - per
    out = np.empty(int(per.sum()), dtype=np.uint64)
    out[starts] = _MOVE_TO_1
    out[starts + 3] = 2 | ((sizes - 1) << 3)
    if closed:
        out[starts + per - 1] = _CLOSE_PATH
    coord_part = np.repeat(np.arange(len(sizes)), sizes)
    k = np.arange(len(xy)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    feature = part_feature[coord_part]
    prev = np.zeros_like(xy)
    prev[1:] = xy[:-1]
    if len(xy):
        prev[np.concatenate([[True], feature[1:] != feature[:-1]])] = 0  # each feature starts at (0, 0)
    deltas = zigzag(xy - prev)
    pos = starts[coord_part] + 1 + 2 * k + (k > 0)
    out[pos] = deltas[:, 0]
    out[pos + 1] = deltas[:, 1]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(part_feature, weights=per, minlength=n_features))])
    return out, offsets.astype(np.int64)


def _finish(features: np.ndarray, values: np.ndarray, offsets: np.ndarray, n_parts: np.ndarray) -> EncodedGeometry:
    """Drop features left without parts."""
    alive = n_parts > 0
    kept_offsets = np.concatenate([[0], np.cumsum(np.diff(offsets)[alive])]).astype(np.int64)
    return EncodedGeometry(features[alive], values, kept_offsets)


def _encode_points(geoms: np.ndarray, frame: TileFrame) -> EncodedGeometry:
    coords, (geom_off,) = _ragged(geoms)
    xy = frame.to_tile(coords)
    counts = np.diff(geom_off)
    per = 2 * counts + 1
    starts = np.cumsum(per) - per
    out = np.empty(int(per.sum()), dtype=np.uint64)
    out[starts] = 1 | (counts << 3)
    feature = _segments(geom_off)
    prev = np.zeros_like(xy)
    prev[1:] = xy[:-1]
    prev[geom_off[:-1][counts > 0]] = 0
    deltas = zigzag(xy - prev)
    pos = starts[feature] + 1 + 2 * (np.arange(len(xy)) - geom_off[feature])
    out[pos] = deltas[:, 0]
    out[pos + 1] = deltas[:, 1]
    offsets = np.concatenate([[0], np.cumsum(per)]).astype(np.int64)
    return _finish(np.arange(len(geoms)), out, offsets, counts)


def _encode_lines(geoms: np.ndarray, frame: TileFrame) -> EncodedGeometry:
    coords, (line_off, geom_off) = _ragged(geoms)
    xy, sizes = _dedupe(frame.to_tile(coords), line_off, closed=False)
    line_feature = _segments(geom_off)
    ok = sizes >= 2
    coord_ok = np.repeat(ok, sizes)
    values, offsets = _commands(xy[coord_ok], sizes[ok], line_feature[ok], len(geoms), closed=False)
    return _finish(np.arange(len(geoms)), values, offsets, np.bincount(line_feature[ok], minlength=len(geoms)))


def _ring_areas(xy: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Twice the surveyor's-formula area of each ring (closed implicitly), in tile units²."""
    ring = np.repeat(np.arange(len(sizes)), sizes)
    starts = np.cumsum(sizes) - sizes
    nxt = np.arange(1, len(xy) + 1)
    last = starts + sizes - 1
    nxt[last[sizes > 0]] = starts[sizes > 0]
    nxt = np.minimum(nxt, max(len(xy) - 1, 0))
    cross = xy[:, 0] * xy[nxt, 1] - xy[nxt, 0] * xy[:, 1]
    return np.bincount(ring, weights=cross, minlength=len(sizes))


def _orient(xy: np.ndarray, sizes: np.ndarray, area2: np.ndarray, exterior: np.ndarray) -> np.ndarray:
    """Reverse rings whose sign is wrong: exterior > 0, holes < 0."""
    flip = np.where(exterior, area2 < 0, area2 > 0)
    if not flip.any():
        return xy
    starts = np.cumsum(sizes) - sizes
    ring = np.repeat(np.arange(len(sizes)), sizes)
    idx = np.arange(len(xy))
    local = idx - starts[ring]
    reversed_idx = starts[ring] + sizes[ring] - 1 - local
    return xy[np.where(flip[ring], reversed_idx, idx)]


def _encode_polygons(geoms: np.ndarray, frame: TileFrame) -> EncodedGeometry:
    coords, (ring_off, poly_off, geom_off) = _ragged(geoms)
    xy, sizes = _dedupe(frame.to_tile(coords), ring_off, closed=True)
    ring_poly = _segments(poly_off)
    exterior = np.zeros(len(sizes), dtype=bool)
    exterior[poly_off[:-1][np.diff(poly_off) > 0]] = True
    area2 = _ring_areas(xy, sizes)
    ring_ok = (sizes >= 3) & (area2 != 0)
    poly_ok = np.zeros(len(poly_off) - 1, dtype=bool)
    poly_ok[ring_poly[exterior]] = ring_ok[exterior]
    ring_ok &= poly_ok[ring_poly]
    coord_ok = np.repeat(ring_ok, sizes)
    xy, sizes, area2, exterior = xy[coord_ok], sizes[ring_ok], area2[ring_ok], exterior[ring_ok]
    xy = _orient(xy, sizes, area2, exterior)
    poly_feature = _segments(geom_off)
    ring_feature = poly_feature[ring_poly[ring_ok]]
    values, offsets = _commands(xy, sizes, ring_feature, len(geoms), closed=True)
    n_parts = np.bincount(poly_feature[poly_ok], minlength=len(geoms))
    return _finish(np.arange(len(geoms)), values, offsets, n_parts)


def encode_family(geoms: np.ndarray, family: int, frame: TileFrame) -> EncodedGeometry:
    """Command arrays for geometries of one family (all points, all lines or all polygons)."""
    if not len(geoms):
        return EncodedGeometry(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64), np.zeros(1, dtype=np.int64))
    encoder = {POINT: _encode_points, LINE: _encode_lines, POLYGON: _encode_polygons}[family]
    return encoder(geoms, frame)
