"""Writing rasters: reprojection, clipping, mosaics and Cloud Optimized GeoTIFFs.

Import the public names from :mod:`civicmap.sources.raster`. Every writer streams in chunks of
at most ``CHUNK`` x ``CHUNK`` pixels (bounded memory whatever the raster size), writes to a
temporary file in the destination folder and moves it into place with :func:`os.replace`, so
a crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS as RIO_CRS
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import MergeError, RasterioError
from rasterio.merge import merge
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform, transform_bounds
from rasterio.windows import Window
from tqdm.auto import tqdm

from civicmap.crs import parse_crs
from civicmap.errors import CRSError, InputError, NotFoundError
from civicmap.sources._raster_core import (
    DEFAULT_MAX_PIXELS,
    RasterDataset,
    RasterInfo,
    affine_pending_ok,
    crs_label,
    has_alpha,
    is_paletted,
    open_raster,
    read_raster_info,
    resampling_from,
    window_for_bounds,
)
from civicmap.types import BBox

__all__ = ["CHUNK", "clip_raster", "mosaic_rasters", "reproject_raster", "write_cog"]

log = logging.getLogger("civicmap.sources.raster")

#: Side, in pixels, of the chunks copied at once (a multiple of the 512-pixel output tiles).
CHUNK = 1024
_TILE = 512
_COMPRESSIONS = ("DEFLATE", "LZW", "ZSTD", "JPEG", "WEBP", "NONE")
_COG_RESAMPLING = {
    Resampling.nearest: "NEAREST",
    Resampling.bilinear: "BILINEAR",
    Resampling.cubic: "CUBIC",
    Resampling.cubic_spline: "CUBICSPLINE",
    Resampling.lanczos: "LANCZOS",
    Resampling.average: "AVERAGE",
    Resampling.mode: "MODE",
    Resampling.rms: "RMS",
    Resampling.gauss: "GAUSS",
}


def _pick_resampling(ds: RasterDataset, resampling: str | Resampling | None) -> Resampling:
    """``None`` means nearest for class rasters with a colour table, bilinear for the rest."""
    if resampling is None:
        return Resampling.nearest if is_paletted(ds) else Resampling.bilinear
    method = resampling_from(resampling)
    if is_paletted(ds) and method not in (Resampling.nearest, Resampling.mode):
        raise InputError(
            f"resampling {method.name!r} would invent classes in a raster with a colour table (categorical); "
            "use resampling='nearest' (or 'mode')"
        )
    return method


def _remove_stale_sidecars(final: Path) -> None:
    for suffix in (".aux.xml", ".ovr", ".msk"):
        stale = final.with_name(final.name + suffix)
        if stale.exists():
            stale.unlink()
            log.info("removed %s, which described the file just replaced", stale)


@contextmanager
def _atomic_target(dst: str | os.PathLike[str], *, sources: Sequence[Any] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; on success move it onto ``dst`` atomically."""
    final = Path(dst)
    if not final.parent.is_dir():
        raise NotFoundError(f"output folder {str(final.parent)!r} does not exist; create it first")
    for src in sources:
        if Path(os.fspath(src)).resolve() == final.resolve():
            raise InputError(f"output {str(final)!r} is also an input; write to a new file")
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp.tif")
    try:
        yield tmp
        os.replace(tmp, final)
        _remove_stale_sidecars(final)
    finally:
        for leftover in (tmp, *(tmp.with_name(tmp.name + s) for s in (".aux.xml", ".msk", ".ovr"))):
            leftover.unlink(missing_ok=True)


def _gtiff_profile(
    ds: RasterDataset, *, transform: Affine, width: int, height: int, crs: Any, nodata: float | None, count: int
) -> dict[str, Any]:
    dtype = ds.dtypes[0]
    return {
        "driver": "GTiff",
        "dtype": dtype,
        "count": count,
        "crs": crs,
        "transform": transform,
        "width": width,
        "height": height,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": _TILE,
        "blockysize": _TILE,
        "compress": "deflate",
        "predictor": 3 if np.issubdtype(np.dtype(dtype), np.floating) else 2,
        "BIGTIFF": "IF_SAFER",
    }


