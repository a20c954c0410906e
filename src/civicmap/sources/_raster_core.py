"""Opening and validating rasters safely: the part of :mod:`civicmap.sources.raster` that reads.

Import the public names from :mod:`civicmap.sources.raster`; this private module exists only
to keep each file short.
"""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.crs import CRS as RIO_CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from rasterio.windows import from_bounds as window_from_bounds

from civicmap.crs import parse_crs
from civicmap.errors import CRSError, InputError, NotFoundError
from civicmap.types import BBox

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_BLOCK_PIXELS",
    "RasterDataset",
    "RasterInfo",
    "affine_pending_ok",
    "crs_label",
    "has_alpha",
    "is_paletted",
    "open_raster",
    "read_raster_info",
    "resampling_from",
    "validate_raster",
    "window_for_bounds",
]

log = logging.getLogger("civicmap.sources.raster")

#: Default pixel budget (width x height) for one raster: 40,000 x 40,000 = 1.6e9 pixels.
DEFAULT_MAX_PIXELS = 40_000 * 40_000
#: Largest internal block (tile or strip) read while probing, in pixels. A bigger block means one
#: read decompresses that much at once (a "decompression bomb" or a huge single strip).
MAX_BLOCK_PIXELS = 4096 * 4096

RasterDataset: TypeAlias = DatasetReader | WarpedVRT

