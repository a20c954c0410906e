"""Flood depth derived from a DEM: height above nearest drainage (HAND) and a river stage.

Method (each step is one public function, so a notebook can look at every intermediate)::

    grid  = read_dem("dem.tif")                                   # DemGrid: elevation (NaN = nodata)
    wmask = rasterize_waterways(rivers, transform=grid.transform, shape=grid.elevation_m.shape, crs=grid.crs)
    flw   = flow_directions(grid.elevation_m, grid.transform, crs=grid.crs, burn=wmask)   # D8
    drain = drainage_mask(flw, waterways=wmask, min_upstream_area_m2=None)
    hand  = height_above_drainage(flw, drain, grid.elevation_m)   # metres above the drain cell
    flood = flood_depth_from_dem(grid, waterways=rivers, stage_m=2.5)   # all of the above at once
    write_flood_depth(flood, "flood_depth.tif")

1. **Conditioning.** Nodata holes *inside* the DEM (not touching its border) are filled by
   inverse-distance interpolation from their rim (GDAL ``FillNodata`` through
   :func:`rasterio.fill.fillnodata`) so they neither swallow water as fake outlets nor hold it
   as fake lakes; nodata reaching the border stays outside the domain. Mapped waterways are
   optionally burnt ``burn_depth_m`` into the DEM (stream burning, Saunders 1999; Lindsay 2016)
   so the D8 network follows the mapped river even where the DEM is coarse or noisy. All other
   depressions are filled by priority flood from the edge of the valid data (Wang & Liu 2006,
   as implemented by pyflwdir ``dem.fill_depressions``; outlets at every valid edge cell), and
   each cell gets the D8 direction towards the cell from which the flood reached it.
2. **Drainage.** Drainage cells are the mapped waterways rasterised with ``all_touched`` (every
   cell a line crosses) and/or the cells whose upstream area reaches ``min_upstream_area_m2``;
   cells of closed depressions count as non-contributing there (they hold their own runoff).
3. **HAND** (Rennó et al. 2008; Nobre et al. 2011): each cell follows its D8 path down to the
   *first* drainage cell ``d``; HAND is the highest elevation met on that path minus the
   elevation of ``d``. Outside filled depressions the path falls monotonically and this is the
   classic ``z(cell) - z(d)``; inside a closed depression it is the depression's spill level
   above ``d``, i.e. the rise the water at ``d`` needs before it can enter the depression. A cell
   whose path leaves the DEM without meeting drainage has no HAND (NaN): it is not
   hydrologically connected to the rivers and never floods.
4. **Depth** (the HAND inundation approach of NOAA's Office of Water Prediction, Zheng et al.
   2018): with the water-surface elevation ``wse = z(d) + stage`` at the drain (``stage_reference
   ="bed"``) or ``wse = stage`` (``"absolute"``), a cell is wet when ``HAND < stage``
   (equivalently: path maximum < wse) and its depth is ``wse - z(cell)``. That equals
   ``stage - HAND`` on ordinary slopes and is the real, deeper water depth in a flooded
   depression. A low spot behind a ridge that is higher than ``wse`` stays dry, however low it
   is: water only reaches cells connected to the river.

Units and CRS: elevations and depths in metres (the DEM's vertical unit must be metres). The
DEM may be in a projected CRS in metres or in a geographic CRS (degrees): HAND and depth are
vertical, and upstream areas on a geographic grid are computed from geodesic cell areas
(pyflwdir ``latlon=True``). Projected CRSs in other units (feet) are refused. Waterways in any
CRS are reprojected to the DEM's CRS with :func:`civicmap.crs.to_crs`.

References: Rennó C D et al. (2008) HAND, a new terrain descriptor using SRTM-DEM, Remote Sens.
Environ. 112 3469-81. Nobre A D et al. (2011) Height Above the Nearest Drainage - a
hydrologically relevant new terrain model, J. Hydrol. 404 13-29. Zheng X, Tarboton D G,
Maidment D R, Liu Y Y, Passalacqua P (2018) River channel geometry and rating curve estimation
using height above the nearest drainage, JAWRA 54 785-806 (the NOAA OWP / NWM HAND method).
Wang L, Liu H (2006) An efficient method for identifying and filling surface depressions in
digital elevation models, IJGIS 20 193-213. Flow routing: pyflwdir (Deltares, MIT licence).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Literal, NamedTuple

import geopandas as gpd
import numpy as np
import pyflwdir
import rasterio
import rasterio.features
import rasterio.fill
import rasterio.transform
import shapely
from affine import Affine
from pyproj import CRS
from scipy import ndimage

from civicmap.crs import parse_crs, require_crs, to_crs
from civicmap.errors import CRSError, InputError
from civicmap.sources.raster import read_raster_info, read_window

__all__ = [
    "DemGrid",
    "FloodDepthGrid",
    "drainage_mask",
    "flood_depth_from_dem",
    "flow_directions",
    "height_above_drainage",
    "rasterize_waterways",
    "read_dem",
    "write_flood_depth",
]

log = logging.getLogger(__name__)

StageReference = Literal["bed", "absolute"]
_NO_DRAIN = -1


class DemGrid(NamedTuple):
    """A DEM in memory: elevation (m, float64, NaN = nodata), its affine transform and CRS."""

    elevation_m: np.ndarray
    transform: Affine
    crs: CRS


class FloodDepthGrid(NamedTuple):
    """Flood depth (m, float32; 0 = dry, NaN = nodata) on the DEM's grid, with transform and CRS."""

    depth_m: np.ndarray
    transform: Affine
    crs: CRS


