"""Raster sources: GeoTIFF/COG, ESRI ASCII grids, DEMs, drone orthophotos, hazard and population grids.

Read and check::

    info = validate_raster("dem.tif")                        # every problem at once, or a RasterInfo
    validate_raster("dir.asc", crs="EPSG:4326")               # assign the CRS a .asc without .prj lacks
    with open_raster("dem.tif") as ds: ...                    # a validated rasterio dataset
    depth, transform = read_window("flood.tif", bbox, bounds_crs="EPSG:4326", out_shape=(256, 256))
    depth_m = sample_raster("flood.tif", buildings_points)    # Series on the frame's index, NaN = no data

Write (streamed chunk-wise; atomic replace of the destination)::

    reproject_raster("dem.tif", "dem_utm.tif", dst_crs=local_metric_crs(bbox))
    clip_raster("ortho.tif", "site.tif", bounds=bbox, bounds_crs="EPSG:4326")
    mosaic_rasters(["tile1.tif", "tile2.tif"], "dem.tif")
    write_cog("ortho.tif", "ortho_cog.tif", compress="JPEG", web_optimized=True)

Safety: only local files are read unless ``allow_remote=True``; ``/vsicurl/``, ``/vsis3/``,
URLs, GDAL connection strings and VRT-like files (which make GDAL read other files or URLs)
are refused. Resampling defaults: ``bilinear`` for continuous data, ``nearest`` for rasters
with a colour table; pass ``"nearest"`` for class rasters (hazard classes) stored as numbers.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.windows import Window

from civicmap.crs import to_crs
from civicmap.errors import GeometryError, InputError
from civicmap.sources._raster_core import (
    DEFAULT_MAX_PIXELS,
    MAX_BLOCK_PIXELS,
    RasterDataset,
    RasterInfo,
    open_raster,
    read_raster_info,
    resampling_from,
    validate_raster,
    window_for_bounds,
)
from civicmap.sources._raster_write import clip_raster, mosaic_rasters, reproject_raster, write_cog

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "READ_MAX_PIXELS",
    "RasterInfo",
    "clip_raster",
    "mosaic_rasters",
    "open_raster",
    "read_raster_info",
    "read_window",
    "reproject_raster",
    "sample_raster",
    "validate_raster",
    "write_cog",
]

log = logging.getLogger(__name__)

#: Largest array :func:`read_window` returns, in pixels (100 million, 400 MB of float32).
READ_MAX_PIXELS = 100_000_000
# Point sets whose bounding window is at most this many pixels are read in one go (at least one
# validated block, so the per-block fallback always ends).
_SAMPLE_WINDOW_PIXELS = MAX_BLOCK_PIXELS


def _check_band(ds: RasterDataset, band: int) -> None:
    if not isinstance(band, int) or not 1 <= band <= ds.count:
        raise InputError(f"band {band!r} does not exist; this raster has bands 1..{ds.count}")


def _out_shape(out_shape: Any, win: Window) -> tuple[int, int]:
    if out_shape is None:
        return int(win.height), int(win.width)
    shape = tuple(out_shape)
    if len(shape) != 2 or not all(isinstance(v, int | np.integer) and v > 0 for v in shape):
        raise InputError(f"out_shape {out_shape!r} must be two positive integers (rows, columns)")
    return int(shape[0]), int(shape[1])


def read_window(
    path: str | os.PathLike[str],
    bounds: Any,
    *,
    bounds_crs: Any = None,
    out_shape: tuple[int, int] | None = None,
    band: int = 1,
    resampling: str | Resampling = "nearest",
    crs: Any = None,
) -> tuple[np.ma.MaskedArray, Affine]:
    """Read one band over ``bounds`` only, as a masked array and its affine transform.

    ``bounds`` (west, south, east, north) are in ``bounds_crs`` (default: the raster's CRS) and
    are rounded outwards to whole pixels, cut to the raster. With ``out_shape`` (rows, columns)
    smaller than the window, GDAL reads from the overviews when the file has them, so a thumbnail
    of a huge COG costs little. The transform maps the returned array into the raster's CRS.
    Masked cells are nodata (or outside the alpha/mask). ``crs`` assigns a CRS the file lacks.
    Raises :class:`InputError` when the bounds miss the raster or the array would exceed
    ``READ_MAX_PIXELS``.
    """
    method = resampling_from(resampling)
    with open_raster(path, crs=crs, max_pixels=None) as ds:
        _check_band(ds, band)
        win = window_for_bounds(ds, bounds, bounds_crs)
        rows, cols = _out_shape(out_shape, win)
        if rows * cols > READ_MAX_PIXELS:
            raise InputError(
                f"reading {cols:,} x {rows:,} = {rows * cols:,} pixels is over READ_MAX_PIXELS "
                f"({READ_MAX_PIXELS:,}); pass a smaller out_shape or smaller bounds"
            )
        data = ds.read(band, window=win, out_shape=(rows, cols), masked=True, resampling=method)
        transform = (
            ds.transform
            @ Affine.translation(win.col_off, win.row_off)
            @ Affine.scale(win.width / cols, win.height / rows)
        )
    return data, transform


def _point_xy(points: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    geoms = points.geometry.to_numpy()
    kinds = shapely.get_type_id(geoms)
    bad = (kinds != shapely.GeometryType.POINT) & ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    if bad.any():
        names = sorted({g.geom_type for g in geoms[bad][:50]})
        raise GeometryError(
            f"sample_raster needs Point geometries, but {int(bad.sum())} are {', '.join(names)}; "
            "use gdf.representative_point() or centroids first"
        )
    located = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)  # GEOS cannot give x of an empty point
    xs, ys = np.full(len(geoms), np.nan), np.full(len(geoms), np.nan)
    xs[located], ys[located] = shapely.get_x(geoms[located]), shapely.get_y(geoms[located])
    return xs, ys


def _read_cells(ds: RasterDataset, band: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Values (float64, NaN where masked) at ``rows``/``cols``, from one read of the window they span."""
    r0, c0 = int(rows.min()), int(cols.min())
    window = Window(c0, r0, int(cols.max()) - c0 + 1, int(rows.max()) - r0 + 1)
    arr = ds.read(band, window=window, masked=True)
    return arr.astype("float64").filled(np.nan)[rows - r0, cols - c0]


def _values_at(ds: RasterDataset, band: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Cell values at in-range ``rows``/``cols``: one window read, or one read per touched block."""
    if rows.size == 0:
        return np.full(rows.shape, np.nan)
    span = (int(rows.max()) - int(rows.min()) + 1) * (int(cols.max()) - int(cols.min()) + 1)
    if span <= _SAMPLE_WINDOW_PIXELS:
        return _read_cells(ds, band, rows, cols)
    block_h, block_w = ds.block_shapes[band - 1]
    key = (rows // block_h) * (ds.width // block_w + 1) + cols // block_w
    order = np.argsort(key, kind="stable")
    _, starts = np.unique(key[order], return_index=True)
    out = np.empty(rows.shape)
    for group in np.split(order, starts[1:]):  # a loop over blocks, not over points
        out[group] = _read_cells(ds, band, rows[group], cols[group])
    return out


def sample_raster(
    path: str | os.PathLike[str],
    points_gdf: gpd.GeoDataFrame,
    *,
    band: int = 1,
    crs: Any = None,
    name: str | None = None,
) -> pd.Series:
    """Raster values at points: a float Series on ``points_gdf``'s index, NaN for no data.

    Points are reprojected to the raster's CRS with :func:`civicmap.crs.to_crs` (the frame must
    have a CRS). A point takes the value of the pixel containing it (no interpolation); points
    outside the raster, on nodata/masked pixels, or with empty geometry get NaN. Values are in
    the raster's units (e.g. flood depth in metres). Reads only the window the points span (or
    the blocks they fall in), never point by point. The Series is named ``name`` or the file stem.
    """
    with open_raster(path, crs=crs, max_pixels=None) as ds:
        _check_band(ds, band)
        raster_crs = CRS.from_wkt(ds.crs.to_wkt())
        xs, ys = _point_xy(to_crs(points_gdf, raster_crs, name="points"))
        col_f, row_f = (~ds.transform) @ (xs, ys)
        inside = np.isfinite(col_f) & np.isfinite(row_f)
        inside &= (col_f >= 0) & (col_f < ds.width) & (row_f >= 0) & (row_f < ds.height)
        values = np.full(len(xs), np.nan)
        rows = np.floor(row_f[inside]).astype(np.int64)
        cols = np.floor(col_f[inside]).astype(np.int64)
        values[inside] = _values_at(ds, band, rows, cols)
    log.debug("sampled %s at %d points: %d outside, %d no data", path, len(xs), (~inside).sum(), np.isnan(values).sum())
    return pd.Series(values, index=points_gdf.index, name=name or Path(path).stem, dtype="float64")