_NETWORK_VSI = (
    "/vsicurl",
    "/vsis3",
    "/vsigs",
    "/vsiaz",
    "/vsiadls",
    "/vsioss",
    "/vsiswift",
    "/vsiwebhdfs",
    "/vsihdfs",
)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_CONNECTION_STRING = re.compile(r"^[A-Za-z][A-Za-z0-9_]+:")
# Drivers whose datasets are recipes that make GDAL read other files or URLs.
_REFERENCING_DRIVERS = frozenset(
    {"VRT", "GTI", "WMS", "WMTS", "WCS", "STACTA", "STACIT", "OGCAPI", "EEDAI", "DAAS", "PLMOSAIC"}
)
_SUPPORTED_DTYPES = frozenset(
    {"uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "float64"}
)


@dataclass(frozen=True)
class RasterInfo:
    """What a raster is, read from its header (no pixels).

    ``bounds`` (west, south, east, north) and ``res`` (x, y pixel size) are in the units of
    ``crs`` (metres for UTM, degrees for EPSG:4326, US survey feet for some state planes).
    ``crs`` is ``None`` when the file has none and none was assigned.
    """

    path: str
    driver: str
    width: int
    height: int
    count: int
    dtype: str
    crs: CRS | None
    transform: Affine
    bounds: BBox
    res: tuple[float, float]
    nodata: float | None
    has_overviews: bool
    is_tiled: bool
    size_bytes: int | None

    @property
    def pixels(self) -> int:
        """Width x height."""
        return self.width * self.height


@contextmanager
def affine_pending_ok() -> Iterator[None]:
    """Silence affine 3's PendingDeprecationWarning raised inside rasterio 1.4 (rasterio#3634).

    rasterio itself still multiplies transforms with ``*``; callers cannot act on the warning.
    Only that exact message is silenced, and only around rasterio calls that trigger it.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Use `@` matmul", category=PendingDeprecationWarning)
        yield


def crs_label(crs: Any) -> str:
    """A short human name for a CRS: ``EPSG:32618`` when it has a code, else its name."""
    if crs is None:
        return "no CRS"
    pcrs = crs if isinstance(crs, CRS) else CRS.from_user_input(crs.to_wkt() if isinstance(crs, RIO_CRS) else crs)
    code = pcrs.to_epsg()
    return f"EPSG:{code}" if code else pcrs.name


def resampling_from(value: str | Resampling) -> Resampling:
    """Turn ``"bilinear"`` (any case) or a :class:`rasterio.enums.Resampling` into the enum."""
    if isinstance(value, Resampling):
        return value
    try:
        return Resampling[str(value).lower()]
    except KeyError:
        names = ", ".join(r.name for r in Resampling)
        raise InputError(f"resampling {value!r} is not known; use one of: {names}") from None


def _refuse_remote(text: str) -> None:
    lower = text.lower()
    if any(prefix in lower for prefix in _NETWORK_VSI) or _URL.match(text):
        raise InputError(
            f"refusing to open {text!r}: civicmap reads local raster files only, because network paths "
            "can reach internal services; download the file first, or pass allow_remote=True if you trust it"
        )
    if not lower.startswith("/vsi") and _CONNECTION_STRING.match(text):
        raise InputError(
            f"refusing to open {text!r}: GDAL connection strings (WMS:, NETCDF:, ...) are not local files; "
            "pass allow_remote=True if you trust it"
        )


def _check_local_file(path: Path) -> None:
    if not path.exists():
        raise NotFoundError(f"raster file {str(path)!r} does not exist; check the path")
    if not path.is_file():
        raise InputError(f"raster path {str(path)!r} is a folder, not a file; give the path of one raster")
    if path.stat().st_size == 0:
        raise InputError(f"raster file {str(path)!r} is empty (0 bytes); the download or copy probably failed")
    with path.open("rb") as fh:
        head = fh.read(256).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"<", b"{")) or path.suffix.lower() == ".vrt":
        raise InputError(
            f"refusing to open {str(path)!r}: it is a text (XML/JSON) dataset description such as a GDAL VRT, "
            "which can make GDAL read other files or URLs; convert it to a GeoTIFF with gdal_translate, "
            "or pass allow_remote=True if you trust it"
        )


@contextmanager
def _opened(path: str | os.PathLike[str], *, allow_remote: bool) -> Iterator[DatasetReader]:
    """Open a raster read-only after the path checks; GDAL failures become InputError."""
    text = os.fspath(path)
    if not allow_remote:
        _refuse_remote(text)
        if not text.lower().startswith("/vsi"):
            _check_local_file(Path(text))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(text)
    except RasterioError as exc:
        raise InputError(
            f"{text!r} could not be opened as a raster: GDAL says {exc}. Expected a GeoTIFF/COG, an ESRI ASCII "
            "grid or another GDAL raster; check that the file is complete (not truncated) and really a raster"
        ) from exc
    with ds:
        if not allow_remote and ds.driver in _REFERENCING_DRIVERS:
            raise InputError(
                f"refusing to read {text!r}: its {ds.driver} driver reads other files or URLs; "
                "pass allow_remote=True if you trust it"
            )
        yield ds


def _is_tiled(ds: RasterDataset) -> bool:
    block_h, block_w = ds.block_shapes[0]
    return block_w != ds.width or (block_h == block_w and block_h > 1)


def _grid_bounds(transform: Affine, width: int, height: int) -> BBox:
    corners = [transform @ (c, r) for c, r in ((0, 0), (width, 0), (0, height), (width, height))]
    xs = [x for x, _ in corners]
    ys = [y for _, y in corners]
    return BBox(min(xs), min(ys), max(xs), max(ys))


def _union(a: BBox, b: BBox) -> BBox:
    return BBox(min(a.west, b.west), min(a.south, b.south), max(a.east, b.east), max(a.north, b.north))


def _info(ds: RasterDataset, path: str, assigned: CRS | None) -> RasterInfo:
    t = ds.transform
    crs = assigned if ds.crs is None else CRS.from_wkt(ds.crs.to_wkt())
    local = Path(path)
    return RasterInfo(
        path=path,
        driver=ds.driver,
        width=ds.width,
        height=ds.height,
        count=ds.count,
        dtype=ds.dtypes[0],
        crs=crs,
        transform=t,
        bounds=_grid_bounds(t, ds.width, ds.height),
        res=(math.hypot(t.a, t.d), math.hypot(t.b, t.e)),
        nodata=ds.nodata,
        has_overviews=bool(ds.overviews(1)),
        is_tiled=_is_tiled(ds),
        size_bytes=local.stat().st_size if local.is_file() else None,
    )


def read_raster_info(path: str | os.PathLike[str], *, allow_remote: bool = False) -> RasterInfo:
    """Read a raster's header into a :class:`RasterInfo` (no pixels, no validation beyond opening).

    Raises :class:`NotFoundError` for a missing file and :class:`InputError` for anything GDAL
    cannot open, for network paths and for VRT-like files (unless ``allow_remote``).
    """
    with _opened(path, allow_remote=allow_remote) as ds:
        return _info(ds, os.fspath(path), None)


def _georef_problems(ds: RasterDataset) -> list[str]:
    t = ds.transform
    gcps, _ = ds.gcps
    if t.is_identity and not ds.rpcs:
        if gcps:
            return [f"is georeferenced by {len(gcps)} ground control points only; warp it to a grid first (gdalwarp)"]
        return [
            "has no georeference (no geotransform, GCPs or RPCs), so its pixels are not placed on the Earth; "
            "georeference it first (e.g. QGIS Georeferencer, or gdal_translate -a_ullr ... -a_srs ...)"
        ]
    if not all(math.isfinite(v) for v in t[:6]) or t.a == 0 or t.e == 0:
        return [f"has an unusable geotransform {tuple(t[:6])}; fix its georeference"]
    if t.b != 0 or t.d != 0:
        return [
            f"has a rotated or sheared geotransform (row rotation {t.b:g}, column rotation {t.d:g}); civicmap "
            "needs north-up grids: warp it first (gdalwarp -t_srs <its CRS>)"
        ]
    return []


def _crs_problems(ds: RasterDataset, assigned: CRS | None) -> list[str]:
    if ds.crs is None and assigned is None:
        b = _grid_bounds(ds.transform, ds.width, ds.height)
        hint = (
            " (its bounds look like longitude/latitude degrees)"
            if BBox(-180, -90, 180, 90) == _union(b, BBox(-180, -90, 180, 90)) and not ds.transform.is_identity
            else ""
        )
        return [
            f"has no CRS{hint}; pass crs='EPSG:4326' (or the CRS its coordinates are really in) "
            "to assign one, or put a .prj file beside it"
        ]
    if ds.crs is not None and assigned is not None:
        own = CRS.from_wkt(ds.crs.to_wkt())
        if not own.equals(assigned, ignore_axis_order=True):
            return [
                f"already has CRS {crs_label(own)} but crs={crs_label(assigned)!r} was given; crs= "
                "only assigns a CRS to rasters that lack one: to change it, use reproject_raster(..., dst_crs=...)"
            ]
    return []


def _nodata_problem(ds: RasterDataset, require_nodata: bool) -> list[str]:
    dtype, nodata = ds.dtypes[0], ds.nodata
    if nodata is None:
        masked = MaskFlags.all_valid not in ds.mask_flag_enums[0]
        if require_nodata and not masked:
            return ["has no nodata value or mask; set one (rio edit-info --nodata VALUE) or pass require_nodata=False"]
        return []
    if dtype in _SUPPORTED_DTYPES and np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(np.dtype(dtype))
        if not (math.isfinite(nodata) and float(nodata).is_integer() and info.min <= nodata <= info.max):
            return [
                f"has nodata {nodata} which cannot occur in its {dtype} pixels ({info.min}..{info.max}); "
                "set a nodata value inside that range"
            ]
    return []


def _size_problems(ds: RasterDataset, max_pixels: int | None) -> list[str]:
    problems = []
    pixels = ds.width * ds.height
    if max_pixels is not None and pixels > max_pixels:
        problems.append(
            f"is {ds.width:,} x {ds.height:,} = {pixels:,} pixels, over the budget of {max_pixels:,}; pass "
            f"max_pixels={pixels} if you mean it (and make it a tiled COG with overviews first)"
        )
    bad = sorted({d for d in ds.dtypes if d not in _SUPPORTED_DTYPES})
    if bad:
        problems.append(
            f"has data type {', '.join(bad)}, which civicmap cannot process; expected one of "
            f"{', '.join(sorted(_SUPPORTED_DTYPES))} (convert with gdal_translate -ot Float32)"
        )
    return problems


def _block_problem(ds: RasterDataset) -> list[str]:
    block_h, block_w = ds.block_shapes[0]
    if block_h * block_w > MAX_BLOCK_PIXELS:
        return [
            f"stores its pixels in blocks of {block_w:,} x {block_h:,}, too large to read safely; "
            "rewrite it tiled (write_cog, or gdal_translate -co TILED=YES)"
        ]
    return []


def _read_problems(ds: RasterDataset) -> list[str]:
    try:
        ds.read(1, window=Window(0, 0, 1, 1))
        ds.read(1, window=Window(ds.width - 1, ds.height - 1, 1, 1))
    except RasterioError as exc:
        detail = exc.__cause__ or exc  # rasterio's own message only says "see previous exception"
        return [f"has pixel data GDAL cannot read ({detail}); the file is probably truncated or corrupt"]
    return []


def _problems(
    ds: RasterDataset, *, assigned: CRS | None, max_pixels: int | None, require_nodata: bool
) -> tuple[list[str], bool]:
    """Every problem found, and whether they are all about the CRS."""
    crs_problems = _crs_problems(ds, assigned)
    blocks = _block_problem(ds)
    others = _georef_problems(ds) + _size_problems(ds, max_pixels) + _nodata_problem(ds, require_nodata) + blocks
    if not blocks:  # probing a huge block would decompress all of it
        others += _read_problems(ds)
    return crs_problems + others, bool(crs_problems) and not others


@contextmanager
def _checked(
    path: str | os.PathLike[str],
    *,
    crs: Any,
    max_pixels: int | None,
    require_nodata: bool,
    allow_remote: bool,
) -> Iterator[tuple[DatasetReader, RasterInfo]]:
    assigned = parse_crs(crs, what="crs") if crs is not None else None
    text = os.fspath(path)
    with _opened(path, allow_remote=allow_remote) as ds:
        problems, only_crs = _problems(ds, assigned=assigned, max_pixels=max_pixels, require_nodata=require_nodata)
        if problems:
            error = CRSError if only_crs else InputError
            raise error(f"raster {text!r} " + "; it ".join(problems))
        yield ds, _info(ds, text, assigned)


def validate_raster(
    path: str | os.PathLike[str],
    *,
    crs: Any = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    require_nodata: bool = False,
    allow_remote: bool = False,
) -> RasterInfo:
    """Check that a raster can be used, collecting every problem before raising once.

    Checks: the file exists (else :class:`NotFoundError`), is local (``/vsicurl/``, ``/vsis3/``,
    URLs, connection strings and VRT-like files that make GDAL read other files are refused
    unless ``allow_remote=True``), is not empty, opens, has a north-up geotransform (not rotated,
    not GCP-only, not missing), has a CRS, fits ``max_pixels`` (width x height; ``None`` = no
    limit), has a supported data type and a nodata value that fits it (NaN is fine for floats),
    has readable pixels (truncation) and internal blocks of a safe size.

    ``crs`` assigns a CRS to a raster that has none (an ESRI ``.asc`` without ``.prj``); it does
    not override a CRS the file has. Raises :class:`CRSError` when the CRS is the only problem,
    else :class:`InputError`. Returns the :class:`RasterInfo` (with the assigned CRS, if any).
    """
    with _checked(path, crs=crs, max_pixels=max_pixels, require_nodata=require_nodata, allow_remote=allow_remote) as (
        _,
        info,
    ):
        return info


@contextmanager
def open_raster(
    path: str | os.PathLike[str],
    *,
    crs: Any = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    allow_remote: bool = False,
) -> Iterator[RasterDataset]:
    """Validate (see :func:`validate_raster`), then yield an open read-only rasterio dataset.

    When ``crs`` assigns a CRS the file lacks, the dataset is a :class:`rasterio.vrt.WarpedVRT`
    on the file's own grid (same transform, size, nodata; nearest resampling, so pixel values are
    unchanged); otherwise it is the file itself. Coordinates are in the dataset's CRS.
    """
    with _checked(path, crs=crs, max_pixels=max_pixels, require_nodata=False, allow_remote=allow_remote) as (
        ds,
        info,
    ):
        if ds.crs is not None or info.crs is None:
            yield ds
            return
        assigned = RIO_CRS.from_wkt(info.crs.to_wkt())
        with WarpedVRT(
            ds,
            src_crs=assigned,
            crs=assigned,
            transform=ds.transform,
            width=ds.width,
            height=ds.height,
            resampling=Resampling.nearest,
        ) as vrt:
            yield vrt


def window_for_bounds(ds: RasterDataset, bounds: Any, bounds_crs: Any = None) -> Window:
    """The pixel window covering ``bounds`` (west, south, east, north), rounded outwards.

    ``bounds`` are in ``bounds_crs`` (default: the dataset's CRS) and are reprojected to the
    dataset's CRS (densified edges) when they differ. The window is cut to the raster; bounds
    that miss the raster raise :class:`InputError`.
    """
    target = parse_crs(bounds_crs, what="bounds_crs") if bounds_crs is not None else None
    box = BBox.parse(bounds, geographic=bool(target is not None and target.is_geographic))
    if target is not None and ds.crs is not None and not target.equals(ds.crs.to_wkt(), ignore_axis_order=True):
        box = BBox(*transform_bounds(RIO_CRS.from_wkt(target.to_wkt()), ds.crs, *box, densify_pts=21))
    win = window_from_bounds(*box, transform=ds.transform)
    col0 = max(0, math.floor(round(win.col_off, 6)))
    row0 = max(0, math.floor(round(win.row_off, 6)))
    col1 = min(ds.width, math.ceil(round(win.col_off + win.width, 6)))
    row1 = min(ds.height, math.ceil(round(win.row_off + win.height, 6)))
    if col1 <= col0 or row1 <= row0:
        extent = _grid_bounds(ds.transform, ds.width, ds.height)
        raise InputError(
            f"bounds {tuple(bounds)} (in {crs_label(target or ds.crs)}) do not overlap the raster, whose extent "
            f"is {tuple(round(v, 6) for v in extent)} in {crs_label(ds.crs)}; check the bounds and their CRS"
        )
    return Window(col0, row0, col1 - col0, row1 - row0)


def has_alpha(ds: RasterDataset) -> bool:
    """Whether one band is an alpha (transparency) band."""
    return ColorInterp.alpha in ds.colorinterp


def is_paletted(ds: RasterDataset) -> bool:
    """Whether band 1 carries a colour table (a class raster)."""
    return ds.colorinterp[0] == ColorInterp.palette
