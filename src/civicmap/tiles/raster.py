"""PNG (and JPEG/WebP) tiles from rasters such as COGs, in the XYZ grid of EPSG:3857.

How a tile is read (bounded work, overviews used, no full-resolution read of a zoomed-out tile):

1. The tile's EPSG:3857 bounds are met with the raster's footprint; no overlap -> ``None``.
2. The overlap is taken into the raster's CRS and turned into a pixel window (plus a margin).
3. The window's source pixels per tile pixel pick the coarsest overview not coarser than the
   tile (the window is aligned to that overview's pixels), and ``out_shape`` makes GDAL read
   that overview. If the pixels still to read exceed ``max_source_pixels`` (a raster without
   overviews seen at a low zoom), :class:`InputError` says so and how to fix it.
4. The small array is warped into the exact tile grid (``tilesize`` x ``tilesize``) with
   ``rasterio.warp.reproject``; validity (nodata, masks, alpha bands, non-finite values)
   travels as an alpha band, so nodata never bleeds into bilinear results and ends up
   transparent. A north-up raster already in EPSG:3857 needs no warp: it is resampled in
   numpy, axis by axis (:mod:`civicmap.tiles._raster_read`), with the same kernels and
   validity rule, at a fraction of a GDAL warp's per-tile cost. A nodata-only mask is
   computed from the values instead of being read.
5. Colours: a colormap (after optional ``rescale``), a hillshade, grey for one band or RGB
   pass-through for three ``uint8`` bands. All transparent -> ``None`` (HTTP 204).

Hillshade: illumination ``n·s`` of the surface normal by a sun at azimuth 315°, altitude 45°
(n from ``numpy.gradient``), scaled to 0..255 (flat ground = 180). It is computed on the tile
grid grown by one pixel on every side and cropped, so edge pixels see their real neighbours
and adjacent tiles agree at the seam. Web Mercator inflates distances by 1/cos(latitude); the
gradient uses ground spacing ``resolution * cos(latitude)`` per row. Elevations in metres.

PNG is written here (8-bit RGBA, zlib level ``PNG_ZLIB_LEVEL``, no row filter); JPEG and
WebP go through GDAL's drivers (JPEG has no alpha: transparent pixels become black).
"""

from __future__ import annotations

import math
import os
import struct
import warnings
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS as RIO_CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import DatasetReader, MemoryFile
from rasterio.vrt import WarpedVRT
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window
from rasterio.windows import from_bounds as window_from_bounds

from civicmap.errors import CRSError, InputError
from civicmap.sources.raster import open_raster
from civicmap.tiles._raster_read import is_north_up, resample_aligned
from civicmap.tiles.colormaps import ClassedColormap, Colormap, ContinuousColormap, get_colormap
from civicmap.tiles.grid import MAX_LATITUDE, MAX_ZOOM, lonlat_to_mercator, tile_bounds, validate_tile
from civicmap.types import BBox, TileXYZ

__all__ = ["MAX_SOURCE_PIXELS", "PNG_ZLIB_LEVEL", "TileStyle", "render_png", "render_tile"]

#: Largest source window read for one tile, in pixels: 2048 x 2048, i.e. a raster without
#: overviews renders down to about three zoom levels below its native resolution.
MAX_SOURCE_PIXELS = 2048 * 2048
#: zlib level of PNG tiles (6, as GDAL's PNG driver): ~18 kB and ~6 ms for a colormapped DEM tile.
PNG_ZLIB_LEVEL = 6
SUN_AZIMUTH_DEG = 315.0
SUN_ALTITUDE_DEG = 45.0
_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}
_MERCATOR = RIO_CRS.from_epsg(3857)


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


def _plan(ds: DatasetReader | WarpedVRT, grid: _Grid, band: int, max_source_pixels: int) -> _Read | None:
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
    factor = max([1] + [f for f in ds.overviews(band) if f <= per_px])
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


def _stretch(values: np.ndarray, rescale: tuple[float, float] | None) -> np.ndarray:
    if rescale is None:
        return values
    lo, hi = rescale
    return np.clip((values.astype(np.float64) - lo) * (255.0 / (hi - lo)), 0, 255)


def _colour(data: np.ndarray, alpha: np.ndarray, style: TileStyle, grid: _Grid, dtype: str) -> np.ndarray:
    """RGBA uint8 (tilesize, tilesize, 4) from the warped bands and alpha (padding cropped)."""
    crop = slice(grid.pad, grid.size - grid.pad)
    if style.hillshade:
        grey = _hillshade(data[0], grid)[crop, crop]
        rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    elif isinstance(style.colormap, ContinuousColormap | ClassedColormap):
        rgba = style.colormap.apply(_stretch(data[0][crop, crop], style.rescale))
    else:
        if style.rescale is None and dtype != "uint8":
            raise InputError(
                f"a {dtype} raster needs rescale=(min, max) or a colormap to become colours; only uint8 "
                "bands are shown as they are"
            )
        bands = np.clip(np.rint(_stretch(data[:, crop, crop], style.rescale)), 0, 255).astype(np.uint8)
        rgb = np.repeat(bands, 3, axis=0) if len(bands) == 1 else bands
        rgba = np.dstack([*rgb, np.full(rgb.shape[1:], 255, dtype=np.uint8)])
    rgba[..., 3] = np.minimum(rgba[..., 3], alpha[crop, crop])
    return rgba


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png(rgba: np.ndarray, *, level: int = PNG_ZLIB_LEVEL) -> bytes:
    """RGBA PNG bytes of an (h, w, 4) uint8 array (8 bits per channel, filter "None", zlib)."""
    h, w, _ = rgba.shape
    rows = np.empty((h, w * 4 + 1), dtype=np.uint8)
    rows[:, 0] = 0  # filter type 0 per row: smallest and fastest for colormapped tiles (measured)
    rows[:, 1:] = np.ascontiguousarray(rgba).reshape(h, w * 4)
    header = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)  # 8-bit RGBA, deflate, no interlace
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), level)),
            _png_chunk(b"IEND", b""),
        ]
    )


def _encode(rgba: np.ndarray, fmt: str) -> bytes:
    driver = _FORMATS[fmt]
    if driver == "PNG":
        return _png(rgba)
    bands = rgba[..., :3] if driver == "JPEG" else rgba
    if driver == "JPEG":
        bands = np.where(rgba[..., 3:] > 0, bands, 0).astype(np.uint8)
    h, w, count = bands.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as mem:
            with mem.open(driver=driver, width=w, height=h, count=count, dtype="uint8") as out:
                out.write(np.moveaxis(bands, 2, 0))
            return bytes(mem.read())


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
    if fmt not in _FORMATS:
        raise InputError(f"format {format!r} is not one of {sorted(_FORMATS)}")
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
        plan = _plan(ds, grid, bands[0], max_source_pixels)
        if plan is None:
            return None
        data, alpha = _read_warped(ds, plan, grid, bands, checked.resampling)
        dtype = ds.dtypes[bands[0] - 1]
    rgba = _colour(data, alpha, checked, grid, dtype)
    if not rgba[..., 3].any():
        return None
    return _encode(rgba, fmt)


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
