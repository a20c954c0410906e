"""Mapbox Vector Tiles (MVT 2.1) from GeoDataFrames, without HTTP.

>>> data = encode_mvt({"buildings": buildings_3857}, TileXYZ(16, 39990, 33000))   # doctest: +SKIP

What a tile contains (mapbox/vector-tile-spec 2.1): one layer per non-empty frame, ``version``
2, ``extent`` 4096 by default, integer coordinates with the origin at the tile's top-left and
y down, ``buffer`` extra units around the tile so that lines and fills join across tiles.

Per layer, vectorised over all its features in the tile (numpy and shapely 2, no per-feature
Python): features are picked with the frame's spatial index on the buffered tile, clipped to
it, simplified and reduced (see :func:`encode_mvt`), quantised, oriented, and written straight
to the protobuf wire format (our own encoder, :mod:`civicmap.tiles._mvt_wire`; the tests
decode with the independent ``mapbox-vector-tile`` package). An :class:`MVTSource` also takes
its geometries apart once, so that the features inside a tile (no clipping; at most 5
vertices or no simplification: most of them from z16 on) are sliced from flat arrays without
any GEOS call; the bytes are the same.

Feature ids: a frame with a non-negative integer index gives its labels as ids (unique when
the index is); any other index is hashed to a stable 53-bit id (see ``feature_ids``), the same
in every tile and every run. Properties follow the typing rule of ``_mvt_properties``.
Output is deterministic: the same input gives the same bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS, Transformer

from civicmap.crs import require_crs, to_crs
from civicmap.errors import InputError
from civicmap.tiles._mvt_geometry import (
    POINT,
    Parts,
    PartsIndex,
    TileFrame,
    encode_family,
    feature_sizes,
    interleave,
    parts_of,
    prepare_geometries,
    simplify,
)
from civicmap.tiles._mvt_properties import (
    PropertyIndex,
    TagTable,
    column_codes,
    feature_ids,
    field_types,
    property_columns,
    tag_table,
)
from civicmap.tiles._mvt_wire import FeatureArrays, encode_layer, feature_bytes, varint_sizes
from civicmap.tiles.grid import MAX_LATITUDE, MAX_ZOOM, ORIGIN_SHIFT_M, validate_tile
from civicmap.types import TileXYZ

__all__ = ["DEFAULT_MAX_BYTES", "MIN_SIZE_PX", "MVT_MEDIA_TYPE", "MVTSource", "encode_mvt", "mvt_fields"]

log = logging.getLogger(__name__)

#: Media type of an MVT tile (MVT 2.1 §2.2).
MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
#: Default cap on one tile's size (Mapbox's and tippecanoe's 500 kB guidance).
DEFAULT_MAX_BYTES = 500_000
#: With simplification on, polygons under this area (pixels²) and lines under this length
#: (pixels) are dropped; a pixel is 1/256 of the tile's width. A quarter pixel keeps the small
#: footprints of dense informal areas (15-60 m²) from z15 on, where emergency teams look at
#: single buildings (a whole pixel would drop every building under 91 m² at z14, 23 m² at z15).
MIN_SIZE_PX = 0.25
# Tolerance and size multipliers tried in turn when a tile is over ``max_bytes``.
_HARDER = (1.0, 4.0, 16.0)
WEB_MERCATOR = CRS.from_epsg(3857)


def _native_box(crs: CRS, frame: TileFrame) -> tuple[float, float, float, float] | None:
    """The buffered tile's bounds in ``crs``, or None when they cannot be computed (query all)."""
    w, s, e, n = (min(max(v, -ORIGIN_SHIFT_M), ORIGIN_SHIFT_M) for v in frame.clip_box)
    transformer = Transformer.from_crs(WEB_MERCATOR, crs, always_xy=True)
    try:
        box = transformer.transform_bounds(w, s, e, n, densify_pts=21)
    except Exception:  # pyproj raises ProjError for boxes outside the target's domain
        return None
    return box if np.isfinite(box).all() else None


