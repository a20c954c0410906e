"""Geometry side of MVT encoding (private to :mod:`civicmap.tiles.vector`), vectorised.

Input geometries are in EPSG:3857 metres. Steps, all on whole arrays: keep the parts of the
highest dimension (no GeometryCollection in MVT 2.1 §4.3.4), clip to the buffered tile, drop
features under one pixel, simplify, then to integer tile coordinates (origin top-left, y down),
drop repeated points, orient rings (exterior positive surveyor's area in tile coordinates,
holes negative; MVT 2.1 §4.3.4.4), and write MoveTo/LineTo/ClosePath commands with zigzag
deltas (§4.3.1-4.3.3). ClosePath never repeats the first point.

Geometries are encoded from :class:`Parts` (coordinates of rings, linestrings and points in
flat arrays): taken from shapely per tile (:func:`parts_of`), or sliced without any GEOS call
from a :class:`PartsIndex` made once per layer, for features that need no clipping or
simplification in the tile; both give the same parts, so the same bytes.

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

__all__ = [
    "LINE",
    "POINT",
    "POLYGON",
    "EncodedGeometry",
    "Parts",
    "PartsIndex",
    "TileFrame",
    "encode_family",
    "feature_sizes",
    "interleave",
    "parts_of",
    "prepare_geometries",
    "simplify",
]

log = logging.getLogger("civicmap.tiles.vector")

POINT, LINE, POLYGON = 1, 2, 3
_MOVE_TO_1 = 1 | (1 << 3)
_CLOSE_PATH = 7 | (1 << 3)
_PAIR = np.array([0, 1])


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
        # (y - north) * -scale is (north - y) * scale exactly: IEEE rounding is symmetric in sign
        scaled = coords - np.array([self.west, self.north])
        scaled *= np.array([scale, -scale])
        return np.rint(scaled, out=scaled).astype(np.int64)


def _explode_collections(geoms: np.ndarray, is_gc: np.ndarray) -> np.ndarray:
    """Replace each GeometryCollection (``is_gc``) by a multi-geometry of its parts of the highest dimension."""
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


# Dimension of each shapely type id: Point, LineString, LinearRing, Polygon, Multi*, (collection: -1)
_DIMENSIONS = np.array([0, 1, 1, 2, 0, 1, 2, -1], dtype=np.int8)


def prepare_geometries(geoms: np.ndarray, frame: TileFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip EPSG:3857 geometries to the buffered tile and sort them into families.

    Returns (kept positions into ``geoms``, clipped geometries, family per geometry).
    Null, empty and outside geometries are dropped; LinearRings become LineStrings.
    """
    types = shapely.get_type_id(geoms)  # -1: null
    pos = ((types >= 0) & ~shapely.is_empty(geoms)).nonzero()[0]
    g, types = geoms[pos], types[pos]
    w, s, e, n = frame.clip_box
    b = shapely.bounds(g)
    crossing = (b[:, 0] < w) | (b[:, 1] < s) | (b[:, 2] > e) | (b[:, 3] > n)
    if crossing.any():
        g = g.copy()
        g[crossing] = shapely.clip_by_rect(g[crossing], w, s, e, n)
        types[crossing] = shapely.get_type_id(g[crossing])
    rings = (types == 2).nonzero()[0]
    if rings.size:
        counts = shapely.get_num_coordinates(g[rings])
        g[rings] = shapely.linestrings(shapely.get_coordinates(g[rings]), indices=np.arange(rings.size).repeat(counts))
    is_gc = types == 7
    if is_gc.any():
        g = _explode_collections(g, is_gc)
        ok = ~(shapely.is_missing(g) | shapely.is_empty(g))
        pos, g = pos[ok], g[ok]
        return pos, g, (shapely.get_dimensions(g) + 1).astype(np.int8)  # dimensions 0/1/2: POINT/LINE/POLYGON
    ok = ~shapely.is_empty(g)  # clipped away
    return pos[ok], g[ok], _DIMENSIONS[types[ok]] + 1


def feature_sizes(geoms: np.ndarray, family: int, frame: TileFrame) -> np.ndarray:
    """Area (polygons, pixels²), length (lines, pixels) or 0 (points), after clipping."""
    if family == POLYGON:
        return shapely.area(geoms) / frame.pixel_m**2
    if family == LINE:
        return shapely.length(geoms) / frame.pixel_m
    return np.zeros(len(geoms))