def _chunks(width: int, height: int) -> list[Window]:
    return [
        Window(col, row, min(CHUNK, width - col), min(CHUNK, height - row))
        for row in range(0, height, CHUNK)
        for col in range(0, width, CHUNK)
    ]


def _copy_chunks(
    source: RasterDataset,
    out: Any,
    *,
    indexes: list[int],
    offset: tuple[int, int] = (0, 0),
    mask: bool = False,
    progress: bool = False,
    desc: str = "",
) -> None:
    """Copy ``source`` into ``out`` chunk by chunk (memory: one chunk of all bands)."""
    for win in tqdm(_chunks(out.width, out.height), disable=not progress, desc=desc, unit="chunk"):
        src_win = Window(win.col_off + offset[0], win.row_off + offset[1], win.width, win.height)
        out.write(source.read(indexes, window=src_win), window=win)
        if mask:
            out.write_mask(source.dataset_mask(window=src_win), window=win)


def _copy_band_styles(ds: RasterDataset, out: Any) -> None:
    """Keep colour interpretation (RGB, alpha) and a colour table, which pixels alone lose."""
    if out.count == ds.count:
        out.colorinterp = ds.colorinterp
    if is_paletted(ds):
        out.write_colormap(1, ds.colormap(1))


def _has_internal_mask(ds: RasterDataset) -> bool:
    return ds.nodata is None and not has_alpha(ds) and MaskFlags.per_dataset in ds.mask_flag_enums[0]


def _parse_resolution(resolution: float | tuple[float, float] | None) -> tuple[float, float] | None:
    if resolution is None:
        return None
    pair = (resolution, resolution) if isinstance(resolution, int | float) else tuple(resolution)
    if len(pair) != 2 or not all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in pair):
        raise InputError(f"resolution {resolution!r} must be one positive number or (x, y), in dst_crs units")
    return float(pair[0]), float(pair[1])


def _target_grid(
    ds: RasterDataset, target: RIO_CRS, bounds: Any, resolution: Any, *, geographic: bool
) -> tuple[Affine, int, int]:
    """Output transform and size in ``target``: GDAL's suggested grid, or ``bounds`` cut on it."""
    res = _parse_resolution(resolution)
    with affine_pending_ok():
        transform, width, height = calculate_default_transform(
            ds.crs, target, ds.width, ds.height, *ds.bounds, resolution=res
        )
    if bounds is not None:
        box = BBox.parse(bounds, geographic=geographic)
        fw, fs, fe, fn = transform_bounds(ds.crs, target, *ds.bounds, densify_pts=21)
        if box.west >= fe or box.east <= fw or box.south >= fn or box.north <= fs:
            raise InputError(
                f"bounds {tuple(box)} do not overlap the raster, whose extent in {crs_label(target)} is "
                f"{(round(fw, 6), round(fs, 6), round(fe, 6), round(fn, 6))}; give bounds in dst_crs units"
            )
        rx, ry = res or (transform.a, -transform.e)
        width = math.ceil(round((box.east - box.west) / rx, 6))
        height = math.ceil(round((box.north - box.south) / ry, 6))
        transform = Affine(rx, 0.0, box.west, 0.0, -ry, box.north)
    if width * height > DEFAULT_MAX_PIXELS:
        raise InputError(
            f"the output grid would be {width:,} x {height:,} pixels, over {DEFAULT_MAX_PIXELS:,}; check that "
            f"bounds and resolution are in {crs_label(target)} units (metres for UTM)"
        )
    return transform, width, height


def _warp_plan(ds: RasterDataset) -> tuple[dict[str, Any], list[int], bool, float | None]:
    """WarpedVRT options, bands to copy, whether to write a mask, and the output nodata.

    A nodata value or an alpha band carries through the warp; floats without either get NaN;
    other rasters get an alpha band in the VRT, written out as an internal mask.
    """
    indexes = list(ds.indexes)
    if ds.nodata is not None:
        return {"nodata": ds.nodata}, indexes, False, ds.nodata
    if has_alpha(ds):
        return {}, indexes, False, None
    if np.issubdtype(np.dtype(ds.dtypes[0]), np.floating):
        return {"nodata": float("nan")}, indexes, False, float("nan")
    return {"add_alpha": True}, indexes, True, None