# --- inputs -------------------------------------------------------------------------------------


def _grid_crs(crs: Any) -> CRS:
    """Parse the DEM's CRS: projected in metres, or geographic (degrees)."""
    if crs is None:
        raise CRSError("the DEM has no CRS; assign one (read_dem(path, crs='EPSG:32737')) before deriving floods")
    parsed = parse_crs(crs, what="DEM crs")
    unit = parsed.axis_info[0].unit_name if parsed.axis_info else ""
    if parsed.is_projected and unit not in ("metre", "meter"):
        raise CRSError(
            f"the DEM is in {parsed.to_string()} with {unit or 'no'} units; flood mapping needs metres or degrees: "
            "reproject the DEM to the workspace CRS first (civicmap.sources.raster.reproject_raster)"
        )
    return parsed


def _elevation(dem: Any, nodata: float | None) -> np.ndarray:
    """The DEM as float64 with NaN for nodata; :class:`InputError` if unusable."""
    z = np.array(np.ma.filled(np.ma.asarray(dem, dtype=np.float64), np.nan), dtype=np.float64)
    if z.ndim != 2 or min(z.shape) < 2:
        raise InputError(f"the DEM must be a 2-D array of at least 2 x 2 cells, got shape {z.shape}")
    if nodata is not None and not math.isnan(nodata):
        z[z == nodata] = np.nan
    z[~np.isfinite(z)] = np.nan
    if np.isnan(z).all():
        raise InputError(f"the DEM has no valid cell (all {z.size} cells are nodata); check its nodata value")
    return z


def _fill_holes(z: np.ndarray) -> np.ndarray:
    """Fill nodata holes that do not touch the border by interpolation from their rim."""
    missing = np.isnan(z)
    labels, count = ndimage.label(missing, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return z
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    holes = missing & ~np.isin(labels, border)
    if not holes.any():
        return z
    filled = rasterio.fill.fillnodata(
        np.where(missing, 0.0, z), mask=(~holes).astype(np.uint8), max_search_distance=float(max(z.shape))
    )
    out = z.copy()
    out[holes] = filled[holes]
    log.info("filled %d interior nodata cells in %d holes by interpolation", int(holes.sum()), int(count))
    return out


def read_dem(
    path: str | os.PathLike[str],
    *,
    bounds: Any = None,
    bounds_crs: Any = None,
    crs: Any = None,
) -> DemGrid:
    """Read a DEM (band 1) into a :class:`DemGrid`, optionally only a window.

    ``bounds`` (west, south, east, north) in ``bounds_crs`` (default: the DEM's CRS) selects a
    window read with rasterio windows; ``crs`` assigns a CRS the file lacks (an ``.asc`` without
    ``.prj``). Nodata cells become NaN. Raises :class:`CRSError` for a DEM without CRS or in a
    projected CRS not in metres, :class:`InputError` if every cell is nodata.
    """
    info = read_raster_info(path)
    grid_crs = _grid_crs(crs if crs is not None else info.crs)
    data, transform = read_window(path, info.bounds if bounds is None else bounds, bounds_crs=bounds_crs, crs=crs)
    return DemGrid(_elevation(data, None), transform, grid_crs)


# --- waterways and drainage ---------------------------------------------------------------------


def _grid_bounds(transform: Affine, shape: tuple[int, int]) -> tuple[float, float, float, float]:
    west, south, east, north = rasterio.transform.array_bounds(shape[0], shape[1], transform)
    return float(west), float(south), float(east), float(north)


def _fmt(b: Any) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in b) + ")"


