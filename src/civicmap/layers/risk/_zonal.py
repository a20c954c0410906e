"""Zonal statistics of hazard rasters over many small polygons, exactly and without a per-polygon loop.

Private to :mod:`civicmap.layers.risk.exposure`. A cell *touches* a polygon when the two
overlap with positive area (what exactextract calls a coverage fraction above 0). That holds
exactly when the cell centre lies inside the polygon, or a polygon edge passes through the
open cell; both tests are run on all (polygon, cell) candidate pairs at once with numpy and
``shapely.contains_xy``. Polygons so degenerate that they touch no cell use the cell under
their representative point. Work goes in chunks of polygons sorted by position, and each
chunk reads only the raster window under it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.windows import Window

from civicmap.errors import InputError
from civicmap.layers.risk.hazard import NOT_CLASSED, HazardClassification, raster_levels

__all__ = ["GridSpec", "outer_window", "zonal_levels"]

_CHUNK = 50_000


@dataclass(frozen=True)
class GridSpec:
    """A north-up grid: origin (x0, y0) of the top-left corner, cell size, shape (rows, cols)."""

    x0: float
    y0: float
    dx: float
    dy: float
    rows: int
    cols: int

    @classmethod
    def from_dataset(cls, ds: rasterio.io.DatasetReader) -> GridSpec:
        """Grid of an open raster; rotated or south-up rasters are refused."""
        t: Affine = ds.transform
        if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
            raise InputError(
                f"raster {ds.name!r} is rotated or not north-up (transform {tuple(t)[:6]}); "
                "warp it to a north-up grid first (gdalwarp)"
            )
        return cls(t.c, t.f, t.a, -t.e, ds.height, ds.width)

    def cols_of(self, x: np.ndarray) -> np.ndarray:
        """Column of each x (a point on a vertical cell edge goes to the cell on its right)."""
        return np.floor((x - self.x0) / self.dx).astype(np.int64)

    def rows_of(self, y: np.ndarray) -> np.ndarray:
        """Row of each y (a point on a horizontal cell edge goes to the cell below it)."""
        return np.floor((self.y0 - y) / self.dy).astype(np.int64)


def outer_window(ds: rasterio.io.DatasetReader, bounds: np.ndarray, *, margin: int = 0) -> Window:
    """Whole-cell window covering ``bounds`` (raster CRS) plus ``margin`` cells, clipped to the raster.

    The window has zero width or height when ``bounds`` misses the raster.
    """
    grid = GridSpec.from_dataset(ds)
    c0 = int(np.floor((bounds[0] - grid.x0) / grid.dx)) - margin
    c1 = int(np.ceil((bounds[2] - grid.x0) / grid.dx)) + margin
    r0 = int(np.floor((grid.y0 - bounds[3]) / grid.dy)) - margin
    r1 = int(np.ceil((grid.y0 - bounds[1]) / grid.dy)) + margin
    c0, c1 = min(max(c0, 0), grid.cols), min(max(c1, 0), grid.cols)
    r0, r1 = min(max(r0, 0), grid.rows), min(max(r1, 0), grid.rows)
    return Window(c0, r0, max(c1 - c0, 0), max(r1 - r0, 0))


def zonal_levels(
    geoms: np.ndarray,
    ds: rasterio.io.DatasetReader,
    *,
    classification: HazardClassification,
    stat: str,
    code_map: Mapping[int, str] | None = None,
    band: int = 1,
) -> np.ndarray:
    """Hazard class index per geometry (int16, -1 = not exposed), geometries in the raster's CRS.

    ``stat``: ``"max"`` (most severe class among touched cells), ``"mean"`` (class of the mean
    value of touched valid cells; continuous rasters only) or ``"centroid"`` (cell under the
    representative point). Points always use their own cell.
    """
    grid = GridSpec.from_dataset(ds)
    out = np.full(len(geoms), NOT_CLASSED, dtype=np.int16)
    if len(geoms) == 0:
        return out
    is_poly = np.isin(shapely.get_type_id(geoms), [3, 6])
    by_point = ~is_poly if stat != "centroid" else np.ones(len(geoms), dtype=bool)
    reader = _Reader(ds, grid, band, classification, code_map)
    if by_point.any():
        out[by_point] = _point_levels(shapely.point_on_surface(geoms[by_point]), grid, reader)
    areal = np.flatnonzero(~by_point)
    if areal.size:
        order = areal[_spatial_order(geoms[areal], grid)]
        for start in range(0, order.size, _CHUNK):
            idx = order[start : start + _CHUNK]
            out[idx] = _polygon_levels(geoms[idx], grid, reader, stat)
    return out


class _Reader:
    """Reads a window of the band and returns raw values plus class indices."""

    def __init__(
        self,
        ds: rasterio.io.DatasetReader,
        grid: GridSpec,
        band: int,
        classification: HazardClassification,
        code_map: Mapping[int, str] | None,
    ) -> None:
        self.ds, self.grid, self.band = ds, grid, band
        self.classification, self.code_map = classification, code_map

    def read(self, r0: int, r1: int, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        """Values and class indices of rows r0..r1-1, cols c0..c1-1 (already clipped to the grid)."""
        values = self.ds.read(self.band, window=Window(c0, r0, c1 - c0, r1 - r0))
        levels = raster_levels(values, classification=self.classification, nodata=self.ds.nodata,
                               code_map=self.code_map)  # fmt: skip
        return values, levels


def _spatial_order(geoms: np.ndarray, grid: GridSpec) -> np.ndarray:
    """Order by 256-row bands, then by column, so that each chunk reads a compact window."""
    b = shapely.bounds(geoms)
    rows = grid.rows_of(b[:, 3]) // 256
    return np.lexsort((grid.cols_of(b[:, 0]), rows))


def _point_levels(points: np.ndarray, grid: GridSpec, reader: _Reader) -> np.ndarray:
    xy = shapely.get_coordinates(points)
    rows, cols = grid.rows_of(xy[:, 1]), grid.cols_of(xy[:, 0])
    inside = (rows >= 0) & (rows < grid.rows) & (cols >= 0) & (cols < grid.cols)
    out = np.full(len(points), NOT_CLASSED, dtype=np.int16)
    if not inside.any():
        return out
    r0, r1 = int(rows[inside].min()), int(rows[inside].max()) + 1
    c0, c1 = int(cols[inside].min()), int(cols[inside].max()) + 1
    _, levels = reader.read(r0, r1, c0, c1)
    out[inside] = levels[rows[inside] - r0, cols[inside] - c0]
    return out


def _polygon_levels(geoms: np.ndarray, grid: GridSpec, reader: _Reader, stat: str) -> np.ndarray:
    pid, rows, cols = _touched_cells(geoms, grid)
    out = np.full(len(geoms), NOT_CLASSED, dtype=np.int16)
    missing = np.ones(len(geoms), dtype=bool)
    missing[pid] = False
    if missing.any():
        out[missing] = _point_levels(shapely.point_on_surface(geoms[missing]), grid, reader)
    if pid.size == 0:
        return out
    r0, r1, c0, c1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    values, levels = reader.read(r0, r1, c0, c1)
    lv = levels[rows - r0, cols - c0]
    if stat == "max":
        best = np.full(len(geoms), NOT_CLASSED, dtype=np.int16)
        np.maximum.at(best, pid, lv)
        out[~missing] = best[~missing]
        return out
    mean = _mean_values(pid, values[rows - r0, cols - c0], lv >= 0, len(geoms))
    got = ~missing & np.isfinite(mean)
    out[got] = reader.classification.classify(mean[got].astype(values.dtype))
    out[~missing & ~got] = NOT_CLASSED
    return out


def _mean_values(pid: np.ndarray, values: np.ndarray, valid: np.ndarray, n: int) -> np.ndarray:
    total = np.bincount(pid[valid], weights=values[valid].astype(np.float64), minlength=n)
    count = np.bincount(pid[valid], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _touched_cells(geoms: np.ndarray, grid: GridSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique (polygon, row, col) triples of every grid cell each polygon overlaps with positive area."""
    shapely.prepare(geoms)
    pid, rows, cols = _window_pairs(shapely.bounds(geoms), grid)
    centre_in = shapely.contains_xy(geoms[pid], grid.x0 + (cols + 0.5) * grid.dx, grid.y0 - (rows + 0.5) * grid.dy)
    e_pid, e_rows, e_cols = _edge_cells(geoms, grid)
    pid = np.concatenate([pid[centre_in], e_pid])
    rows = np.concatenate([rows[centre_in], e_rows])
    cols = np.concatenate([cols[centre_in], e_cols])
    keep = (rows >= 0) & (rows < grid.rows) & (cols >= 0) & (cols < grid.cols)
    key = np.unique((pid[keep] * grid.rows + rows[keep]) * grid.cols + cols[keep])
    cols_u = key % grid.cols
    rest = key // grid.cols
    return rest // grid.rows, rest % grid.rows, cols_u