def _to_mercator(geoms: np.ndarray, crs: CRS, name: str) -> np.ndarray:
    """Geometries in ``crs`` to EPSG:3857, cut at ±85.05° first when ``crs`` is geographic."""
    if crs.is_geographic:  # beyond ±85.05° Web Mercator has no finite y
        b = shapely.bounds(geoms)
        polar = (b[:, 1] < -MAX_LATITUDE) | (b[:, 3] > MAX_LATITUDE)
        if polar.any():
            geoms = geoms.copy()
            geoms[polar] = shapely.clip_by_rect(geoms[polar], -180.0, -MAX_LATITUDE, 180.0, MAX_LATITUDE)
    sub = gpd.GeoDataFrame(geometry=gpd.GeoSeries(geoms, crs=crs))
    return np.asarray(to_crs(sub, WEB_MERCATOR, name=name).geometry.array)


def _frame_crs(gdf: object, name: object) -> CRS:
    if not isinstance(name, str) or not name:
        raise InputError(f"layer name {name!r} is not a non-empty string; MVT layers are named by strings")
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise InputError(f"layer {name!r} is a {type(gdf).__name__}, not a GeoDataFrame or MVTSource")
    crs = gdf.geometry.array.crs
    return crs if crs is not None else require_crs(gdf, name=name)  # raises CRSError