def rasterize_waterways(
    waterways: gpd.GeoDataFrame,
    *,
    transform: Affine,
    shape: tuple[int, int],
    crs: Any,
) -> np.ndarray:
    """Cells (bool array of ``shape``) touched by the waterway lines or areas (``all_touched``).

    ``waterways`` may be in any CRS (reprojected to ``crs``, the DEM's). Raises
    :class:`InputError` naming both extents when no waterway lies on the grid.
    """
    grid_crs = parse_crs(crs, what="DEM crs")
    require_crs(waterways, name="waterways")
    ways = to_crs(waterways, grid_crs, name="waterways")
    geoms = ways.geometry.to_numpy()
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    dem_bounds = _grid_bounds(transform, shape)
    if len(geoms) == 0:
        raise InputError("waterways has no geometry; give the OSM waterway lines (river, stream, drain, canal)")
    mask = rasterio.features.rasterize(
        ((g, 1) for g in geoms), out_shape=shape, transform=transform, fill=0, all_touched=True, dtype="uint8"
    ).astype(bool)
    if not mask.any():
        raise InputError(
            f"the waterways (extent {_fmt(shapely.total_bounds(geoms))}) do not overlap the DEM "
            f"(extent {_fmt(dem_bounds)}), both in {grid_crs.to_string()}; give waterways of the DEM's area"
        )
    return mask


def drainage_mask(
    flwdir: pyflwdir.FlwdirRaster,
    *,
    waterways: gpd.GeoDataFrame | np.ndarray | None = None,
    crs: Any = None,
    min_upstream_area_m2: float | None = None,
    dem: np.ndarray | None = None,
) -> np.ndarray:
    """Drainage cells (bool array on the flow-direction grid) that HAND is measured from.

    A cell drains when a mapped waterway touches it (``waterways``: a frame, rasterised with
    :func:`rasterize_waterways` and then needing ``crs``, the DEM's CRS; or an already
    rasterised bool array) or when its upstream area (m², geodesic on geographic grids) is at
    least ``min_upstream_area_m2``; with both, either suffices. Nodata cells never drain. With
    ``dem`` (elevation, m), cells inside closed depressions neither drain nor add to upstream
    areas (non-contributing areas): otherwise the routing across a filled depression would make
    a stream of its spill path and the depression would flood from its own rim. Slopes that
    drain *into* a depression still count for its spill path: a large closed basin whose rim
    alone passes the threshold still gets a stream at its spill point (raise the threshold, or
    rely on mapped waterways, there).
    """
    if waterways is None and min_upstream_area_m2 is None:
        raise InputError("drainage needs waterways, min_upstream_area_m2 or both; give at least one")
    drain = np.zeros(flwdir.shape, dtype=bool)
    if isinstance(waterways, np.ndarray):
        if waterways.shape != flwdir.shape:
            raise InputError(f"waterways mask has shape {waterways.shape}; expected the DEM's {flwdir.shape}")
        drain |= waterways.astype(bool)
    elif waterways is not None:
        if crs is None:
            raise CRSError("drainage_mask needs crs (the DEM's CRS) to rasterise a waterways frame")
        drain |= rasterize_waterways(waterways, transform=flwdir.transform, shape=flwdir.shape, crs=crs)
    if min_upstream_area_m2 is not None:
        drain |= _streams(flwdir, min_upstream_area_m2, dem)
    drain &= flwdir.mask.reshape(flwdir.shape)
    log.info("drainage: %d cells", int(drain.sum()))
    return drain


