"""The only place civicmap reprojects vector data, and the CRS checks done on entry.

Conventions: analysis runs in a workspace's metric CRS (by default the UTM zone of the
area of interest); GeoJSON leaves in EPSG:4326 with (longitude, latitude) axis order;
tiles use EPSG:3857. Every transform here uses ``always_xy=True`` semantics through
geopandas/pyproj, so x is always longitude or easting.
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
from pyproj import CRS
from pyproj.exceptions import CRSError as PyprojCRSError

from civicmap.errors import CRSError
from civicmap.types import BBox

__all__ = [
    "WGS84",
    "check_lonlat",
    "is_metric",
    "local_metric_crs",
    "metric_crs",
    "parse_crs",
    "require_crs",
    "require_metric",
    "to_crs",
    "to_wgs84",
]

WGS84 = CRS.from_epsg(4326)


def parse_crs(value: object, *, what: str = "crs") -> CRS:
    """Turn an EPSG code, ``"EPSG:32737"``, WKT or a pyproj CRS into a :class:`pyproj.CRS`."""
    try:
        return CRS.from_user_input(value)
    except (PyprojCRSError, TypeError, ValueError) as exc:
        raise CRSError(f"{what} {value!r} is not a CRS pyproj knows; give an EPSG code such as 'EPSG:32737'") from exc


def local_metric_crs(bbox_wgs84: BBox) -> CRS:
    """The UTM zone CRS (WGS 84 / UTM, metres) containing the centre of a lon/lat bbox.

    ``bbox_wgs84`` is (west, south, east, north) in degrees, EPSG:4326. Polar areas
    (beyond 84°N / 80°S), where UTM is not defined, get the UPS projections.
    """
    lon = (bbox_wgs84.west + bbox_wgs84.east) / 2
    lat = (bbox_wgs84.south + bbox_wgs84.north) / 2
    if lat > 84:
        return CRS.from_epsg(32661)
    if lat < -80:
        return CRS.from_epsg(32761)
    zone = min(math.floor((lon + 180) / 6) + 1, 60)
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def require_crs(gdf: gpd.GeoDataFrame, *, name: str) -> CRS:
    """Return the frame's CRS, or raise :class:`CRSError` naming the layer and the fix."""
    if gdf.crs is None:
        raise CRSError(
            f"layer {name!r} has no CRS; set one with gdf.set_crs('EPSG:4326') "
            "(or the CRS the coordinates are really in) before passing it to civicmap"
        )
    return CRS.from_user_input(gdf.crs)


def is_metric(crs: CRS) -> bool:
    """True for a projected CRS whose first axis is in metres."""
    unit = crs.axis_info[0].unit_name if crs.axis_info else ""
    return bool(crs.is_projected) and unit in ("metre", "meter")


def metric_crs(gdf: gpd.GeoDataFrame, *, name: str, crs: CRS | str | int | None = None) -> CRS:
    """The CRS to measure ``gdf`` in: ``crs`` if given, else its own if metric, else the UTM zone of its bounds.

    Raises :class:`CRSError` for a frame without CRS, and for an empty frame in degrees
    (there is no extent to choose a UTM zone from).
    """
    if crs is not None:
        return parse_crs(crs)
    own = require_crs(gdf, name=name)
    if is_metric(own):
        return own
    located = gdf.geometry[~gdf.geometry.isna().to_numpy() & ~gdf.geometry.is_empty.to_numpy()]
    if located.empty:
        raise CRSError(f"layer {name!r} is empty and in {own.to_string()}; give a metric CRS explicitly")
    west, south, east, north = (float(v) for v in located.to_crs(WGS84).total_bounds)
    return local_metric_crs(BBox(west, south, east, north))


def require_metric(gdf: gpd.GeoDataFrame, *, name: str) -> CRS:
    """Require a projected CRS whose unit is the metre (for lengths and areas)."""
    crs = require_crs(gdf, name=name)
    if not is_metric(crs):
        unit = crs.axis_info[0].unit_name if crs.axis_info else ""
        raise CRSError(
            f"layer {name!r} is in {crs.to_string()} ({unit or 'no unit'}); metric analysis needs a projected "
            "CRS in metres: reproject with civicmap.crs.to_crs(gdf, local_metric_crs(bbox))"
        )
    return crs


def to_crs(gdf: gpd.GeoDataFrame, crs: CRS | str | int, *, name: str = "layer") -> gpd.GeoDataFrame:
    """Reproject ``gdf`` to ``crs`` (a no-op copy if it is already there).

    Raises :class:`CRSError` if the frame has no CRS or the result has non-finite coordinates
    (pyproj returns ``inf`` for points outside a projection's domain).
    """
    src = require_crs(gdf, name=name)
    dst = parse_crs(crs)
    if src.equals(dst):
        return gdf.copy()
    out = gdf.to_crs(dst)
    bounds = out.geometry.bounds.to_numpy()
    if len(bounds) and not np.isfinite(bounds[~np.isnan(bounds).any(axis=1)]).all():
        raise CRSError(
            f"layer {name!r}: some coordinates have no place in {dst.to_string()} (reprojection gave inf); "
            "check that the layer's CRS is right and that lon/lat are not swapped"
        )
    return out


def to_wgs84(gdf: gpd.GeoDataFrame, *, name: str = "layer") -> gpd.GeoDataFrame:
    """Reproject to EPSG:4326, (longitude, latitude), as RFC 7946 GeoJSON wants."""
    return to_crs(gdf, WGS84, name=name)


def check_lonlat(gdf: gpd.GeoDataFrame, *, name: str, area: BBox | None = None) -> None:
    """Raise :class:`CRSError` if a frame said to be EPSG:4326 cannot be lon/lat.

    Catches metre coordinates labelled as degrees, values outside [-180, 180] x [-90, 90],
    and, when ``area`` (a lon/lat bbox) is given, data that lies in the area only once
    lon and lat are swapped.
    """
    if gdf.empty:
        return
    b = gdf.geometry.total_bounds
    if not np.isfinite(b).all():
        raise CRSError(f"layer {name!r} has non-finite coordinates (NaN or inf); remove or fix those features")
    w, s, e, n = (float(v) for v in b)
    if w < -180 or e > 180 or s < -90 or n > 90:
        raise CRSError(
            f"layer {name!r} has coordinates outside lon [-180, 180] / lat [-90, 90] "
            f"(bounds {w:.6g}, {s:.6g}, {e:.6g}, {n:.6g}): it is probably in a projected CRS, not EPSG:4326; "
            "set its real CRS"
        )
    if area is None:
        return
    inside = w <= area.east and e >= area.west and s <= area.north and n >= area.south
    swapped = s <= area.east and n >= area.west and w <= area.north and e >= area.south
    if not inside and swapped:
        raise CRSError(
            f"layer {name!r} lies in the area of interest only with longitude and latitude swapped "
            f"(bounds {w:.6g}, {s:.6g}, {e:.6g}, {n:.6g}); GeoJSON positions are [longitude, latitude]"
        )