def reproject_raster(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    dst_crs: Any,
    bounds: Any = None,
    resolution: float | tuple[float, float] | None = None,
    resampling: str | Resampling | None = None,
    src_crs: Any = None,
    progress: bool = False,
) -> RasterInfo:
    """Reproject ``src`` into a new tiled, DEFLATE-compressed GeoTIFF ``dst`` in ``dst_crs``.

    ``bounds`` (west, south, east, north) and ``resolution`` (one number or (x, y)) are in
    ``dst_crs`` units: metres for a UTM CRS, degrees for EPSG:4326. Without them GDAL's suggested
    grid is used (the whole raster, pixel size about the source's). ``resampling`` defaults to
    ``"bilinear"`` for continuous data and ``"nearest"`` for rasters with a colour table; pass
    ``"nearest"`` (or ``"mode"``) for class rasters stored as plain numbers, such as hazard classes,
    since bilinear would invent classes between them. ``src_crs`` assigns a CRS the file lacks.

    Works block-wise through a GDAL warped VRT: memory stays at one chunk of ``CHUNK`` x ``CHUNK``
    pixels whatever the raster size. Returns the :class:`RasterInfo` of ``dst``.
    """
    target = parse_crs(dst_crs, what="dst_crs")
    rio_target = RIO_CRS.from_wkt(target.to_wkt())
    with open_raster(src, crs=src_crs, max_pixels=None) as ds:
        method = _pick_resampling(ds, resampling)
        transform, width, height = _target_grid(ds, rio_target, bounds, resolution, geographic=target.is_geographic)
        vrt_options, indexes, mask, nodata = _warp_plan(ds)
        profile = _gtiff_profile(
            ds, transform=transform, width=width, height=height, crs=rio_target, nodata=nodata, count=len(indexes)
        )
        with (
            _atomic_target(dst, sources=[src]) as tmp,
            WarpedVRT(
                ds, crs=rio_target, transform=transform, width=width, height=height, resampling=method, **vrt_options
            ) as vrt,
            rasterio.open(tmp, "w", **profile) as out,
        ):
            _copy_chunks(vrt, out, indexes=indexes, mask=mask, progress=progress, desc=f"reproject {Path(src).name}")
            _copy_band_styles(ds, out)
    info = read_raster_info(dst)
    log.info("reprojected %s to %s: %d x %d px, %s", src, crs_label(target), info.width, info.height, method.name)
    return info


def clip_raster(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    bounds: Any,
    bounds_crs: Any,
    src_crs: Any = None,
    progress: bool = False,
) -> RasterInfo:
    """Cut the window covering ``bounds`` out of ``src`` into a new GeoTIFF, without resampling.

    ``bounds`` (west, south, east, north) are in ``bounds_crs`` (e.g. ``"EPSG:4326"`` for degrees,
    or the raster's own CRS); they are reprojected to the raster's CRS and the window is rounded
    outwards to whole pixels, so pixel values and the grid are kept exactly. Streams chunk-wise.
    """
    with open_raster(src, crs=src_crs, max_pixels=None) as ds:
        win = window_for_bounds(ds, bounds, bounds_crs)
        transform = ds.transform @ Affine.translation(win.col_off, win.row_off)
        profile = _gtiff_profile(
            ds,
            transform=transform,
            width=int(win.width),
            height=int(win.height),
            crs=ds.crs,
            nodata=ds.nodata,
            count=ds.count,
        )
        with _atomic_target(dst, sources=[src]) as tmp, rasterio.open(tmp, "w", **profile) as out:
            _copy_chunks(
                ds,
                out,
                indexes=list(ds.indexes),
                offset=(int(win.col_off), int(win.row_off)),
                mask=_has_internal_mask(ds),
                progress=progress,
                desc=f"clip {Path(src).name}",
            )
            _copy_band_styles(ds, out)
    return read_raster_info(dst)