def _streams(flwdir: pyflwdir.FlwdirRaster, min_upstream_area_m2: float, dem: np.ndarray | None) -> np.ndarray:
    """Cells whose (contributing) upstream area reaches the threshold."""
    if not (min_upstream_area_m2 > 0 and math.isfinite(min_upstream_area_m2)):
        raise InputError(f"min_upstream_area_m2 must be a positive area in m², got {min_upstream_area_m2!r}")
    contributing = flwdir.mask.reshape(flwdir.shape).copy()
    if dem is not None:
        z = _fill_holes(_elevation(dem, None))
        if z.shape != flwdir.shape:
            raise InputError(f"the DEM has shape {z.shape}; expected the flow directions' {flwdir.shape}")
        no_drain = np.zeros(z.size, dtype=bool)
        contributing &= ~(_path_max(flwdir, no_drain, z.ravel()) > z.ravel()).reshape(z.shape)
    upstream = flwdir.accuflux(np.where(contributing, flwdir.area, 0.0), nodata=-9999.0)
    return contributing & (upstream >= min_upstream_area_m2)


# --- flow directions and HAND -------------------------------------------------------------------


# (row offset, column offset, D8 code): the ESRI codes pyflwdir uses (1 = E ... 128 = NE).
_D8_NEIGHBOURS = ((-1, 0, 64), (-1, 1, 128), (0, 1, 1), (1, 1, 2), (1, 0, 4), (1, -1, 8), (0, -1, 16), (-1, -1, 32))
_EARTH_RADIUS_M = 6_371_008.8


def _cell_sizes_m(transform: Affine, shape: tuple[int, int], *, geographic: bool) -> tuple[np.ndarray, float]:
    """Cell width per row (m, column vector) and height (m) of a north-up grid."""
    if transform.b != 0 or transform.d != 0:
        raise InputError(f"the DEM's transform is rotated ({tuple(transform)[:6]}); warp it to a north-up grid first")
    if not geographic:
        return np.full((shape[0], 1), abs(transform.a)), abs(transform.e)
    lat = transform.f + transform.e * (np.arange(shape[0]) + 0.5)
    dx = _EARTH_RADIUS_M * math.radians(abs(transform.a)) * np.cos(np.radians(lat))
    return dx.reshape(-1, 1), _EARTH_RADIUS_M * math.radians(abs(transform.e))


def _steepest_descent(filled: np.ndarray, d8_flood: np.ndarray, sizes: tuple[np.ndarray, float]) -> np.ndarray:
    """D8 towards the steepest strictly lower neighbour of the filled DEM (O'Callaghan & Mark 1984).

    Flat cells (no lower neighbour) keep the priority-flood direction, which leads across the
    flat to its outlet; the result has no cycles, as every step goes lower or follows the flood.
    """
    dx, dy = sizes
    rows, cols = filled.shape
    padded = np.pad(filled, 1, constant_values=np.nan)
    best = np.zeros(filled.shape)
    code = d8_flood.copy()
    with np.errstate(invalid="ignore"):
        for dr, dc, value in _D8_NEIGHBOURS:
            slope = (filled - padded[1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols]) / np.hypot(dr * dy, dc * dx)
            steeper = slope > best
            best[steeper] = slope[steeper]
            code[steeper] = value
    return code


def flow_directions(
    dem: np.ndarray,
    transform: Affine,
    *,
    nodata: float | None = None,
    crs: Any = None,
    burn: np.ndarray | None = None,
    burn_depth_m: float = 3.0,
) -> pyflwdir.FlwdirRaster:
    """D8 flow directions (a pyflwdir ``FlwdirRaster``) from a DEM, depressions filled.

    ``dem`` is elevation in metres (masked array, NaN or ``nodata`` for missing cells);
    ``transform`` maps it into ``crs`` (projected in metres or geographic; ``None`` is taken as
    metres). Interior nodata holes are interpolated, nodata touching the border is outside.
    ``burn`` (bool array, e.g. from :func:`rasterize_waterways`) cells are lowered by
    ``burn_depth_m`` before the priority-flood filling so the network follows them.
    """
    z = _fill_holes(_elevation(dem, nodata))
    latlon = crs is not None and _grid_crs(crs).is_geographic
    if burn is not None:
        if burn.shape != z.shape:
            raise InputError(f"burn mask has shape {burn.shape}; expected the DEM's {z.shape}")
        if not (burn_depth_m >= 0 and math.isfinite(burn_depth_m)):
            raise InputError(f"burn_depth_m must be a depth >= 0 in metres, got {burn_depth_m!r}")
        z = np.where(burn.astype(bool), z - burn_depth_m, z)
    filled, d8 = pyflwdir.dem.fill_depressions(z, nodata=np.nan, outlets="edge")
    d8 = _steepest_descent(filled, d8, _cell_sizes_m(transform, z.shape, geographic=latlon))
    return pyflwdir.from_array(d8, ftype="d8", check_ftype=False, transform=transform, latlon=latlon)