def simplify(geoms: np.ndarray, family: int, frame: TileFrame, *, tolerance_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Simplify lines and polygons by ``tolerance_px`` pixels; returns (kept positions, geometries).

    Polygons keep their topology (GEOS TopologyPreservingSimplifier); lines use Douglas-Peucker.
    Only geometries with more than 5 vertices are simplified (a rectangle cannot lose any);
    those that simplify to nothing are dropped.
    """
    pos = np.arange(len(geoms))
    if family == POINT or tolerance_px <= 0 or not geoms.size:
        return pos, geoms
    busy = shapely.get_num_coordinates(geoms) > 5
    if not busy.any():
        return pos, geoms
    g = geoms.copy()
    g[busy] = shapely.simplify(g[busy], tolerance_px * frame.pixel_m, preserve_topology=family == POLYGON)
    ok = ~shapely.is_empty(g)
    return pos[ok], g[ok]


@dataclass(frozen=True)
class Parts:
    """The features of one family as parts, in EPSG:3857 metres.

    A part is a polygon ring, a linestring, or the points of one (multi)point feature. ``xy``
    (M, 2) holds the coordinates of all parts one after another, ``sizes`` (P) how many each
    part has, ``feature`` (P, non-decreasing) the feature 0..n-1 it belongs to, and
    ``exterior`` (P) whether a ring opens a polygon (its exterior; False for lines and points).
    Features without parts are allowed: they are dropped when encoded.
    """

    xy: np.ndarray
    sizes: np.ndarray
    feature: np.ndarray
    exterior: np.ndarray
    n: int


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + n)`` for each (s, n), in one vectorised pass."""
    total = int(lengths.sum())
    ends = lengths.cumsum()
    return np.arange(total, dtype=np.int64) + np.repeat(starts - (ends - lengths), lengths)


def _counts(index: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(index, minlength=n).astype(np.int64, copy=False)


def parts_of(geoms: np.ndarray, family: int) -> Parts:
    """Parts of non-empty geometries of one family (the multi-geometry ragged layout of GeoArrow)."""
    n = len(geoms)
    if family == POINT:
        xy, owner = shapely.get_coordinates(geoms, return_index=True)
        return Parts(xy, _counts(owner, n), np.arange(n), np.zeros(n, dtype=bool), n)
    if family == LINE:
        lines, owner = shapely.get_parts(geoms, return_index=True)
        xy, line = shapely.get_coordinates(lines, return_index=True)
        return Parts(xy, _counts(line, len(lines)), owner, np.zeros(len(lines), dtype=bool), n)
    if (shapely.get_type_id(geoms) == 3).all():  # no multipolygon: the parts are the geometries
        if not shapely.get_num_interior_rings(geoms).any():  # one ring each: no ring objects to make
            xy, owner = shapely.get_coordinates(geoms, return_index=True)
            return Parts(xy, _counts(owner, n), np.arange(n), np.ones(n, dtype=bool), n)
        polygons, owner = geoms, np.arange(n)
    else:
        polygons, owner = shapely.get_parts(geoms, return_index=True)
    rings, polygon = shapely.get_rings(polygons, return_index=True)
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    exterior = np.ones(len(rings), dtype=bool)
    exterior[1:] = polygon[1:] != polygon[:-1]  # get_rings gives each polygon's exterior first
    return Parts(xy, _counts(ring, len(rings)), owner[polygon], exterior, n)


def interleave(a: Parts, b: Parts, from_b: np.ndarray) -> Parts:
    """One :class:`Parts` of the features of ``a`` and ``b``; output feature k comes from ``b`` where ``from_b[k]``.

    Each input keeps its own feature order; ``from_b`` has ``a.n + b.n`` entries, ``b.n`` of them True.
    """
    if not b.n:
        return a
    if not a.n:
        return b
    number = np.concatenate([(~from_b).nonzero()[0][a.feature], from_b.nonzero()[0][b.feature]])
    order = number.argsort(kind="stable")
    sizes = np.concatenate([a.sizes, b.sizes])
    starts = sizes.cumsum() - sizes
    xy = np.concatenate([a.xy, b.xy])[_ranges(starts[order], sizes[order])]
    exterior = np.concatenate([a.exterior, b.exterior])[order]
    return Parts(xy, sizes[order], number[order], exterior, a.n + b.n)


_SIMPLE_TYPES = (0, 1, 3, 4, 5, 6)  # (Multi)Point, (Multi)LineString, (Multi)Polygon


def _outward_float32(bounds: np.ndarray) -> np.ndarray:
    """(N, 4) bounds as float32, rounded outwards (never inside the float64 box)."""
    out = bounds.astype(np.float32)
    low, high = out[:, :2], out[:, 2:]
    low[:] = np.where(low > bounds[:, :2], np.nextafter(low, np.float32(-np.inf)), low)
    high[:] = np.where(high < bounds[:, 2:], np.nextafter(high, np.float32(np.inf)), high)
    return out


class PartsIndex:
    """A layer's EPSG:3857 geometries taken apart once, so that a tile slices them without GEOS.

    Per feature: its family (0 for those left to shapely at every tile: null, empty, LinearRing,
    GeometryCollection), float32 bounds rounded outwards, whether it has at most 5 vertices
    (never simplified) or is a point, area (polygons, m²) or length (lines, m); per part (ring,
    linestring, points of a feature), in feature order: float64 coordinates and int64 offsets.
    A feature whose bounds are inside a tile's clip box is not clipped there (as in
    :func:`prepare_geometries`), so its parts are the ones stored here.
    """

    def __init__(self, geoms: np.ndarray) -> None:
        n = len(geoms)
        simple = np.isin(shapely.get_type_id(geoms), _SIMPLE_TYPES) & ~shapely.is_empty(geoms)
        self.family = np.where(simple, shapely.get_dimensions(geoms) + 1, 0).astype(np.int8)
        self.bounds = np.ascontiguousarray(_outward_float32(shapely.bounds(geoms)).T)  # (4, N)
        self.few = (shapely.get_num_coordinates(geoms) <= 5) | (self.family == POINT)
        self.size_m = np.where(self.family == POLYGON, shapely.area(geoms), 0.0)
        self.size_m[self.family == LINE] = shapely.length(geoms[self.family == LINE])
        chunks = [(np.flatnonzero(self.family == fam), fam) for fam in (POINT, LINE, POLYGON)]
        parts = [(rows, parts_of(geoms[rows], fam)) for rows, fam in chunks if rows.size]
        owner = np.concatenate([rows[p.feature] for rows, p in parts] or [np.zeros(0, dtype=np.int64)])
        order = np.argsort(owner, kind="stable")
        sizes = np.concatenate([p.sizes for _, p in parts] or [np.zeros(0, dtype=np.int64)])
        starts = sizes.cumsum() - sizes
        sizes = sizes[order]
        xy = np.concatenate([p.xy for _, p in parts] or [np.zeros((0, 2))])
        self.xy = xy[_ranges(starts[order], sizes)]
        self.part_offsets = np.concatenate([[0], sizes.cumsum()]).astype(np.int64)
        self.exterior = np.concatenate([p.exterior for _, p in parts] or [np.zeros(0, dtype=bool)])[order]
        self.feature_offsets = np.concatenate([[0], np.cumsum(_counts(owner, n))]).astype(np.int64)

    @property
    def nbytes(self) -> int:
        """Memory held by the index, in bytes."""
        arrays = (self.family, self.bounds, self.few, self.size_m, self.xy, self.part_offsets, self.exterior)
        return sum(a.nbytes for a in arrays) + self.feature_offsets.nbytes

    def inside(self, rows: np.ndarray, family: np.ndarray, frame: TileFrame) -> np.ndarray:
        """Mask over ``rows`` (of ``family``): taken from the index (simple, and inside the clip box)."""
        w, s, e, n = map(np.float64, frame.clip_box)  # float64 scalars: compare in float64
        b = self.bounds[:, rows]
        return (family > 0) & (b[0] >= w) & (b[1] >= s) & (b[2] <= e) & (b[3] <= n)

    def sizes(self, rows: np.ndarray, family: np.ndarray, frame: TileFrame) -> np.ndarray:
        """As :func:`feature_sizes` for ``rows`` of ``family``: pixels² (polygons), pixels (lines), 0."""
        return self.size_m[rows] / np.where(family == POLYGON, frame.pixel_m**2, frame.pixel_m)

    def take(self, rows: np.ndarray) -> Parts:
        """The parts of the features at positions ``rows``, in that order."""
        first = self.feature_offsets[rows]
        n_parts = self.feature_offsets[rows + 1] - first
        if n_parts.min(initial=1) == n_parts.max(initial=1) == 1:  # one part each (simple polygons, lines)
            parts, feature = first, np.arange(len(rows))
        else:
            parts, feature = _ranges(first, n_parts), np.arange(len(rows)).repeat(n_parts)
        starts = self.part_offsets[parts]
        sizes = self.part_offsets[parts + 1] - starts
        return Parts(self.xy[_ranges(starts, sizes)], sizes, feature, self.exterior[parts], len(rows))


@dataclass(frozen=True)
class EncodedGeometry:
    """Command arrays of F features: ``features`` are positions into the input, in order."""

    features: np.ndarray
    values: np.ndarray
    offsets: np.ndarray


def _dedupe(
    xy: np.ndarray, sizes: np.ndarray, *, closed: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Drop closing points (rings) and repeated consecutive points of tile coordinates.

    Returns (xy, per-part sizes, part of each point, per-part end offsets into xy).
    """
    ends = sizes.cumsum()
    filled = sizes > 0
    key = (xy[:, 0] << 32) + xy[:, 1]  # one integer per point: tile coordinates are far below 2**31
    same = np.empty(len(xy), dtype=bool)
    same[:1] = False
    np.equal(key[1:], key[:-1], out=same[1:])
    same[(ends - sizes)[filled]] = False  # a part's first point repeats nothing
    if closed:
        same[ends[filled] - 1] = True  # GEOS rings repeat their first point at the end
    keep = ~same
    part = np.arange(len(sizes)).repeat(sizes)[keep]
    xy, key = xy[keep], key[keep]
    sizes = np.bincount(part, minlength=len(sizes))
    ends = sizes.cumsum()
    if closed and len(xy):  # a last point equal to the first, once rounded, is a repeat too
        wrap = (sizes > 1) & (key[np.maximum(ends - 1, 0)] == key[np.minimum(ends - sizes, len(xy) - 1)])
        if wrap.any():
            keep = np.ones(len(xy), dtype=bool)
            keep[ends[wrap] - 1] = False
            xy, part = xy[keep], part[keep]
            sizes = sizes - wrap
            ends = sizes.cumsum()
    return xy, sizes, part, ends


def _commands(
    xy: np.ndarray,
    sizes: np.ndarray,
    part: np.ndarray,
    coord_ends: np.ndarray,
    part_feature: np.ndarray,
    n_features: int,
    *,
    closed: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """MoveTo/LineTo(/ClosePath) values of parts (in feature order); returns (values, feature offsets).

    ``part`` is the part of each point of ``xy`` (tile coordinates), ``coord_ends`` the end of
    each part in ``xy`` (``sizes.cumsum()``); no part is empty.
    """
    per = 2 * sizes + 2 + closed
    ends = per.cumsum()
    starts = ends - per
    out = np.empty(int(ends[-1]) if len(ends) else 0, dtype=np.uint64)
    out[starts] = _MOVE_TO_1
    out[starts + 3] = 2 | ((sizes - 1) << 3)
    if closed:
        out[ends - 1] = _CLOSE_PATH
    first = coord_ends - sizes
    later = np.ones(len(xy), dtype=np.int64)  # 1 after a part's first point: a LineTo comes between
    later[first] = 0
    deltas = xy.copy()
    deltas[1:] -= xy[:-1]
    opens = np.ones(len(sizes), dtype=bool)  # the first part of each feature starts at (0, 0)
    opens[1:] = part_feature[1:] != part_feature[:-1]
    deltas[first[opens]] = xy[first[opens]]
    # a point's x goes after the previous points' pairs, (2 or 3) commands per earlier part, MoveTo, LineTo
    pos = 2 * np.arange(len(xy)) + (2 + closed) * part + 1 + later
    out[pos[:, None] + _PAIR] = zigzag(deltas)
    offsets = np.concatenate([[0], np.bincount(part_feature, weights=per, minlength=n_features).cumsum()])
    return out, offsets.astype(np.int64)


def _finish(values: np.ndarray, offsets: np.ndarray, n_parts: np.ndarray) -> EncodedGeometry:
    """Drop features left without parts."""
    alive = n_parts > 0
    if alive.all():
        return EncodedGeometry(np.arange(len(alive)), values, offsets)
    kept_offsets = np.concatenate([[0], np.cumsum(np.diff(offsets)[alive])]).astype(np.int64)
    return EncodedGeometry(alive.nonzero()[0], values, kept_offsets)


def _encode_points(parts: Parts, frame: TileFrame) -> EncodedGeometry:
    """One MoveTo with a count per feature (each point feature is one part)."""
    xy = frame.to_tile(parts.xy)
    counts = parts.sizes
    per = 2 * counts + 1
    starts = per.cumsum() - per
    out = np.empty(int(per.sum()), dtype=np.uint64)
    out[starts] = 1 | (counts << 3)
    part = np.arange(len(counts)).repeat(counts)
    first = counts.cumsum() - counts
    prev = np.zeros_like(xy)
    prev[1:] = xy[:-1]
    prev[first[counts > 0]] = 0
    deltas = zigzag(xy - prev)
    pos = starts[part] + 1 + 2 * (np.arange(len(xy)) - first[part])
    out[pos] = deltas[:, 0]
    out[pos + 1] = deltas[:, 1]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(parts.feature, weights=per, minlength=parts.n))])
    return _finish(out, offsets.astype(np.int64), np.bincount(parts.feature, weights=counts, minlength=parts.n))


def _encode_lines(parts: Parts, frame: TileFrame) -> EncodedGeometry:
    xy, sizes, line, ends = _dedupe(frame.to_tile(parts.xy), parts.sizes, closed=False)
    ok = sizes >= 2
    feature = parts.feature
    if not ok.all():
        xy, sizes, feature = xy[ok[line]], sizes[ok], feature[ok]
        line, ends = np.arange(len(sizes)).repeat(sizes), sizes.cumsum()
    values, offsets = _commands(xy, sizes, line, ends, feature, parts.n, closed=False)
    return _finish(values, offsets, np.bincount(feature, minlength=parts.n))


def _ring_areas(xy: np.ndarray, sizes: np.ndarray, ring: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Twice the surveyor's-formula area of each ring (closed implicitly), in tile units²."""
    nxt = np.arange(1, len(xy) + 1)
    filled = sizes > 0
    nxt[ends[filled] - 1] = (ends - sizes)[filled]  # the last point of a ring pairs with its first
    cross = xy[:, 0] * xy[nxt, 1] - xy[nxt, 0] * xy[:, 1]
    return np.bincount(ring, weights=cross, minlength=len(sizes))


def _orient(xy: np.ndarray, sizes: np.ndarray, ring: np.ndarray, ends: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """Reverse the rings where ``flip``."""
    if not flip.any():
        return xy
    idx = np.arange(len(xy))
    reversed_idx = (2 * ends - sizes - 1)[ring] - idx  # start + (end - 1) - idx
    return xy[np.where(flip[ring], reversed_idx, idx)]


def _encode_polygons(parts: Parts, frame: TileFrame) -> EncodedGeometry:
    xy, sizes, ring, ends = _dedupe(frame.to_tile(parts.xy), parts.sizes, closed=True)
    exterior, feature = parts.exterior, parts.feature
    area2 = _ring_areas(xy, sizes, ring, ends)
    ring_ok = (sizes >= 3) & (area2 != 0)
    ring_ok &= ring_ok[exterior][exterior.cumsum() - 1]  # a polygon goes with its exterior ring
    if not ring_ok.all():
        xy, sizes, area2 = xy[ring_ok[ring]], sizes[ring_ok], area2[ring_ok]
        exterior, feature = exterior[ring_ok], feature[ring_ok]
        ring, ends = np.arange(len(sizes)).repeat(sizes), sizes.cumsum()
    xy = _orient(xy, sizes, ring, ends, np.where(exterior, area2 < 0, area2 > 0))  # exterior > 0, holes < 0
    values, offsets = _commands(xy, sizes, ring, ends, feature, parts.n, closed=True)
    return _finish(values, offsets, np.bincount(feature, minlength=parts.n))


def encode_family(parts: Parts, family: int, frame: TileFrame) -> EncodedGeometry:
    """Command arrays for the features of one family (all points, all lines or all polygons)."""
    if not parts.n:
        return EncodedGeometry(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64), np.zeros(1, dtype=np.int64))
    encoder = {POINT: _encode_points, LINE: _encode_lines, POLYGON: _encode_polygons}[family]
    return encoder(parts, frame)