class _FrameLayer:
    """A GeoDataFrame encoded as it is: features picked with its spatial index, properties coded per tile."""

    def __init__(self, gdf: gpd.GeoDataFrame, name: str, properties: Mapping[str, Sequence[str]] | None) -> None:
        self.crs = _frame_crs(gdf, name)
        self.gdf, self.name = gdf, name
        self.columns = property_columns(gdf, name, properties)
        self.index: PartsIndex | None = None

    def pick(self, frame: TileFrame) -> tuple[np.ndarray, np.ndarray]:
        """Positions of features whose envelope meets the buffered tile, and their EPSG:3857 geometries."""
        array = self.gdf.geometry.array  # one geometry lookup per tile: each costs ~10 µs in geopandas
        if self.crs.equals(WEB_MERCATOR):
            rows = np.sort(array.sindex.query(shapely.box(*frame.clip_box)))
            return rows, np.asarray(array[rows])
        box = _native_box(self.crs, frame)
        rows = np.sort(array.sindex.query(shapely.box(*box))) if box is not None else np.arange(len(self.gdf))
        return rows, _to_mercator(np.asarray(array[rows]), self.crs, self.name)

    def tags(self, rows: np.ndarray) -> TagTable:
        return tag_table([column_codes(self.gdf, c, rows) for c in self.columns], len(rows))

    def ids(self, rows: np.ndarray) -> np.ndarray:
        return feature_ids(self.gdf.index, rows)


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Put the 16 low bits of each uint64 at the even bit positions (for Morton codes)."""
    for shift, mask in ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333), (1, 0x55555555)):
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def _spatial_order(geoms: np.ndarray) -> np.ndarray:
    """Positions of ``geoms`` along a Z-order curve of their bounds' centres (null and empty last).

    Features near each other on the map end up near each other in memory, so that a tile's
    gathers from the per-feature arrays touch few cache lines.
    """
    b = shapely.bounds(geoms)
    centre = np.stack([b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]], axis=1) / 2
    ok = np.all(np.isfinite(centre), axis=1)
    if not ok.any():
        return np.arange(len(geoms))
    low, high = centre[ok].min(axis=0), centre[ok].max(axis=0)
    cell = np.clip((centre - low) / np.maximum(high - low, 1e-9) * 65535, 0, 65535)
    cell = np.where(ok[:, None], cell, 0).astype(np.uint64)
    code = _spread_bits(cell[:, 0]) | (_spread_bits(cell[:, 1]) << np.uint64(1))
    code[~ok] = np.uint64(1 << 32)
    return np.argsort(code, kind="stable")


class MVTSource:
    """A layer prepared once for many tiles (a tile server's or a pyramid writer's view of a frame).

    Holds the frame's geometries in EPSG:3857 with an STRtree and a :class:`PartsIndex` (each
    geometry taken apart, so that features inside a tile need no GEOS call), its feature ids,
    and its property columns coded once, so that a tile only queries, gathers and encodes: the
    tiles are byte-identical to :func:`encode_mvt` on the frame, at a fraction of the cost per
    tile. The price: one pass over the frame here, and memory: 4 bytes per feature and column
    for the properties, and the index (``index.nbytes``: 42 bytes per feature with the storage
    order, 16 per vertex, 9 per ring or part; 131 for a 5-vertex footprint). Features are
    stored in a Z-order of their positions (the methods take storage positions, as
    :meth:`pick` gives them). ``gdf`` may be in any CRS (reprojected once through
    :func:`civicmap.crs.to_crs`); ``properties`` are the columns written (default: all).
    """

    def __init__(self, gdf: gpd.GeoDataFrame, *, name: str = "layer", properties: Sequence[str] | None = None) -> None:
        crs = _frame_crs(gdf, name)
        self.name = name
        self.columns = property_columns(gdf, name, None if properties is None else {name: properties})
        geoms = np.asarray(gdf.geometry.array)
        geoms = geoms if crs.equals(WEB_MERCATOR) else _to_mercator(geoms, crs, name)
        self.frame_rows = _spatial_order(geoms)  # storage position -> frame row
        self.geoms = geoms[self.frame_rows]
        self.tree = shapely.STRtree(self.geoms)
        self.index: PartsIndex | None = PartsIndex(self.geoms)
        self.feature_ids = feature_ids(gdf.index)[self.frame_rows]
        self.fields = field_types(gdf, self.columns)
        self._properties = PropertyIndex(gdf, self.columns, order=self.frame_rows)

    def __len__(self) -> int:
        return len(self.geoms)

    def pick(self, frame: TileFrame) -> tuple[np.ndarray, np.ndarray]:
        """Storage positions of the features whose envelope meets the buffered tile, and their geometries.

        Positions come in frame order (the order of the features in the tile); geometries in EPSG:3857.
        """
        found = self.tree.query(shapely.box(*frame.clip_box))
        found = found[self.frame_rows[found].argsort()]
        return found, self.geoms[found]

    def tags(self, rows: np.ndarray, columns: Sequence[str] | None = None) -> TagTable:
        """Tags and encoded key/value tables of the features at storage positions ``rows``."""
        return self._properties.tags_at(rows, columns)

    def ids(self, rows: np.ndarray) -> np.ndarray:
        """MVT feature ids (uint64) of the features at storage positions ``rows``."""
        return self.feature_ids[rows]


class _Subset:
    """An :class:`MVTSource` with fewer property columns (``encode_mvt(properties=...)``)."""

    def __init__(self, source: MVTSource, columns: list[str]) -> None:
        self.source, self.columns = source, columns
        self.index = source.index

    def pick(self, frame: TileFrame) -> tuple[np.ndarray, np.ndarray]:
        return self.source.pick(frame)

    def tags(self, rows: np.ndarray) -> TagTable:
        return self.source.tags(rows, self.columns)

    def ids(self, rows: np.ndarray) -> np.ndarray:
        return self.source.ids(rows)


_Layer = _FrameLayer | MVTSource | _Subset


def _layer(name: str, data: gpd.GeoDataFrame | MVTSource, properties: Mapping[str, Sequence[str]] | None) -> _Layer:
    if not isinstance(data, MVTSource):
        return _FrameLayer(data, name, properties)
    if properties is None or name not in properties:
        return data
    wanted = properties[name]
    missing = [c for c in wanted if c not in data.columns] if not isinstance(wanted, str) else [wanted]
    if missing:
        raise InputError(f"layer {name!r} was prepared with columns {data.columns!r}; cannot write {missing!r}")
    return _Subset(data, [str(c) for c in wanted])


@dataclass(frozen=True)
class _Prepared:
    """One layer's features in the buffered tile, clipped, in EPSG:3857, before reduction."""

    name: str
    layer: _Layer
    rows: np.ndarray  # positions into the layer's storage of every feature picked, in frame order
    geoms: np.ndarray
    family: np.ndarray  # 0: dropped (null, empty, clipped away)
    sizes: np.ndarray
    indexed: np.ndarray  # True: the geometry is the layer's own, its parts are in layer.index