def _check_drainage(flwdir: pyflwdir.FlwdirRaster, drainage: np.ndarray) -> np.ndarray:
    drain = np.asarray(drainage)
    if drain.shape != flwdir.shape:
        raise InputError(f"drainage has shape {drain.shape}; expected the flow directions' {flwdir.shape}")
    drain = drain.astype(bool) & flwdir.mask.reshape(flwdir.shape)
    if not drain.any():
        raise InputError("the drainage mask has no valid cell; check the waterways or lower min_upstream_area_m2")
    return drain.ravel()


def _downstream_drain(flwdir: pyflwdir.FlwdirRaster, drain: np.ndarray) -> np.ndarray:
    """Flat index of the first drainage cell on each cell's D8 path; ``_NO_DRAIN`` if none."""
    ids = np.where(drain, np.arange(drain.size, dtype=np.int64), _NO_DRAIN).reshape(flwdir.shape)
    return flwdir.fillnodata(ids, nodata=_NO_DRAIN, direction="up").ravel()


def _path_max(flwdir: pyflwdir.FlwdirRaster, drain: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Highest elevation on each cell's D8 path down to (and including) its first drainage cell.

    Cells are processed one flow-distance level at a time (vectorised within a level), from the
    outlets upstream, so every downstream value is final when it is used.
    """
    rank = flwdir.rank.ravel()
    ds = flwdir.idxs_ds.astype(np.int64)
    cells = np.flatnonzero(rank > 0)
    cells = cells[np.argsort(rank[cells], kind="stable")]
    levels = np.split(cells, np.flatnonzero(np.diff(rank[cells])) + 1)
    top = z.copy()
    for level in levels:
        up = level[~drain[level]]
        top[up] = np.maximum(z[up], top[ds[up]])
    return top


def height_above_drainage(
    flwdir: pyflwdir.FlwdirRaster,
    drainage: np.ndarray,
    dem: np.ndarray,
    *,
    nodata: float | None = None,
) -> np.ndarray:
    """HAND (m, float64): height above the first drainage cell on each cell's D8 path.

    The height is the highest elevation met on the path (the spill level of a filled
    depression, the cell's own elevation elsewhere) minus the drain's elevation, so it is
    ``>= 0`` and ``0`` on drainage cells. NaN on nodata cells and on cells whose path leaves the
    DEM without meeting drainage (not connected). ``dem`` is the unburnt elevation in metres.
    """
    z = _fill_holes(_elevation(dem, nodata))
    if z.shape != flwdir.shape:
        raise InputError(f"the DEM has shape {z.shape}; expected the flow directions' {flwdir.shape}")
    drain = _check_drainage(flwdir, drainage)
    flat = z.ravel()
    idx = _downstream_drain(flwdir, drain)
    hand = np.full(flat.size, np.nan)
    ok = idx != _NO_DRAIN
    hand[ok] = _path_max(flwdir, drain, flat)[ok] - flat[idx[ok]]
    hand[np.isnan(_elevation(dem, nodata).ravel())] = np.nan
    return hand.reshape(z.shape)


# --- flood depth ---------------------------------------------------------------------------------


def _stage(stage_m: Any, shape: tuple[int, int], reference: str) -> np.ndarray:
    """Stage as a float64 array of ``shape`` (NaN = no water at that drainage cell)."""
    if reference not in ("bed", "absolute"):
        raise InputError(f"stage_reference {reference!r} must be 'bed' (m above the drain cell) or 'absolute' (m)")
    stage = np.asarray(stage_m, dtype=np.float64)
    if stage.ndim == 0:
        if not math.isfinite(float(stage)):
            raise InputError(f"stage_m must be a finite water level in metres, got {stage_m!r}")
        stage = np.full(shape, float(stage))
    elif stage.shape != shape:
        raise InputError(f"stage_m array has shape {stage.shape}; expected one value per DEM cell, shape {shape}")
    if reference == "bed" and np.nanmin(stage, initial=0.0) < 0:
        raise InputError(
            f"stage_m must be >= 0 m above the river bed, got minimum {np.nanmin(stage):g}; "
            "for water-surface elevations pass stage_reference='absolute'"
        )
    return stage


def _depth(
    flwdir: pyflwdir.FlwdirRaster, drain: np.ndarray, z: np.ndarray, stage: np.ndarray, reference: str
) -> np.ndarray:
    """Depth (m) = wse(drain) - z where the path maximum lies below wse, else 0."""
    flat = z.ravel()
    idx = _downstream_drain(flwdir, drain)
    ok = idx != _NO_DRAIN
    wse_drain = stage.ravel() + (flat if reference == "bed" else 0.0)
    wse = np.full(flat.size, np.nan)
    wse[ok] = wse_drain[idx[ok]]
    with np.errstate(invalid="ignore"):
        wet = _path_max(flwdir, drain, flat) < wse
    depth = np.where(wet, wse - flat, 0.0)
    return depth.reshape(z.shape)


def flood_depth_from_dem(
    dem: DemGrid | str | os.PathLike[str],
    *,
    stage_m: float | np.ndarray,
    waterways: gpd.GeoDataFrame | None = None,
    stage_reference: StageReference = "bed",
    min_upstream_area_m2: float | None = None,
    burn_depth_m: float = 3.0,
) -> FloodDepthGrid:
    """Flood depth (m) from a DEM, its drainage and a river stage, by HAND (see module doc).

    ``dem``: a :class:`DemGrid` or a path read with :func:`read_dem`. ``stage_m``: one level for
    every drainage cell or a DEM-shaped array read at the drainage cells (NaN = no water there);
    with ``stage_reference="bed"`` it is metres above the DEM at the drain cell (>= 0), with
    ``"absolute"`` the water-surface elevation in the DEM's vertical datum. ``waterways`` (OSM
    lines, any CRS) are drainage and are burnt ``burn_depth_m`` deep; ``min_upstream_area_m2``
    adds DEM-derived streams. Returns a :class:`FloodDepthGrid` on the DEM's grid: depth
    float32, 0 where dry, NaN on nodata.
    """
    grid = dem if isinstance(dem, DemGrid) else read_dem(dem)
    crs = _grid_crs(grid.crs)
    z0 = _elevation(grid.elevation_m, None)
    stage = _stage(stage_m, z0.shape, stage_reference)
    wmask = None
    if waterways is not None:
        wmask = rasterize_waterways(waterways, transform=grid.transform, shape=z0.shape, crs=crs)
    elif min_upstream_area_m2 is None:
        raise InputError("flood_depth_from_dem needs waterways, min_upstream_area_m2 or both; give at least one")
    flw = flow_directions(z0, grid.transform, crs=crs, burn=wmask, burn_depth_m=burn_depth_m)
    drain = drainage_mask(flw, waterways=wmask, min_upstream_area_m2=min_upstream_area_m2, dem=z0)
    depth = _depth(flw, _check_drainage(flw, drain), _fill_holes(z0), stage, stage_reference)
    depth[np.isnan(z0)] = np.nan
    log.info("flood depth: %d of %d valid cells wet", int((depth > 0).sum()), int((~np.isnan(z0)).sum()))
    return FloodDepthGrid(depth.astype(np.float32), grid.transform, crs)


def write_flood_depth(flood: FloodDepthGrid, path: str | os.PathLike[str], *, nodata: float = -9999.0) -> Path:
    """Write a :class:`FloodDepthGrid` as a tiled, DEFLATE-compressed float32 GeoTIFF (metres).

    NaN cells are written as ``nodata`` (default -9999, as InaSAFE's depth rasters). Returns
    the path written.
    """
    out = Path(path)
    depth = np.where(np.isnan(flood.depth_m), nodata, flood.depth_m).astype(np.float32)
    rows, cols = depth.shape
    tiled = rows >= 256 and cols >= 256
    profile: dict[str, Any] = {
        "driver": "GTiff", "dtype": "float32", "count": 1, "height": rows, "width": cols, "crs": flood.crs.to_wkt(),
        "transform": flood.transform, "nodata": nodata, "compress": "DEFLATE", "predictor": 3, "tiled": tiled,
    }  # fmt: skip
    if tiled:
        profile.update(blockxsize=256, blockysize=256)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(depth, 1)
        dst.set_band_description(1, "flood depth (m)")
        dst.update_tags(1, UNITS="m", METHOD="HAND (height above nearest drainage), civicmap.layers.risk.flood_dem")
    return out
