"""Grid aggregation of building indicators: H3 hexagons or square cells, never settlement outlines.

:func:`settlement_grid` assigns each building to the cell holding its centroid and returns
one row per cell that holds at least one building, in the metric CRS of the buildings.

Cells: ``kind="h3"`` uses H3 (v4) at ``resolution`` (default 10: average hexagon area
0.0150 km², average edge 75.9 m per ``h3.average_hexagon_area`` / ``average_hexagon_edge_length``:
the H3 resolution closest to the ~100 m x 100 m (0.01 km²) cells of IDEAMAPS; res 9 is
0.105 km², res 11 0.0021 km²). h3 4.x has no array version of ``latlng_to_cell``, so instead
of one Python call per building the cells covering the buildings' extent are listed once
(``h3shape_to_cells``, one boundary per *cell*) and buildings are matched to them with a
vectorised point-in-polygon query. ``kind="square"`` uses ``cell_size_m`` squares aligned to
multiples of the size in the metric CRS.

Columns (present when their inputs are; units in names):
``cell_id``, ``building_count``, ``cell_area_m2``, ``coverage_ratio`` (footprint area of the
cell's buildings / cell area; whole footprints by centroid, so it may exceed 1 next to very
large buildings), ``area_median_m2``, ``area_iqr_m2``, ``orientation_circstd_deg`` (circular
standard deviation of momepy ``orientation`` on its 90° period), ``alignment_median_deg``,
``neighbour_distance_median_m``, ``shared_walls_median_m``, ``street_distance_median_m``,
``deep_share`` (share of buildings deeper than 2 layers from a street, unreachable ones
included), ``<service>_median_m`` (from :func:`~.access.service_access` columns
``<service>_m``), ``street_km_per_km2`` and ``intersections_per_km2`` (when ``streets`` are
given), ``hazard_share`` (share of buildings whose centroid lies in a hazard polygon; only
polygons with ``affected`` true when that column exists), ``survey_points`` and
``survey_<column>`` means of numeric survey columns (when ``survey`` is given).

A cell smaller than the median footprint cannot describe a neighbourhood: that is logged as
a warning and flagged in ``attrs["cell_smaller_than_building"]``.
"""

from __future__ import annotations

import logging
from typing import Literal

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from civicmap.crs import to_wgs84
from civicmap.errors import InputError
from civicmap.layers.settlements._prepare import metric_crs_of, to_metric
from civicmap.layers.settlements.access import SERVICES, street_intersections

__all__ = ["DEFAULT_H3_RESOLUTION", "settlement_grid"]

log = logging.getLogger(__name__)

#: H3 resolution whose average hexagon (0.0150 km²) is closest to a 100 m x 100 m cell.
DEFAULT_H3_RESOLUTION = 10
_PERIOD_DEG = 90.0  # momepy orientation repeats every 90 degrees


