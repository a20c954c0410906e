"""People per hazard class on a population count grid; private to :mod:`civicmap.layers.risk.exposure`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.features
import shapely
from affine import Affine
from pyproj import CRS
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window

from civicmap.crs import to_crs
from civicmap.errors import InputError
from civicmap.layers.risk._zonal import outer_window
from civicmap.layers.risk.hazard import (
    NOT_CLASSED,
    ClassifiedZones,
    HazardClassification,
    open_hazard_raster,
    raster_levels,
)
from civicmap.sources._clean import clean_geometries

__all__ = ["population_table"]


def population_table(
    population_raster: str | Path,
    hazard: gpd.GeoDataFrame | ClassifiedZones | str | Path,
    *,
    classification: HazardClassification,
    code_map: Mapping[int, str] | None,
    band: int,
    aggregation: gpd.GeoDataFrame | None,
    aggregation_field: str | None,
) -> pd.DataFrame:
    """See :func:`civicmap.layers.risk.exposure.population_by_class`."""
    zones = hazard.zones if isinstance(hazard, ClassifiedZones) else hazard
    with open_hazard_raster(population_raster) as pop:
        crs = CRS.from_wkt(pop.crs.to_wkt())
        extent = _extent(zones, aggregation, crs)
        win = _window(pop, extent)
        people = pop.read(band, window=win).astype(np.float64)
        if pop.nodata is not None:
            people[people == pop.nodata] = np.nan
        transform = pop.window_transform(win)
    shape = people.shape
    if isinstance(zones, gpd.GeoDataFrame):
        levels = _burn_zones(zones, classification, crs, shape, transform)
    else:
        levels = _resample_classes(zones, classification, code_map, crs, shape, transform)
    valid = np.isfinite(people) & (people >= 0)
    names = np.array(["all"], dtype=object)
    area_id = np.zeros(shape, dtype=np.int64)
    if aggregation is not None:
        area_id, names = _burn_areas(aggregation, aggregation_field, crs, shape, transform)
        valid &= area_id >= 0
    return _table(people[valid], levels[valid], area_id[valid], names, classification, aggregation is not None)


def _extent(zones: gpd.GeoDataFrame | str | Path, aggregation: gpd.GeoDataFrame | None, crs: CRS) -> np.ndarray:
    if aggregation is not None:
        return to_crs(aggregation, crs, name="aggregation").total_bounds
    if isinstance(zones, gpd.GeoDataFrame):
        return to_crs(zones, crs, name="hazard").total_bounds
    with open_hazard_raster(zones) as ds:
        box = gpd.GeoDataFrame(geometry=[shapely.box(*ds.bounds)], crs=CRS.from_wkt(ds.crs.to_wkt()))
    return to_crs(box, crs, name="hazard raster extent").total_bounds


def _window(ds: rasterio.io.DatasetReader, bounds: np.ndarray) -> Window:
    win = outer_window(ds, bounds)
    if win.width == 0 or win.height == 0:
        raise InputError("the population raster does not overlap the hazard / aggregation extent")
    return win


def _burn_zones(
    zones: gpd.GeoDataFrame, classification: HazardClassification, crs: CRS, shape: tuple[int, int], transform: Affine
) -> np.ndarray:
    """Class index at each cell centre; zones burnt least severe first so the most severe wins."""
    if "hazard_class" not in zones.columns:
        raise InputError("hazard polygons need a 'hazard_class' column; use classify_hazard_polygons first")
    cleaned, _ = clean_geometries(to_crs(zones, crs, name="hazard"), layer="hazard", family="polygon")
    cleaned = cleaned[cleaned["hazard_class"].notna()]
    positions = {n: i for i, n in enumerate(classification.names)}
    lv = cleaned["hazard_class"].map(positions).to_numpy(dtype=np.int64)
    order = np.argsort(lv, kind="stable")
    shapes = zip(cleaned.geometry.values[order], lv[order], strict=True)
    if len(order) == 0:
        return np.full(shape, NOT_CLASSED, dtype=np.int16)
    return rasterio.features.rasterize(shapes, out_shape=shape, transform=transform, fill=NOT_CLASSED,
                                       dtype="int16", all_touched=False)  # fmt: skip


def _resample_classes(
    path: str | Path,
    classification: HazardClassification,
    code_map: Mapping[int, str] | None,
    crs: CRS,
    shape: tuple[int, int],
    transform: Affine,
) -> np.ndarray:
    """Hazard classes resampled (nearest neighbour) onto the population grid window."""
    with open_hazard_raster(path) as ds:
        levels = raster_levels(ds.read(1), classification=classification, nodata=ds.nodata, code_map=code_map)
        out = np.full(shape, NOT_CLASSED, dtype=np.int16)
        reproject(
            levels,
            out,
            src_transform=ds.transform,
            src_crs=ds.crs,
            src_nodata=NOT_CLASSED,
            dst_transform=transform,
            dst_crs=crs,
            dst_nodata=NOT_CLASSED,
            resampling=Resampling.nearest,
        )
    return out


def _burn_areas(
    areas: gpd.GeoDataFrame, field: str | None, crs: CRS, shape: tuple[int, int], transform: Affine
) -> tuple[np.ndarray, np.ndarray]:
    cleaned, _ = clean_geometries(to_crs(areas, crs, name="aggregation"), layer="aggregation", family="polygon")
    if field is not None and field not in cleaned.columns:
        raise InputError(f"aggregation layer has no field {field!r}")
    names = (cleaned[field] if field else cleaned.index.to_series()).astype(str).to_numpy(dtype=object)
    shapes = zip(cleaned.geometry.values, np.arange(len(cleaned)), strict=True)
    ids = rasterio.features.rasterize(shapes, out_shape=shape, transform=transform, fill=-1, dtype="int32")
    return ids.astype(np.int64), names


def _table(
    people: np.ndarray,
    levels: np.ndarray,
    area_id: np.ndarray,
    names: np.ndarray,
    classification: HazardClassification,
    with_areas: bool,
) -> pd.DataFrame:
    n_levels = len(classification.classes) + 1
    key = area_id * n_levels + (levels.astype(np.int64) + 1)
    sums = np.bincount(key, weights=people, minlength=len(names) * n_levels).reshape(len(names), n_levels)
    level = np.tile(np.arange(-1, n_levels - 1), len(names))
    class_names = np.array((*classification.names, None), dtype=object)
    affected = np.append(classification.affected_flags, False)
    frame = pd.DataFrame(
        {
            "hazard_level": level.astype(np.int16),
            "hazard_class": class_names[level],
            "exposed": level >= 0,
            "affected": affected[level],
            "population": sums.ravel(),
            "exposure_type": "population",
        }
    )
    if with_areas:
        frame.insert(0, "aggregation", np.repeat(names, n_levels))
    return frame
