"""Entry checks shared by the settlement layers: CRS to metres, footprint cleaning."""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from civicmap.crs import metric_crs, require_crs, to_crs
from civicmap.errors import GeometryError, InputError
from civicmap.sources._clean import clean_geometries

__all__ = ["clean_footprints", "metric_crs_of", "to_metric"]

log = logging.getLogger(__name__)


def metric_crs_of(gdf: gpd.GeoDataFrame, *, name: str, crs: CRS | str | int | None = None) -> CRS:
    """``crs`` if given, else the frame's own CRS when projected in metres, else its local UTM zone."""
    chosen = metric_crs(gdf, name=name, crs=crs)
    if crs is None and not chosen.equals(require_crs(gdf, name=name)):
        log.info("layer %r is in %s; computing in the local UTM zone %s", name, gdf.crs, chosen.to_string())
    return chosen


def to_metric(gdf: gpd.GeoDataFrame, crs: CRS, *, name: str) -> gpd.GeoDataFrame:
    """Reproject ``gdf`` to the metric ``crs`` (through :func:`civicmap.crs.to_crs`, the only reprojector)."""
    require_crs(gdf, name=name)
    return to_crs(gdf, crs, name=name)


def clean_footprints(buildings: gpd.GeoDataFrame, *, name: str = "buildings") -> gpd.GeoDataFrame:
    """Repair footprints (``make_valid``), keep polygons only, and report overlaps.

    Returns the cleaned frame (index kept) with ``attrs["cleaning"]`` holding the
    :class:`~civicmap.sources._clean.GeometryReport` as a dict plus ``overlapping`` (the
    number of footprints whose interior overlaps another one by more than 1 % of its area).
    Raises :class:`GeometryError` if nothing usable is left.
    """
    if not isinstance(buildings, gpd.GeoDataFrame):
        raise InputError(f"{name} must be a GeoDataFrame of footprint polygons; got {type(buildings).__name__}")
    if buildings.index.has_duplicates:
        raise InputError(f"{name} has a duplicated index; give every footprint a unique index (reset_index())")
    cleaned, report = clean_geometries(buildings, layer=name, family="polygon")
    if len(buildings) and cleaned.empty:
        raise GeometryError(f"none of the {len(buildings)} {name} is a usable polygon; expected building footprints")
    overlapping = count_overlaps(cleaned.geometry.to_numpy())
    if report.problems or overlapping:
        log.warning("%s; %d footprints overlap another by more than 1 %% of their area", report, overlapping)
    cleaned.attrs["cleaning"] = {**report.__dict__, "overlapping": overlapping}
    return cleaned


def count_overlaps(geoms: np.ndarray) -> int:
    """Footprints whose overlap with some other footprint exceeds 1 % of their area (vectorised)."""
    if len(geoms) < 2:
        return 0
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if not len(left):
        return 0
    shared = shapely.area(shapely.intersection(geoms[left], geoms[right]))
    areas = shapely.area(geoms)
    big = shared > 0.01 * np.minimum(areas[left], areas[right])
    return len(np.union1d(left[big], right[big]))
