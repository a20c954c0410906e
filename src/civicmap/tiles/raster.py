"""PNG (and JPEG/WebP) tiles from rasters such as COGs, in the XYZ grid of EPSG:3857.

How a tile is read (bounded work, overviews used, no full-resolution read of a zoomed-out tile):

1. The tile's EPSG:3857 bounds are met with the raster's footprint; no overlap -> ``None``.
2. The overlap is taken into the raster's CRS and turned into a pixel window (plus a margin).
3. The window's source pixels per tile pixel pick the overview GDAL's own rule picks (so the
   pixels are those rio-tiler / TiTiler show): the coarsest whose factor is below that number
   times 1.2 (nearest) or 1.0 (bilinear), plus 0.1. The window is aligned to that overview's
   pixels and ``out_shape`` makes GDAL read it. If the pixels still to read exceed
   ``max_source_pixels`` (a raster without overviews seen at a low zoom), :class:`InputError`
   says so and how to fix it.
4. The small array is warped into the exact tile grid (``tilesize`` x ``tilesize``) with
   ``rasterio.warp.reproject``; validity (nodata, masks, alpha bands, non-finite values)
   travels as an alpha band, so nodata never bleeds into bilinear results and ends up
   transparent. A north-up raster already in EPSG:3857 needs no warp: it is resampled in
   numpy, axis by axis (:mod:`civicmap.tiles._raster_read`), with the same kernels and
   validity rule, at a fraction of a GDAL warp's per-tile cost. A nodata-only mask is
   computed from the values instead of being read.
5. Colours: a colormap (after optional ``rescale``), a hillshade, grey for one band or RGB
   pass-through for three ``uint8`` bands. One band becomes levels 0..255 and a 256-colour
   table (a ``rescale``-d continuous colormap takes the colour of the rounded level, as
   rio-tiler does; without ``rescale`` it is interpolated at the value). All transparent ->
   ``None`` (HTTP 204).

Hillshade: illumination ``n·s`` of the surface normal by a sun at azimuth 315°, altitude 45°
(n from ``numpy.gradient``), scaled to 0..255 (flat ground = 180). It is computed on the tile
grid grown by one pixel on every side and cropped, so edge pixels see their real neighbours
and adjacent tiles agree at the seam. Web Mercator inflates distances by 1/cos(latitude); the
gradient uses ground spacing ``resolution * cos(latitude)`` per row. Elevations in metres.

Encoding (palette or RGBA PNG, JPEG, WebP): :mod:`civicmap.tiles._encode`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS as RIO_CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window
from rasterio.windows import from_bounds as window_from_bounds

from civicmap.errors import CRSError, InputError
from civicmap.sources.raster import open_raster
from civicmap.tiles._encode import FORMATS, Indexed, encode_image, with_alpha
from civicmap.tiles._raster_read import is_north_up, resample_aligned
from civicmap.tiles.colormaps import ClassedColormap, Colormap, ContinuousColormap, get_colormap
from civicmap.tiles.grid import MAX_LATITUDE, MAX_ZOOM, lonlat_to_mercator, tile_bounds, validate_tile
from civicmap.types import BBox, TileXYZ

__all__ = ["MAX_SOURCE_PIXELS", "TileStyle", "render_png", "render_tile"]

#: Largest source window read for one tile, in pixels: 2048 x 2048, i.e. a raster without
#: overviews renders down to about three zoom levels below its native resolution.
MAX_SOURCE_PIXELS = 2048 * 2048
SUN_AZIMUTH_DEG = 315.0
SUN_ALTITUDE_DEG = 45.0
_MERCATOR = RIO_CRS.from_epsg(3857)
_OVERSAMPLING_THRESHOLD = {"nearest": 1.2, "bilinear": 1.0}  # GDAL's, see _overview_factor
_GREY = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 4, axis=1)
_GREY[:, 3] = 255
_GREY.flags.writeable = False


@dataclass(frozen=True)
class TileStyle:
    """How pixel values become colours.

    ``colormap``: a colormap object or the name of a declared one (:mod:`civicmap.tiles.colormaps`),
    for one band. ``rescale``: (min, max) stretched linearly to 0..255 before the colormap (or
    as grey / RGB without one). ``band_indexes``: 1-based, one band or three (RGB); default the
    first three bands if they are red/green/blue, else band 1. ``resampling``: "nearest" or
    "bilinear" (class rasters need nearest). ``hillshade``: shade a DEM (one band, metres).
    """

    colormap: Colormap | str | None = None
    rescale: tuple[float, float] | None = None
    band_indexes: tuple[int, ...] | None = None
    resampling: str = "nearest"
    hillshade: bool = False

    def checked(self) -> TileStyle:
        """Return the style with the colormap resolved, or :class:`InputError` listing every problem."""
        problems = []
        cmap = get_colormap(self.colormap) if self.colormap is not None else None
        if self.resampling not in ("nearest", "bilinear"):
            problems.append(f"resampling {self.resampling!r} must be 'nearest' or 'bilinear'")
        if isinstance(cmap, ClassedColormap) and self.resampling != "nearest":
            problems.append("a classed colormap needs resampling='nearest' (bilinear would blend class numbers)")
        if self.hillshade and cmap is not None:
            problems.append("hillshade and colormap cannot be combined; render them as two layers")
        if self.rescale is not None and (
            len(self.rescale) != 2
            or not all(math.isfinite(v) for v in self.rescale)
            or self.rescale[0] >= self.rescale[1]
        ):
            problems.append(f"rescale {self.rescale!r} must be two finite numbers (min, max) with min < max")
        if self.band_indexes is not None and len(self.band_indexes) not in (1, 3):
            problems.append(f"band_indexes {self.band_indexes!r} must name one band or three (r, g, b)")
        if problems:
            raise InputError("tile style: " + "; ".join(problems))
        return TileStyle(cmap, self.rescale, self.band_indexes, self.resampling, self.hillshade)


@dataclass(frozen=True)
class _Grid:
    """The destination grid in EPSG:3857: the tile, grown by ``pad`` pixels on each side."""

    bounds: BBox
    transform: Affine
    size: int
    pad: int

    @classmethod
    def for_tile(cls, tile: TileXYZ, tilesize: int, pad: int) -> _Grid:
        w, s, e, n = tile_bounds(tile)
        res = (e - w) / tilesize
        bounds = BBox(w - pad * res, s - pad * res, e + pad * res, n + pad * res)
        return cls(bounds, Affine(res, 0, bounds.west, 0, -res, bounds.north), tilesize + 2 * pad, pad)


@dataclass(frozen=True)
class _Read:
    window: Window
    out_shape: tuple[int, int]
    transform: Affine


@contextmanager
def _dataset(source: Any) -> Iterator[DatasetReader | WarpedVRT]:
    if isinstance(source, DatasetReader | WarpedVRT):
        yield source
        return
    if not isinstance(source, str | os.PathLike):
        raise InputError(f"raster source {source!r} is neither a path nor an open rasterio dataset")
    with open_raster(source, max_pixels=None) as ds:
        yield ds


def _footprint_3857(ds: DatasetReader | WarpedVRT) -> BBox:
    """The raster's bounds in EPSG:3857 (via lon/lat, latitudes clamped to the Mercator limit)."""
    if ds.crs == _MERCATOR:
        return BBox(*ds.bounds)
    w, s, e, n = transform_bounds(ds.crs, RIO_CRS.from_epsg(4326), *ds.bounds, densify_pts=21)
    xs, ys = lonlat_to_mercator([w, e], [max(s, -MAX_LATITUDE), min(n, MAX_LATITUDE)])
    return BBox(float(xs[0]), float(ys[0]), float(xs[1]), float(ys[1]))