@dataclass(frozen=True)
class _Encoded:
    name: str
    data: bytes
    prepared_idx: np.ndarray  # positions into _Prepared arrays, in output order
    message_bytes: np.ndarray  # size of each Feature message

    @property
    def feature_bytes(self) -> np.ndarray:
        """Bytes each feature takes in the layer: its message, tag and length prefix."""
        return self.message_bytes + 1 + varint_sizes(self.message_bytes)


def _prepare(name: str, layer: _Layer, frame: TileFrame) -> _Prepared:
    """Pick, clip and measure one layer's features; those inside the clip box skip GEOS if indexed."""
    rows, geoms = layer.pick(frame)
    index = layer.index
    if index is None:
        family, sizes, indexed = np.zeros(len(rows), dtype=np.int8), np.zeros(len(rows)), np.zeros(len(rows), bool)
    else:  # the index's measures of every feature; those not inside are redone below
        family = index.family[rows]
        indexed = index.inside(rows, family, frame)
        family = np.where(indexed, family, 0).astype(np.int8)
        sizes = index.sizes(rows, family, frame)
    shaped = (~indexed).nonzero()[0]
    if shaped.size:
        pos, clipped, clipped_family = prepare_geometries(geoms[shaped], frame)
        geoms = geoms.copy()
        geoms[shaped[pos]] = clipped
        family[shaped[pos]] = clipped_family
        for fam in (2, 3):
            sel = clipped_family == fam
            if sel.any():
                sizes[shaped[pos[sel]]] = feature_sizes(clipped[sel], fam, frame)
    return _Prepared(name, layer, rows, geoms, family, sizes, indexed)


def _family_parts(
    prep: _Prepared, idx: np.ndarray, fam: int, frame: TileFrame, tolerance_px: float
) -> tuple[np.ndarray, Parts]:
    """Parts of the features ``idx`` (positions into ``prep``) of family ``fam``, simplified.

    Indexed features with at most 5 vertices (or all of them without simplification) are sliced
    from the layer's index; the others go through shapely. Returns (kept positions, parts).
    """
    index = prep.layer.index
    if index is None:
        pos, geoms = simplify(prep.geoms[idx], fam, frame, tolerance_px=tolerance_px)
        return idx[pos], parts_of(geoms, fam)
    indexed = prep.indexed[idx]
    if tolerance_px > 0 and fam != POINT:  # more than 5 vertices: simplified by shapely
        indexed &= index.few[prep.rows[idx]]
    shaped = (~indexed).nonzero()[0]
    if not shaped.size:
        return idx, index.take(prep.rows[idx])
    pos, geoms = simplify(prep.geoms[idx[shaped]], fam, frame, tolerance_px=tolerance_px)
    if not indexed.any():
        return idx[shaped[pos]], parts_of(geoms, fam)
    kept = indexed.copy()
    kept[shaped[pos]] = True
    taken = index.take(prep.rows[idx[indexed]])
    return idx[kept], interleave(taken, parts_of(geoms, fam), ~indexed[kept]) if pos.size else taken