def _check_mosaic_inputs(paths: list[str], datasets: list[RasterDataset]) -> None:
    first = datasets[0]
    crs_bad = [f"{p} is {crs_label(d.crs)}" for p, d in zip(paths, datasets, strict=True) if d.crs != first.crs]
    if crs_bad:
        raise CRSError(
            f"mosaic inputs must share one CRS: the first, {paths[0]}, is {crs_label(first.crs)}, but "
            + "; ".join(crs_bad)
            + f". Reproject them first with reproject_raster(..., dst_crs={crs_label(first.crs)!r})"
        )
    bands_bad = [
        f"{p} has {d.count} x {d.dtypes[0]}"
        for p, d in zip(paths, datasets, strict=True)
        if (d.count, d.dtypes[0]) != (first.count, first.dtypes[0])
    ]
    if bands_bad:
        raise InputError(
            f"mosaic inputs must have the same bands: {paths[0]} has {first.count} x {first.dtypes[0]}, but "
            + "; ".join(bands_bad)
        )


def _mosaic_nodata(first: RasterDataset, nodata: float | None) -> float | None:
    dtype = np.dtype(first.dtypes[0])
    if nodata is not None:
        if np.issubdtype(dtype, np.integer) and not (
            float(nodata).is_integer() and np.iinfo(dtype).min <= nodata <= np.iinfo(dtype).max
        ):
            raise InputError(f"nodata {nodata} cannot be stored in {dtype} pixels; pick a value inside its range")
        return nodata
    if first.nodata is not None or has_alpha(first):
        return first.nodata
    if np.issubdtype(dtype, np.floating):
        return float("nan")
    raise InputError(
        "mosaic inputs have no nodata value and no alpha band, so cells no tile covers would read as real data; "
        "pass nodata= (a value that does not occur in the data)"
    )


def mosaic_rasters(
    sources: Sequence[str | os.PathLike[str]],
    dst: str | os.PathLike[str],
    *,
    resampling: str | Resampling = "nearest",
    nodata: float | None = None,
    progress: bool = False,
) -> RasterInfo:
    """Merge adjacent tiles (drone orthophoto parts, DEM tiles) into one tiled GeoTIFF.

    The output grid is the first source's CRS and pixel size over the union of all bounds;
    where tiles overlap the first listed wins. All sources must share the first one's CRS:
    a mismatch raises :class:`CRSError` naming both (reproject them first; nothing is resampled
    behind your back). ``resampling`` is only used for sources whose pixel size differs.
    ``nodata`` defaults to the first source's (NaN for floats without one). Streams chunk-wise.
    """
    paths = [os.fspath(p) for p in sources]
    if not paths:
        raise InputError("mosaic_rasters needs at least one source raster")
    method = resampling_from(resampling)
    with ExitStack() as stack:
        datasets = [stack.enter_context(open_raster(p, max_pixels=None)) for p in paths]
        _check_mosaic_inputs(paths, datasets)
        first = datasets[0]
        fill = _mosaic_nodata(first, nodata)
        rx, ry = first.res
        boxes = np.array([tuple(d.bounds) for d in datasets])
        west, north = boxes[:, 0].min(), boxes[:, 3].max()
        width = round((boxes[:, 2].max() - west) / rx)
        height = round((north - boxes[:, 1].min()) / ry)
        transform = Affine(rx, 0.0, west, 0.0, -ry, north)
        profile = _gtiff_profile(
            first, transform=transform, width=width, height=height, crs=first.crs, nodata=fill, count=first.count
        )
        with _atomic_target(dst, sources=paths) as tmp, rasterio.open(tmp, "w", **profile) as out:
            for win in tqdm(_chunks(width, height), disable=not progress, desc="mosaic", unit="chunk"):
                w, n = transform @ (win.col_off, win.row_off)
                e, s = transform @ (win.col_off + win.width, win.row_off + win.height)
                try:
                    with affine_pending_ok():
                        arr, _ = merge(datasets, bounds=(w, s, e, n), res=(rx, ry), nodata=fill, resampling=method)
                except (MergeError, RasterioError) as exc:
                    raise InputError(f"cannot mosaic {paths}: {exc}") from exc
                out.write(arr, window=win)
            _copy_band_styles(first, out)
    info = read_raster_info(dst)
    log.info("mosaicked %d rasters into %s: %d x %d px", len(paths), dst, info.width, info.height)
    return info