def _aligned(start: float, stop: float, factor: int, limit: int) -> tuple[int, int]:
    lo = max(0, (math.floor(start) - 1) // factor * factor)
    hi = min(limit, -(-(math.ceil(stop) + 1) // factor) * factor)
    return lo, hi


def _overview_factor(factors: Sequence[int], desired: float, resampling: str) -> int:
    """The overview GDAL reads for ``desired`` source pixels per output pixel (1: full resolution).

    GDAL's rule (``GDALBandGetBestOverviewLevel2``, GDAL >= 3.9): the coarsest overview whose
    factor is below ``desired * threshold + 0.1``, the threshold being 1.2 for nearest and 1.0
    for other resamplings. rio-tiler / TiTiler read through this rule, so tiles match theirs.
    """
    limit = desired * _OVERSAMPLING_THRESHOLD[resampling] + 0.1
    return max([1, *(f for f in factors if f < limit)])


def _plan(
    ds: DatasetReader | WarpedVRT, grid: _Grid, band: int, *, max_source_pixels: int, resampling: str
) -> _Read | None:
    """Which window and overview to read for ``grid``, or None when the tile misses the raster."""
    foot = _footprint_3857(ds)
    box = BBox(
        max(foot.west, grid.bounds.west),
        max(foot.south, grid.bounds.south),
        min(foot.east, grid.bounds.east),
        min(foot.north, grid.bounds.north),
    )
    if box.west >= box.east or box.south >= box.north:
        return None
    src_box = transform_bounds(_MERCATOR, ds.crs, *box, densify_pts=21) if ds.crs != _MERCATOR else box
    win = window_from_bounds(*src_box, transform=ds.transform)
    res = grid.transform.a
    per_px = min(win.width / ((box.east - box.west) / res), win.height / ((box.north - box.south) / res))
    factor = _overview_factor(ds.overviews(band), per_px, resampling)
    col0, col1 = _aligned(win.col_off, win.col_off + win.width, factor, ds.width)
    row0, row1 = _aligned(win.row_off, win.row_off + win.height, factor, ds.height)
    if col1 <= col0 or row1 <= row0:
        return None
    out_shape = (-(-(row1 - row0) // factor), -(-(col1 - col0) // factor))
    if out_shape[0] * out_shape[1] > max_source_pixels:
        has = "its coarsest overview is too fine" if ds.overviews(band) else "it has no overviews"
        raise InputError(
            f"this tile needs {out_shape[1]:,} x {out_shape[0]:,} source pixels, over the budget of "
            f"{max_source_pixels:,}, because {has}; add overviews (civicmap.sources.raster.write_cog, or "
            "gdaladdo) or serve this raster from a higher minzoom"
        )
    window = Window(col0, row0, col1 - col0, row1 - row0)
    scale = Affine.scale(window.width / out_shape[1], window.height / out_shape[0])
    return _Read(window, out_shape, ds.window_transform(window) * scale)


def _validity(ds: DatasetReader | WarpedVRT, plan: _Read, bands: Sequence[int], data: np.ndarray) -> np.ndarray:
    """True where any band has data (per the masks) and every band is finite."""
    flags = [ds.mask_flag_enums[b - 1] for b in bands]
    finite = np.isfinite(data).all(axis=0)
    if all(f == [MaskFlags.all_valid] for f in flags):
        return finite
    if all(f == [MaskFlags.nodata] for f in flags):  # the mask GDAL would derive, without reading it
        nodata = np.array([ds.nodatavals[b - 1] for b in bands], dtype=np.float64)[:, None, None]
        return (data != nodata).any(axis=0) & finite
    shape = (len(bands), *plan.out_shape)
    masks = ds.read_masks(list(bands), window=plan.window, out_shape=shape, resampling=Resampling.nearest)
    return (masks > 0).any(axis=0) & finite


def _read_warped(
    ds: DatasetReader | WarpedVRT, plan: _Read, grid: _Grid, bands: Sequence[int], resampling: str
) -> tuple[np.ndarray, np.ndarray]:
    """The bands on the destination grid (float) and the alpha (0..255) of valid pixels."""
    shape = (len(bands), *plan.out_shape)
    data = ds.read(list(bands), window=plan.window, out_shape=shape, resampling=Resampling.nearest)
    work = np.float64 if data.dtype == np.float64 else np.float32
    valid = _validity(ds, plan, bands, data)
    if ds.crs == _MERCATOR and is_north_up(plan.transform):  # same grid family: no warp needed
        return resample_aligned(
            data.astype(work, copy=False),
            valid,
            src_transform=plan.transform,
            dst_transform=grid.transform,
            dst_size=grid.size,
            resampling=resampling,
        )
    source = np.zeros((len(bands) + 1, *plan.out_shape), dtype=work)
    source[:-1] = np.where(valid, data, 0)
    source[-1] = valid * 255
    dest = np.zeros((len(bands) + 1, grid.size, grid.size), dtype=work)
    reproject(
        source,
        dest,
        src_transform=plan.transform,
        src_crs=ds.crs,
        dst_transform=grid.transform,
        dst_crs=_MERCATOR,
        resampling=Resampling[resampling],
        src_alpha=len(bands) + 1,
        dst_alpha=len(bands) + 1,
    )
    return dest[:-1], np.clip(np.rint(dest[-1]), 0, 255).astype(np.uint8)


def _hillshade(dem: np.ndarray, grid: _Grid) -> np.ndarray:
    """Shade 0..255 of a DEM on the (padded) grid; see the module docstring for the formula."""
    rows_y = grid.bounds.north - (np.arange(grid.size) + 0.5) * grid.transform.a
    lat = np.degrees(2 * np.arctan(np.exp(rows_y / 6378137.0)) - np.pi / 2)
    spacing = grid.transform.a * np.cos(np.radians(lat))[:, None]  # ground metres per pixel, per row
    d_south, d_east = np.gradient(dem.astype(np.float64))
    dz_east, dz_north = d_east / spacing, -d_south / spacing
    az, alt = np.radians(SUN_AZIMUTH_DEG), np.radians(SUN_ALTITUDE_DEG)
    lit = (-dz_east * np.sin(az) * np.cos(alt) - dz_north * np.cos(az) * np.cos(alt) + np.sin(alt)) / np.sqrt(
        1 + dz_east**2 + dz_north**2
    )
    return np.clip(np.rint(255 * lit), 0, 255).astype(np.uint8)


def _levels(values: np.ndarray, rescale: tuple[float, float] | None) -> np.ndarray:
    """Values as levels 0..255 (uint8, rounded): linearly stretched from ``rescale`` when given."""
    if rescale is not None:
        lo, hi = rescale
        values = (values.astype(np.float64) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _classes(values: np.ndarray, alpha: np.ndarray, cmap: ClassedColormap) -> Indexed | np.ndarray:
    """Class colours: values that are not a whole number 0..255 are no class (transparent)."""
    table = cmap.lut()
    if table is None:  # a class index outside 0..255
        return with_alpha(cmap.apply(values), alpha)
    whole = (values >= 0) & (values <= 255) & (values == np.floor(values))
    return Indexed(np.where(whole, values, 0).astype(np.uint8), table, np.where(whole, alpha, 0).astype(np.uint8))


def _colour(data: np.ndarray, alpha: np.ndarray, style: TileStyle, grid: _Grid, dtype: str) -> Indexed | np.ndarray:
    """The tile's colours (padding cropped): :class:`Indexed` for one band, else RGBA (h, w, 4) uint8.

    A continuous colormap with ``rescale`` takes the colour of the rounded level 0..255 (as
    rio-tiler does); without ``rescale`` it is interpolated at the value itself.
    """
    crop = slice(grid.pad, grid.size - grid.pad)
    alpha, cmap = alpha[crop, crop], style.colormap
    if style.hillshade:
        return Indexed(_hillshade(data[0], grid)[crop, crop], _GREY, alpha)
    values = data[:, crop, crop]
    if isinstance(cmap, ClassedColormap):
        return _classes(values[0], alpha, cmap)
    if isinstance(cmap, ContinuousColormap):
        if style.rescale is None:
            return with_alpha(cmap.apply(values[0]), alpha)
        return Indexed(_levels(values[0], style.rescale), cmap.lut(), alpha)
    if style.rescale is None and dtype != "uint8":
        raise InputError(
            f"a {dtype} raster needs rescale=(min, max) or a colormap to become colours; only uint8 "
            "bands are shown as they are"
        )
    if len(values) == 1:
        return Indexed(_levels(values[0], style.rescale), _GREY, alpha)
    rgb = [_levels(band, style.rescale) for band in values]
    return with_alpha(np.dstack([*rgb, np.full(alpha.shape, 255, dtype=np.uint8)]), alpha)


def _bands(ds: DatasetReader | WarpedVRT, requested: tuple[int, ...] | None) -> tuple[int, ...]:
    if requested is None:
        rgb = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        return (1, 2, 3) if ds.count >= 3 and tuple(ds.colorinterp[:3]) == rgb else (1,)
    bad = [b for b in requested if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= ds.count]
    if bad:
        raise InputError(f"band_indexes {requested!r}: {bad!r} not in 1..{ds.count} (bands of this raster)")
    return requested


def render_tile(
    source: str | os.PathLike[str] | DatasetReader | WarpedVRT,
    tile: TileXYZ,
    *,
    style: TileStyle | None = None,
    format: str = "png",
    tilesize: int = 256,
    max_source_pixels: int = MAX_SOURCE_PIXELS,
) -> bytes | None:
    """Render ``tile`` of a raster (path or open rasterio dataset) as PNG, JPEG or WebP bytes.

    The image is exactly ``tilesize`` x ``tilesize`` pixels of the EPSG:3857 XYZ tile. Returns
    ``None`` when the tile misses the raster or every pixel is nodata. Paths are opened with
    :func:`civicmap.sources.raster.open_raster` (local files only; checked on every call);
    pass an open dataset to reuse it across tiles. See the module docstring for the steps.
    """
    fmt = str(format).lower()
    if fmt not in FORMATS:
        raise InputError(f"format {format!r} is not one of {sorted(FORMATS)}")
    if isinstance(tilesize, bool) or not isinstance(tilesize, int) or not 16 <= tilesize <= 4096:
        raise InputError(f"tilesize {tilesize!r} must be an integer in 16..4096 (usually 256 or 512)")
    checked = (style or TileStyle()).checked()
    tile = validate_tile(*tile, maxzoom=MAX_ZOOM)
    grid = _Grid.for_tile(tile, tilesize, 1 if checked.hillshade else 0)
    with _dataset(source) as ds:
        if ds.crs is None:
            raise CRSError(f"raster {ds.name!r} has no CRS, so its tiles cannot be placed; assign one first")
        bands = _bands(ds, checked.band_indexes)
        if (checked.hillshade or checked.colormap is not None) and len(bands) != 1:
            raise InputError(f"hillshade and colormaps need one band; band_indexes is {bands!r}")
        plan = _plan(ds, grid, bands[0], max_source_pixels=max_source_pixels, resampling=checked.resampling)
        if plan is None:
            return None
        data, alpha = _read_warped(ds, plan, grid, bands, checked.resampling)
        dtype = ds.dtypes[bands[0] - 1]
    image = _colour(data, alpha, checked, grid, dtype)
    if not (image.visible() if isinstance(image, Indexed) else image[..., 3].any()):
        return None
    return encode_image(image, fmt)


def render_png(
    cog_path: str | os.PathLike[str] | DatasetReader | WarpedVRT,
    tile: TileXYZ,
    *,
    colormap: Colormap | str | None = None,
    rescale: tuple[float, float] | None = None,
    band_indexes: tuple[int, ...] | None = None,
    resampling: str = "nearest",
    tilesize: int = 256,
    hillshade: bool = False,
) -> bytes | None:
    """PNG bytes of ``tile`` (RGBA, nodata transparent), or None; shorthand for :func:`render_tile`."""
    style = TileStyle(colormap, rescale, tuple(band_indexes) if band_indexes else None, resampling, hillshade)
    return render_tile(cog_path, tile, style=style, format="png", tilesize=tilesize)
