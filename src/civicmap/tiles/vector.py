"""Mapbox Vector Tiles (MVT 2.1) from GeoDataFrames, without HTTP.

>>> data = encode_mvt({"buildings": buildings_3857}, TileXYZ(16, 39990, 33000))   # doctest: +SKIP

What a tile contains (mapbox/vector-tile-spec 2.1): one layer per non-empty frame, ``version``
2, ``extent`` 4096 by default, integer coordinates with the origin at the tile's top-left and
y down, ``buffer`` extra units around the tile so that lines and fills join across tiles.

Per layer, vectorised over all its features in the tile (numpy and shapely 2, no per-feature
Python): features are picked with the frame's spatial index on the buffered tile, clipped to
it, simplified and reduced (see :func:`encode_mvt`), quantised, oriented, and written straight
to the protobuf wire format (our own encoder, :mod:`civicmap.tiles._mvt_wire`; the tests decode
with the independent ``mapbox-vector-tile`` package).

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
    TileFrame,
    encode_family,
    feature_sizes,
    prepare_geometries,
    reduce,
)
from civicmap.tiles._mvt_properties import (
    ColumnCodes,
    FactorizedColumns,
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

    def pick(self, frame: TileFrame) -> tuple[np.ndarray, np.ndarray]:
        """Positions of features whose envelope meets the buffered tile, and their EPSG:3857 geometries."""
        array = self.gdf.geometry.array  # one geometry lookup per tile: each costs ~10 µs in geopandas
        if self.crs.equals(WEB_MERCATOR):
            rows = np.sort(array.sindex.query(shapely.box(*frame.clip_box)))
            return rows, np.asarray(array[rows])
        box = _native_box(self.crs, frame)
        rows = np.sort(array.sindex.query(shapely.box(*box))) if box is not None else np.arange(len(self.gdf))
        return rows, _to_mercator(np.asarray(array[rows]), self.crs, self.name)

    def codes(self, rows: np.ndarray) -> list[ColumnCodes]:
        return [column_codes(self.gdf, c, rows) for c in self.columns]

    def ids(self, rows: np.ndarray) -> np.ndarray:
        return feature_ids(self.gdf.index, rows)


class MVTSource:
    """A layer prepared once for many tiles (a tile server's or a pyramid writer's view of a frame).

    Holds the frame's geometries in EPSG:3857 with an STRtree, its feature ids, and its
    property columns factorised once, so that a tile only queries, gathers and encodes: the
    tiles are byte-identical to :func:`encode_mvt` on the frame, at a fraction of the fixed cost
    per tile (the price: one pass over the frame here, and its codes in memory, 8 bytes per
    feature and column). ``gdf`` may be in any CRS (reprojected once through
    :func:`civicmap.crs.to_crs`); ``properties`` are the columns written (default: all).
    """

    def __init__(self, gdf: gpd.GeoDataFrame, *, name: str = "layer", properties: Sequence[str] | None = None) -> None:
        crs = _frame_crs(gdf, name)
        self.name = name
        self.columns = property_columns(gdf, name, None if properties is None else {name: properties})
        geoms = np.asarray(gdf.geometry.array)
        self.geoms = geoms if crs.equals(WEB_MERCATOR) else _to_mercator(geoms, crs, name)
        self.tree = shapely.STRtree(self.geoms)
        self.feature_ids = feature_ids(gdf.index)
        self.fields = field_types(gdf, self.columns)
        self._coded = FactorizedColumns(gdf, self.columns)

    def __len__(self) -> int:
        return len(self.geoms)

    def pick(self, frame: TileFrame) -> tuple[np.ndarray, np.ndarray]:
        """Positions of features whose envelope meets the buffered tile, and their EPSG:3857 geometries."""
        rows = np.sort(self.tree.query(shapely.box(*frame.clip_box)))
        return rows, self.geoms[rows]

    def codes(self, rows: np.ndarray, columns: Sequence[str] | None = None) -> list[ColumnCodes]:
        """Property codes of the features at positions ``rows`` (see ``_mvt_properties.ColumnCodes``)."""
        return self._coded.codes_at(rows, columns)

    def ids(self, rows: np.ndarray) -> np.ndarray:
        """MVT feature ids (uint64) of the features at positions ``rows``."""
        return self.feature_ids[rows]


class _Subset:
    """An :class:`MVTSource` with fewer property columns (``encode_mvt(properties=...)``)."""

    def __init__(self, source: MVTSource, columns: list[str]) -> None:
        self.source, self.columns = source, columns

    def pick(self, frame: TileFrame) -> tuple[np.ndarray, np.ndarray]:
        return self.source.pick(frame)

    def codes(self, rows: np.ndarray) -> list[ColumnCodes]:
        return self.source.codes(rows, self.columns)

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
    rows: np.ndarray  # positions into the layer
    geoms: np.ndarray
    family: np.ndarray
    sizes: np.ndarray


@dataclass(frozen=True)
class _Encoded:
    name: str
    data: bytes
    prepared_idx: np.ndarray  # positions into _Prepared arrays, in output order
    feature_bytes: np.ndarray


def _prepare(name: str, layer: _Layer, frame: TileFrame) -> _Prepared:
    rows, geoms = layer.pick(frame)
    pos, geoms, family = prepare_geometries(geoms, frame)
    sizes = np.zeros(len(geoms))
    for fam in (2, 3):
        sel = family == fam
        if sel.any():
            sizes[sel] = feature_sizes(geoms[sel], fam, frame)
    return _Prepared(name, layer, rows[pos], geoms, family, sizes)


def _encode_layer(prep: _Prepared, frame: TileFrame, *, tolerance_px: float, keep: np.ndarray | None) -> _Encoded:
    """Encode one layer, features ordered by family (points, lines, polygons) then by frame row."""
    min_size = MIN_SIZE_PX * tolerance_px if tolerance_px > 0 else 0.0
    chunks, picked = [], []
    for fam in (1, 2, 3):
        idx = np.flatnonzero((prep.family == fam) if keep is None else (prep.family == fam) & keep)
        pos, geoms = reduce(
            prep.geoms[idx], prep.sizes[idx], fam, frame, tolerance_px=tolerance_px, min_size_px=min_size
        )
        enc = encode_family(geoms, fam, frame)
        chunks.append((enc, fam))
        picked.append(idx[pos][enc.features])
    prepared_idx = np.concatenate(picked)
    if not prepared_idx.size:
        return _Encoded(prep.name, b"", prepared_idx, np.zeros(0, dtype=np.int64))
    values = np.concatenate([enc.values for enc, _ in chunks])
    offsets = np.concatenate([[0], np.cumsum(np.concatenate([np.diff(enc.offsets) for enc, _ in chunks]))])
    types = np.concatenate([np.full(len(enc.features), fam, dtype=np.uint64) for enc, fam in chunks])
    rows = prep.rows[prepared_idx]
    tags = tag_table(prep.layer.codes(rows), len(rows))
    arrays = FeatureArrays(prep.layer.ids(rows), types, values, offsets.astype(np.int64), tags.tags, tags.offsets)
    measured = feature_bytes(arrays)
    data = encode_layer(prep.name, arrays, tags.keys, tags.values, extent=frame.extent, sizes=measured)
    sizes = measured[0]
    return _Encoded(prep.name, data, prepared_idx, sizes + 1 + varint_sizes(sizes))


def _drop_smallest(prep: _Prepared, enc: _Encoded, budget: int) -> np.ndarray:
    """Mask over ``prep`` keeping the largest features whose encoded bytes fit ``budget``."""
    sizes = prep.sizes[enc.prepared_idx]
    order = np.argsort(-sizes, kind="stable")
    fits = np.cumsum(enc.feature_bytes[order]) <= budget
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
    preps = [p for p in preps if len(p.geoms)]
    if not preps:
        return b""
    return b"".join(e.data for e in _fit(preps, frame, tolerance_px, max_bytes))


def mvt_fields(gdf: gpd.GeoDataFrame, columns: Sequence[str] | None = None) -> dict[str, str]:
    """TileJSON ``vector_layers[].fields`` for a frame: column -> "Number", "String" or "Boolean".

    ``columns`` defaults to every non-geometry column, as :func:`encode_mvt` writes them.
    """
    cols = property_columns(gdf, "layer", None if columns is None else {"layer": columns})
    return field_types(gdf, cols)