def _encode_layer(prep: _Prepared, frame: TileFrame, *, tolerance_px: float, keep: np.ndarray | None) -> _Encoded:
    """Encode one layer, features ordered by family (points, lines, polygons) then by frame row."""
    min_size = MIN_SIZE_PX * tolerance_px if tolerance_px > 0 else 0.0
    alive = prep.family > 0 if keep is None else (prep.family > 0) & keep
    if min_size > 0:
        alive &= (prep.sizes >= min_size) | (prep.family == POINT)
    chunks, picked = [], []
    counts = np.bincount(prep.family[alive], minlength=4)
    for fam in (f for f in (1, 2, 3) if counts[f]):
        idx, parts = _family_parts(prep, (alive & (prep.family == fam)).nonzero()[0], fam, frame, tolerance_px)
        enc = encode_family(parts, fam, frame)
        chunks.append((enc, fam))
        picked.append(idx[enc.features])
    prepared_idx = np.concatenate(picked) if len(picked) != 1 else picked[0]
    if not prepared_idx.size:
        return _Encoded(prep.name, b"", prepared_idx, np.zeros(0, dtype=np.int64))
    if len(chunks) == 1:
        values, offsets = chunks[0][0].values, chunks[0][0].offsets
    else:
        values = np.concatenate([enc.values for enc, _ in chunks])
        offsets = np.concatenate([[0], np.cumsum(np.concatenate([np.diff(enc.offsets) for enc, _ in chunks]))])
    types = np.concatenate([np.full(len(enc.features), fam, dtype=np.uint64) for enc, fam in chunks])
    rows = prep.rows[prepared_idx]
    tags = prep.layer.tags(rows)
    arrays = FeatureArrays(prep.layer.ids(rows), types, values, offsets.astype(np.int64), tags.tags, tags.offsets)
    measured = feature_bytes(arrays)
    data = encode_layer(prep.name, arrays, tags.table, extent=frame.extent, sizes=measured)
    return _Encoded(prep.name, data, prepared_idx, measured[0])


def _drop_smallest(prep: _Prepared, enc: _Encoded, budget: int) -> np.ndarray:
    """Mask over ``prep`` keeping the largest features whose encoded bytes fit ``budget``."""
    sizes = prep.sizes[enc.prepared_idx]
    order = np.argsort(-sizes, kind="stable")
    fits = enc.feature_bytes[order].cumsum() <= budget
    keep = np.zeros(len(prep.geoms), dtype=bool)
    keep[enc.prepared_idx[order[fits]]] = True
    return keep


def _check_options(extent: int, buffer: int, max_bytes: int | None) -> None:
    problems = []
    if isinstance(extent, bool) or not isinstance(extent, int) or not 256 <= extent <= 65536:
        problems.append(f"extent {extent!r} must be an integer in 256..65536 (MVT default 4096)")
    if isinstance(buffer, bool) or not isinstance(buffer, int) or not 0 <= buffer <= 4096:
        problems.append(f"buffer {buffer!r} must be an integer in 0..4096 tile units (default 64)")
    if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes < 1024):
        problems.append(f"max_bytes {max_bytes!r} must be None or an integer >= 1024")
    if problems:
        raise InputError("; ".join(problems))


def _tolerance(simplify: bool | float) -> float:
    if isinstance(simplify, bool):
        return 1.0 if simplify else 0.0
    if not isinstance(simplify, int | float) or not 0 <= simplify <= 64:
        raise InputError(f"simplify {simplify!r} must be True/False or a tolerance in pixels between 0 and 64")
    return float(simplify)


