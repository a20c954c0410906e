"""Geometry hygiene shared by the readers: repair what can be repaired, count the rest."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

__all__ = ["GeometryReport", "clean_geometries"]

log = logging.getLogger(__name__)

_POLYGONAL = {"Polygon", "MultiPolygon"}
_LINEAR = {"LineString", "MultiLineString"}
_FAMILY = {"polygon": _POLYGONAL, "line": _LINEAR, "point": {"Point", "MultiPoint"}}
_TYPE_IDS = {
    "polygon": [shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON],
    "line": [shapely.GeometryType.LINESTRING, shapely.GeometryType.MULTILINESTRING],
    "point": [shapely.GeometryType.POINT, shapely.GeometryType.MULTIPOINT],
}


@dataclass(frozen=True)
class GeometryReport:
    """What :func:`clean_geometries` did to a layer: counts of features, never silent."""

    layer: str
    total: int
    repaired: int
    dropped_null: int
    dropped_empty_or_invalid: int

    @property
    def problems(self) -> int:
        """Features repaired or dropped."""
        return self.repaired + self.dropped_null + self.dropped_empty_or_invalid

    def __str__(self) -> str:
        return (
            f"{self.layer}: {self.total} features, {self.repaired} repaired, "
            f"{self.dropped_null} null and {self.dropped_empty_or_invalid} empty/unrepairable dropped"
        )


def clean_geometries(
    gdf: gpd.GeoDataFrame, *, layer: str, family: str | None = None
) -> tuple[gpd.GeoDataFrame, GeometryReport]:
    """Repair invalid geometries with ``make_valid`` and drop null, empty or unusable ones.

    Vectorised over the whole frame; works in any CRS (the repair is planar). ``family``
    (``"polygon"``, ``"line"`` or ``"point"``) keeps only the parts of that dimension from
    a repaired geometry (a bow-tie polygon stays polygonal, its slivers go). Returns the
    cleaned frame (index kept) and a :class:`GeometryReport`.
    """
    geoms = gdf.geometry.array
    null = np.asarray(geoms.isna())
    values = np.asarray(gdf.geometry.values, dtype=object)
    invalid = ~null & ~shapely.is_valid(values)
    fixed = values.copy()
    if invalid.any():
        fixed[invalid] = shapely.make_valid(values[invalid])
    if family is not None:
        wanted = _FAMILY[family]
        types = shapely.get_type_id(fixed)
        mixed = ~null & (types == shapely.GeometryType.GEOMETRYCOLLECTION)
        if mixed.any():
            fixed[mixed] = [_keep_family(g, wanted) for g in fixed[mixed]]
    empty = ~null & shapely.is_empty(fixed)
    if family is not None:
        wrong = ~null & ~empty & ~np.isin(shapely.get_type_id(fixed), _TYPE_IDS[family])
    else:
        wrong = np.zeros(len(fixed), dtype=bool)
    keep = ~null & ~empty & ~wrong
    out = gdf.loc[keep].copy()
    out = out.set_geometry(gpd.GeoSeries(fixed[keep], index=out.index, crs=gdf.crs), crs=gdf.crs)
    report = GeometryReport(
        layer=layer,
        total=len(gdf),
        repaired=int((invalid & keep).sum()),
        dropped_null=int(null.sum()),
        dropped_empty_or_invalid=int((empty | wrong).sum()),
    )
    if report.problems:
        log.info("%s", report)
    return out, report


def _keep_family(geom: shapely.Geometry, wanted: set[str]) -> shapely.Geometry:
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in wanted]
    if not parts:
        return shapely.Polygon()
    return shapely.union_all(parts) if len(parts) > 1 else parts[0]