def _cog_compression(ds: RasterDataset, compress: str) -> str:
    comp = str(compress).upper()
    if comp not in _COMPRESSIONS:
        raise InputError(f"compress {compress!r} is not supported; use one of {', '.join(_COMPRESSIONS)}")
    bands = ds.count - (1 if has_alpha(ds) else 0)
    if comp in ("JPEG", "WEBP") and (ds.dtypes[0] != "uint8" or bands not in ((1, 3) if comp == "JPEG" else (3,))):
        raise InputError(
            f"compress={comp} is lossy and needs 8-bit imagery ({'1 or 3' if comp == 'JPEG' else '3'} bands, "
            f"plus an optional alpha); this raster has {ds.count} x {ds.dtypes[0]}: use DEFLATE"
        )
    return comp


def write_cog(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    overviews: bool = True,
    blocksize: int = 512,
    compress: str = "DEFLATE",
    resampling: str | Resampling | None = None,
    web_optimized: bool = False,
    src_crs: Any = None,
) -> RasterInfo:
    """Write ``src`` as a Cloud Optimized GeoTIFF with GDAL's ``COG`` driver.

    ``blocksize`` (pixels, a multiple of 16) sets the internal tiles; ``overviews`` builds internal
    overviews (GDAL ``OVERVIEWS=AUTO``: halvings until one fits in a tile, so a raster smaller than
    a tile gets none) using ``resampling`` (default bilinear, nearest for colour-table rasters;
    pass ``"nearest"``/``"mode"`` for classes). ``compress``: DEFLATE (default), LZW or ZSTD are
    lossless, with a predictor; JPEG or WEBP are lossy, for 8-bit RGB imagery only (JPEG turns an
    alpha band into a mask). ``web_optimized`` reprojects to EPSG:3857 on the GoogleMapsCompatible
    tile grid that the tile service wants; otherwise the CRS and pixel values are kept.
    ``src_crs`` assigns a CRS the file lacks. The file is written beside ``dst`` and then moved
    into place atomically.
    """
    if not isinstance(blocksize, int) or blocksize < 16 or blocksize % 16 or blocksize > 4096:
        raise InputError(f"blocksize {blocksize!r} must be a multiple of 16 between 16 and 4096 pixels (512 is usual)")
    with open_raster(src, crs=src_crs, max_pixels=None) as ds:
        comp = _cog_compression(ds, compress)
        method = _pick_resampling(ds, resampling)
        if method not in _COG_RESAMPLING:
            raise InputError(
                f"resampling {method.name!r} cannot build overviews; use one of "
                + ", ".join(r.name for r in _COG_RESAMPLING)
            )
        options = {
            "BLOCKSIZE": str(blocksize),
            "COMPRESS": comp,
            "OVERVIEWS": "AUTO" if overviews else "NONE",
            "RESAMPLING": _COG_RESAMPLING[method],
            "BIGTIFF": "IF_SAFER",
        }
        if comp in ("DEFLATE", "LZW", "ZSTD"):
            options["PREDICTOR"] = "YES"
        if web_optimized:
            options.update(TILING_SCHEME="GoogleMapsCompatible", WARP_RESAMPLING=_COG_RESAMPLING[method])
        with _atomic_target(dst, sources=[src]) as tmp:
            rasterio.shutil.copy(ds, tmp, driver="COG", **options)
    info = read_raster_info(dst)
    log.info("wrote COG %s (%s, %d px tiles, overviews: %s)", dst, comp, blocksize, info.has_overviews)
    return info