def _fit(preps: list[_Prepared], frame: TileFrame, tolerance_px: float, max_bytes: int | None) -> list[_Encoded]:
    """Encode all layers, simplifying harder and then dropping the smallest features to fit ``max_bytes``."""
    factors = _HARDER if tolerance_px > 0 else (1.0,)
    if max_bytes is None:
        return [_encode_layer(p, frame, tolerance_px=tolerance_px, keep=None) for p in preps]
    for factor in factors:
        encoded = [_encode_layer(p, frame, tolerance_px=tolerance_px * factor, keep=None) for p in preps]
        total = sum(len(e.data) for e in encoded)
        if total <= max_bytes:
            return encoded
        log.info("tile is %d bytes at simplification x%g, over max_bytes=%d", total, factor, max_bytes)
    budgets = [int(max_bytes * len(e.data) / total) - (len(e.data) - int(e.feature_bytes.sum())) for e in encoded]
    final = [
        _encode_layer(p, frame, tolerance_px=tolerance_px * factors[-1], keep=_drop_smallest(p, e, max(b, 0)))
        for p, e, b in zip(preps, encoded, budgets, strict=True)
    ]
    dropped = sum(len(e.prepared_idx) for e in encoded) - sum(len(e.prepared_idx) for e in final)
    log.warning(
        "tile over max_bytes=%d (%d bytes) after simplifying x%g: dropped the %d smallest features, now %d bytes",
        max_bytes,
        total,
        factors[-1],
        dropped,
        sum(len(e.data) for e in final),
    )
    return final


def encode_mvt(
    layers: Mapping[str, gpd.GeoDataFrame | MVTSource],
    tile: TileXYZ,
    *,
    extent: int = 4096,
    buffer: int = 64,
    properties: Mapping[str, Sequence[str]] | None = None,
    simplify: bool | float = True,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> bytes:
    """Encode the features of ``layers`` inside ``tile`` as one Mapbox Vector Tile (MVT 2.1).

    ``layers`` maps layer names to GeoDataFrames in any CRS (reprojected to EPSG:3857 through
    :func:`civicmap.crs.to_crs` after the spatial-index pick; pass frames already in EPSG:3857
    to skip that), or :class:`MVTSource` objects (the same tiles, cheaper when one layer gives
    many tiles). ``properties`` maps a layer name to the columns written as feature
    properties; layers it does not name keep all their columns. ``extent`` is the tile's size
    in integer units, ``buffer`` the margin (same units) kept around it.

    ``simplify`` (True = 1 pixel, or a tolerance in pixels; a pixel is 1/256 of the tile's
    width, 9.55 m at z14 on the equator): lines and polygons with more than 5 vertices are
    simplified by that tolerance, and with simplification on, polygons smaller than
    ``MIN_SIZE_PX`` pixels² and lines shorter than ``MIN_SIZE_PX`` pixels are dropped. A tile
    over ``max_bytes`` is re-encoded with 4x then 16x the tolerance and size threshold, then
    by dropping the smallest features until it fits (logged as a warning). ``None`` = no cap.

    Null and empty geometries are skipped; GeometryCollections keep their parts of the highest
    dimension (as PostGIS ST_AsMVTGeom does). Layers without features in the tile are left out;
    a tile without any feature is ``b""`` (HTTP 204 in the service).
    Raises :class:`InputError` for bad arguments, :class:`~civicmap.errors.CRSError` for a
    frame without CRS, :class:`~civicmap.errors.NotFoundError` for a tile outside the grid.
    """
    tile = validate_tile(*tile, maxzoom=MAX_ZOOM)
    _check_options(extent, buffer, max_bytes)
    tolerance_px = _tolerance(simplify)
    frame = TileFrame.for_tile(tile, extent=extent, buffer=buffer)
    preps = [_prepare(name, _layer(name, data, properties), frame) for name, data in layers.items()]
    preps = [p for p in preps if p.family.any()]
    if not preps:
        return b""
    return b"".join(e.data for e in _fit(preps, frame, tolerance_px, max_bytes))


def mvt_fields(gdf: gpd.GeoDataFrame, columns: Sequence[str] | None = None) -> dict[str, str]:
    """TileJSON ``vector_layers[].fields`` for a frame: column -> "Number", "String" or "Boolean".

    ``columns`` defaults to every non-geometry column, as :func:`encode_mvt` writes them.
    """
    cols = property_columns(gdf, "layer", None if columns is None else {"layer": columns})
    return field_types(gdf, cols)