def _h3_cells(points_wgs84: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cell index of each point, cell ids, cell polygons in lon/lat) without a per-point Python call."""
    west, south, east, north = shapely.total_bounds(points_wgs84)
    pad = 3 * h3.average_hexagon_edge_length(resolution, "m") / 111_320
    pad_lon = pad / max(np.cos(np.radians(max(abs(south), abs(north)))), 0.01)
    ring = [
        (south - pad, west - pad_lon),
        (south - pad, east + pad_lon),
        (north + pad, east + pad_lon),
        (north + pad, west - pad_lon),
    ]
    cells = np.asarray(sorted(h3.h3shape_to_cells(h3.LatLngPoly(ring), resolution)), dtype=object)
    rings = [[(lng, lat) for lat, lng in h3.cell_to_boundary(c)] for c in cells]  # per cell, not per building
    polygons = shapely.polygons(rings)
    point_idx, cell_idx = shapely.STRtree(polygons).query(points_wgs84, predicate="intersects")
    first = np.unique(point_idx, return_index=True)[1]
    owner = np.full(len(points_wgs84), -1, dtype=np.int64)
    owner[point_idx[first]] = cell_idx[first]
    return owner, np.asarray([str(c) for c in cells], dtype=object), polygons


def _assign(
    centres: gpd.GeoSeries, kind: str, resolution: int, cell_size_m: float
) -> tuple[np.ndarray, np.ndarray, gpd.GeoSeries]:
    """Cell id of each centre, and the geometries (metric CRS) of the cells used."""
    if kind == "square":
        xy = shapely.get_coordinates(centres.to_numpy())
        ij = np.floor(xy / cell_size_m).astype(np.int64)
        keys, owner = np.unique(ij, axis=0, return_inverse=True)
        ids = np.char.add(np.char.add(keys[:, 0].astype(str), "_"), keys[:, 1].astype(str)).astype(object)
        boxes = shapely.box(
            keys[:, 0] * cell_size_m,
            keys[:, 1] * cell_size_m,
            (keys[:, 0] + 1) * cell_size_m,
            (keys[:, 1] + 1) * cell_size_m,
        )
        return owner.ravel(), ids, gpd.GeoSeries(boxes, crs=centres.crs)
    lonlat = to_wgs84(gpd.GeoDataFrame(geometry=centres), name="building centroids").geometry.to_numpy()
    owner, ids, polygons = _h3_cells(lonlat, resolution)
    used, owner = np.unique(owner, return_inverse=True)
    hexes = to_metric(gpd.GeoDataFrame(geometry=polygons[used], crs="EPSG:4326"), centres.crs, name="H3 cells")
    return owner.ravel(), ids[used], hexes.geometry.reset_index(drop=True)


def _circstd(orientation: pd.Series, cell: np.ndarray) -> pd.Series:
    angle = np.radians(orientation.to_numpy(dtype=float) * 360.0 / _PERIOD_DEG)
    sums = pd.DataFrame({"c": np.cos(angle), "s": np.sin(angle), "cell": cell}).groupby("cell")[["c", "s"]].mean()
    r = np.clip(np.hypot(sums["c"], sums["s"]), 1e-12, 1.0)
    return pd.Series(np.degrees(np.sqrt(-2 * np.log(r))) * _PERIOD_DEG / 360.0, index=sums.index)


def _building_stats(frame: pd.DataFrame, cell: np.ndarray) -> pd.DataFrame:
    groups = frame.groupby(cell)
    stats = pd.DataFrame({"building_count": groups.size()})
    if "area" in frame:
        stats["footprint_m2"] = groups["area"].sum()
        stats["area_median_m2"] = groups["area"].median()
        stats["area_iqr_m2"] = groups["area"].quantile(0.75) - groups["area"].quantile(0.25)
    if "orientation" in frame:
        stats["orientation_circstd_deg"] = _circstd(frame["orientation"], cell)
    medians = {
        "alignment": "alignment_median_deg",
        "neighbour_distance": "neighbour_distance_median_m",
        "shared_walls": "shared_walls_median_m",
        "street_distance_m": "street_distance_median_m",
    }
    medians |= {f"{s}_m": f"{s}_median_m" for s in SERVICES}
    for column, name in medians.items():
        if column in frame:
            stats[name] = groups[column].median()
    if "block_depth" in frame:
        deep = ~(frame["block_depth"].to_numpy(dtype=float) <= 2)
        stats["deep_share"] = pd.Series(deep, index=frame.index).groupby(cell).mean()
    return stats


def _line_density(cells: gpd.GeoSeries, streets: gpd.GeoDataFrame, crs: CRS) -> pd.DataFrame:
    lines = to_metric(streets, crs, name="streets").geometry.to_numpy()
    cell_geoms = cells.to_numpy()
    c, li = shapely.STRtree(lines).query(cell_geoms, predicate="intersects")
    length = np.bincount(
        c, weights=shapely.length(shapely.intersection(cell_geoms[c], lines[li])), minlength=len(cells)
    )
    nodes = street_intersections(streets, crs=crs).to_numpy()
    n_c, _ = shapely.STRtree(nodes).query(cell_geoms, predicate="contains") if len(nodes) else ([], [])
    area_km2 = shapely.area(cell_geoms) / 1e6
    return pd.DataFrame(
        {
            "street_km_per_km2": length / 1000 / area_km2,
            "intersections_per_km2": np.bincount(np.asarray(n_c, dtype=np.int64), minlength=len(cells)) / area_km2,
        }
    )


def _share_in(centres: np.ndarray, polygons: gpd.GeoDataFrame, crs: CRS, cell: np.ndarray) -> pd.Series:
    zones = to_metric(polygons, crs, name="hazard")
    if "affected" in zones:
        zones = zones.loc[zones["affected"].fillna(False).astype(bool).to_numpy()]
    inside = np.zeros(len(centres), dtype=bool)
    if len(zones):
        pt, _ = shapely.STRtree(zones.geometry.to_numpy()).query(centres, predicate="within")
        inside[pt] = True
    return pd.Series(inside).groupby(cell).mean()


def _survey_means(survey: gpd.GeoDataFrame, crs: CRS, cells: gpd.GeoSeries) -> pd.DataFrame:
    points = to_metric(survey, crs, name="survey")
    cell_idx, pt = shapely.STRtree(points.geometry.to_numpy()).query(cells.to_numpy(), predicate="covers")
    numeric = points.drop(columns=points.geometry.name).select_dtypes("number").iloc[pt]
    means = numeric.groupby(cell_idx).mean().add_prefix("survey_")
    means["survey_points"] = pd.Series(cell_idx).value_counts()
    return means.reindex(range(len(cells)))


def settlement_grid(
    buildings: gpd.GeoDataFrame,
    *,
    kind: Literal["h3", "square"] = "h3",
    resolution: int = DEFAULT_H3_RESOLUTION,
    cell_size_m: float = 100.0,
    streets: gpd.GeoDataFrame | None = None,
    hazard: gpd.GeoDataFrame | None = None,
    survey: gpd.GeoDataFrame | None = None,
    crs: CRS | str | int | None = None,
) -> gpd.GeoDataFrame:
    """Aggregate per-building indicators to grid cells (see the module docstring for columns).

    ``buildings``: footprints with any of the columns of :func:`~.morphology.building_morphology`,
    :func:`~.access.street_access` and :func:`~.access.service_access` joined on. Output:
    a GeoDataFrame in the buildings' metric CRS, one row per non-empty cell, sorted by
    ``cell_id``. Per-building rows are private; publish cells through
    :func:`~.index.public_cells`.
    """
    if kind not in ("h3", "square"):
        raise InputError(f"kind={kind!r}; expected 'h3' or 'square'")
    if (kind == "h3" and not 0 <= resolution <= 15) or (kind == "square" and not cell_size_m > 0):
        raise InputError(
            f"bad cell size (resolution={resolution}, cell_size_m={cell_size_m}); expected H3 "
            "resolution 0..15 or a positive size in metres"
        )
    metric = metric_crs_of(buildings, name="buildings", crs=crs)
    frame = to_metric(buildings, metric, name="buildings")
    if "area" not in frame:
        frame["area"] = frame.geometry.area
    centres = frame.geometry.centroid
    cell, ids, geoms = _assign(centres, kind, resolution, cell_size_m)
    stats = _building_stats(pd.DataFrame(frame.drop(columns=frame.geometry.name)), cell).reindex(range(len(ids)))
    stats.insert(0, "cell_id", ids)
    stats["cell_area_m2"] = shapely.area(geoms.to_numpy())
    stats["coverage_ratio"] = stats.pop("footprint_m2") / stats["cell_area_m2"]
    extras = [
        _line_density(geoms, streets, metric) if streets is not None and len(streets) else None,
        _share_in(centres.to_numpy(), hazard, metric, cell).rename("hazard_share") if hazard is not None else None,
        _survey_means(survey, metric, geoms) if survey is not None and len(survey) else None,
    ]
    stats = pd.concat([stats, *(e for e in extras if e is not None)], axis=1)
    used = (stats["building_count"] > 0).to_numpy()
    grid = gpd.GeoDataFrame(stats.loc[used], geometry=geoms.to_numpy()[used], crs=metric)
    grid = grid.sort_values("cell_id").reset_index(drop=True)
    _check_cell_size(grid, frame["area"])
    return grid


def _check_cell_size(grid: gpd.GeoDataFrame, areas: pd.Series) -> None:
    median_area = float(areas.median()) if len(areas) else 0.0
    cell_area = float(grid["cell_area_m2"].median()) if len(grid) else np.inf
    small = cell_area < median_area
    grid.attrs["cell_smaller_than_building"] = small
    if small:
        log.warning(
            "grid cells (median %.1f m²) are smaller than the median building (%.1f m²); use larger cells",
            cell_area,
            median_area,
        )