def _window_pairs(bounds: np.ndarray, grid: GridSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (item, row, col) whose cell lies in the item's bounding-box window, clipped to the grid."""
    c0 = np.clip(grid.cols_of(bounds[:, 0]), 0, grid.cols - 1)
    c1 = np.clip(grid.cols_of(bounds[:, 2]), 0, grid.cols - 1)
    r0 = np.clip(grid.rows_of(bounds[:, 3]), 0, grid.rows - 1)
    r1 = np.clip(grid.rows_of(bounds[:, 1]), 0, grid.rows - 1)
    outside = (grid.cols_of(bounds[:, 2]) < 0) | (grid.cols_of(bounds[:, 0]) >= grid.cols)
    outside |= (grid.rows_of(bounds[:, 1]) < 0) | (grid.rows_of(bounds[:, 3]) >= grid.rows)
    ncol = np.where(outside, 0, c1 - c0 + 1)
    nrow = np.where(outside, 0, r1 - r0 + 1)
    n = ncol * nrow
    item = np.repeat(np.arange(len(bounds)), n)
    k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    return item, r0[item] + k // ncol[item], c0[item] + k % ncol[item]


def _edge_cells(geoms: np.ndarray, grid: GridSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(polygon, row, col) of every cell whose open interior a polygon edge passes through."""
    rings, ring_owner = shapely.get_parts(shapely.boundary(geoms), return_index=True)
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    same = ring_of[1:] == ring_of[:-1]
    ax, ay, bx, by = xy[:-1, 0][same], xy[:-1, 1][same], xy[1:, 0][same], xy[1:, 1][same]
    seg_owner = ring_owner[ring_of[:-1][same]]
    seg_bounds = np.column_stack([np.minimum(ax, bx), np.minimum(ay, by), np.maximum(ax, bx), np.maximum(ay, by)])
    seg, rows, cols = _window_pairs(seg_bounds, grid)
    hit = _segment_crosses_cell(ax[seg], ay[seg], bx[seg], by[seg], rows, cols, grid)
    return seg_owner[seg[hit]], rows[hit], cols[hit]


def _segment_crosses_cell(
    ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray, rows: np.ndarray, cols: np.ndarray, grid: GridSpec
) -> np.ndarray:
    """Whether segment A-B meets the *open* cell (Liang-Barsky clipping against both slabs)."""
    xmin = grid.x0 + cols * grid.dx
    ymax = grid.y0 - rows * grid.dy
    lo_x, hi_x = _slab(ax, bx - ax, xmin, xmin + grid.dx)
    lo_y, hi_y = _slab(ay, by - ay, ymax - grid.dy, ymax)
    lo = np.maximum(lo_x, lo_y)
    hi = np.minimum(hi_x, hi_y)
    return (lo < hi) & (lo < 1.0) & (hi > 0.0)


def _slab(p: np.ndarray, d: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Open parameter interval (t_lo, t_hi) where p + t d lies strictly between low and high."""
    flat = d == 0
    safe = np.where(flat, 1.0, d)
    t1 = (low - p) / safe
    t2 = (high - p) / safe
    inside = (p > low) & (p < high)
    t_lo = np.where(flat, np.where(inside, -np.inf, np.inf), np.minimum(t1, t2))
    t_hi = np.where(flat, np.where(inside, np.inf, -np.inf), np.maximum(t1, t2))
    return t_lo, t_hi
