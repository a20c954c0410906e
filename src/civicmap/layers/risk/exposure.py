"""Exposure: which buildings, places, roads and people lie in which hazard class.

Every function works in a metric CRS: the exposure's own CRS when it is projected in metres,
otherwise the local UTM zone of the exposure (:func:`civicmap.crs.local_metric_crs`). Inputs
in other CRSs are reprojected with :func:`civicmap.crs.to_crs` (and a log line says so); outputs
are in that metric CRS, lengths in metres.

Output columns added to the exposure ("impacted" frames, read by :mod:`.impact`):

- ``hazard_level``: class index (0 = least severe), -1 = not exposed;
- ``hazard_class``: class name, missing (``None``/NA) when not exposed;
- ``exposed``: inside some hazard zone / on a classed raster cell;
- ``affected``: exposed in a class whose ``affected`` flag is set;
- ``severity``: ``(hazard_level + 1) / number of classes``, 0 when not exposed;
- ``exposure_type``: from ``exposure_type_field`` (as-is, or through ``type_mapping``), else ``"all"``;
- lines only: ``length_m``, one row per piece; the input index is repeated for the pieces.

Rules (InaSAFE's): a polygon takes the most severe class among the zones it overlaps (touching
only along an edge does not count); a point takes the most severe class of the zones it lies
in or on (a point on a boundary shared by two zones takes the more severe one). A feature in a
zone of a not-affected class (dry, use_caution) is *exposed, not affected*; a feature outside
every zone (or on raster nodata / outside the raster) is *not exposed*. Lines are cut at zone
boundaries and each piece measured. Notes about dropped or repaired features are logged and kept
in ``frame.attrs["notes"]``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from pyproj import CRS

from civicmap.crs import metric_crs, require_crs, to_crs
from civicmap.errors import GeometryError, InputError
from civicmap.layers.risk._lines import cut_lines, flatten_zones
from civicmap.layers.risk._population import population_table
from civicmap.layers.risk._zonal import outer_window, zonal_levels
from civicmap.layers.risk.hazard import (
    NOT_CLASSED,
    ClassifiedZones,
    HazardClassification,
    HazardGrid,
    hazard_grid_polygons,
    open_hazard_raster,
    raster_levels,
)
from civicmap.sources._clean import clean_geometries

__all__ = [
    "EXPOSURE_TYPES",
    "assign_aggregation",
    "exposed_features",
    "exposed_to_raster",
    "exposure_types",
    "population_by_class",
]

log = logging.getLogger(__name__)

_STATS = ("max", "mean", "centroid")
_POLY, _LINE, _POINT = "polygon", "line", "point"
_FAMILY_OF = {0: _POINT, 4: _POINT, 1: _LINE, 5: _LINE, 3: _POLY, 6: _POLY}

#: Exposure type of common OSM tag values and of the InaSAFE Jakarta building ``TYPE`` values.
#: Keys are compared in lower case, trimmed. Pass your own mapping to override; unmapped -> "other".
EXPOSURE_TYPES: Mapping[str, str] = MappingProxyType(
    {
        **dict.fromkeys(["residential", "house", "apartments", "detached", "terrace", "hut", "dormitory"],
                        "residential"),
        **dict.fromkeys(["school", "kindergarten", "university", "college", "university/college"], "education"),
        **dict.fromkeys(["hospital", "clinic", "doctors", "clinic/doctor", "health_post", "pharmacy"], "health"),
        **dict.fromkeys(["place_of_worship", "place of worship", "place of worship - islam", "mosque", "church",
                         "temple", "place of worship - buddhist", "place of worship - christian"], "place_of_worship"),
        **dict.fromkeys(["government", "townhall", "public", "civic", "office"], "government"),
        **dict.fromkeys(["police", "police station", "fire_station", "fire station", "shelter"], "emergency_service"),
        **dict.fromkeys(["commercial", "retail", "supermarket", "shop", "marketplace", "market"], "commercial"),
        **dict.fromkeys(["industrial", "warehouse", "factory"], "industrial"),
        **dict.fromkeys(["sports facility", "sports_centre", "stadium", "park"], "recreation"),
        **dict.fromkeys(["train_station", "bus_station", "transportation", "airport"], "transport"),
    }
)  # fmt: skip


def exposure_types(values: pd.Series, mapping: Mapping[str, str] | None = None) -> pd.Series:
    """Exposure type per row: ``values`` as text (missing -> ``"unknown"``), or mapped through ``mapping``.

    With a mapping, keys match case-insensitively and unmapped values become ``"other"``.
    """
    text = values.astype("string").str.strip()
    if mapping is None:
        return text.fillna("unknown").astype(object).rename("exposure_type")
    lookup = {str(k).strip().lower(): v for k, v in mapping.items()}
    mapped = text.str.lower().map(lookup)
    return mapped.fillna("other").astype(object).rename("exposure_type")


def exposed_features(
    exposure: gpd.GeoDataFrame,
    hazard: gpd.GeoDataFrame | ClassifiedZones,
    *,
    classification: HazardClassification,
    exposure_type_field: str | None = None,
    type_mapping: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """Hazard class of each exposure feature from hazard *polygons* (see the module rules).

    ``hazard`` is a :class:`ClassifiedZones` or a frame with a ``hazard_class`` column of class
    names (rows with ``None`` are ignored). Polygons and points: one row per feature, index
    kept. Lines: cut at zone boundaries, one row per piece with ``length_m``. Uses an STRtree
    (``shapely.STRtree.query``), vectorised. Output CRS: the analysis metric CRS.
    """
    zones = hazard.zones if isinstance(hazard, ClassifiedZones) else hazard
    frame, family, notes = _prepare_exposure(exposure)
    zcrs, ecrs = require_crs(zones, name="hazard"), require_crs(exposure, name="exposure")
    if not zcrs.equals(ecrs):
        log.info("hazard (%s) and exposure (%s) differ in CRS: both reprojected to %s",
                 zcrs.to_string(), ecrs.to_string(), CRS(frame.crs).to_string())  # fmt: skip
    zgeoms, zlevels = _zone_arrays(zones, classification, frame.crs, notes)
    if family == _LINE:
        parts, plevels = flatten_zones(zgeoms, zlevels)
        frame, levels = _cut_by_zones(frame, parts, plevels)
    else:
        levels = _levels_in_zones(frame.geometry.values, zgeoms, zlevels, polygonal=family == _POLY)
    return _finish(frame, levels, classification, exposure_type_field, type_mapping, notes)


def exposed_to_raster(
    exposure: gpd.GeoDataFrame,
    raster_path: str | Path,
    *,
    classification: HazardClassification,
    stat: str = "max",
    band: int = 1,
    code_map: Mapping[int, str] | None = None,
    exposure_type_field: str | None = None,
    type_mapping: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """Hazard class of each exposure feature from a hazard *raster* (continuous, or classified with ``code_map``).

    Polygons, ``stat="max"`` (default): the most severe class among the cells the polygon
    overlaps with positive area (exactextract's "coverage > 0"; a cell merely touched at a
    corner or along an edge does not count); a polygon inside one cell gets that cell.
    ``"mean"``: class of the unweighted mean of those cells' values (continuous rasters only).
    ``"centroid"``: the cell under the representative point. Points: their cell. Nodata,
    unclassed values and places outside the raster: not exposed. Lines: the raster window under
    them is turned into class polygons (``rasterio.features.shapes``) and the lines are cut as in
    :func:`exposed_features`. Exposure is reprojected to the raster CRS for the lookup only;
    vectorised, reads only the window(s) under the exposure.
    """
    if stat not in _STATS:
        raise InputError(f"stat {stat!r} is not one of {list(_STATS)}")
    if stat == "mean" and code_map is not None:
        raise InputError(
            "stat='mean' needs a continuous raster; a classified raster (code_map) takes 'max' or 'centroid'"
        )
    frame, family, notes = _prepare_exposure(exposure)
    with open_hazard_raster(raster_path) as ds:
        raster_crs = CRS.from_wkt(ds.crs.to_wkt())
        in_raster = to_crs(frame, raster_crs, name="exposure")
        if family == _LINE:
            grid = _grid_under(ds, in_raster.total_bounds, band, classification, code_map)
            zones = to_crs(hazard_grid_polygons(grid), frame.crs, name="hazard raster classes")
            parts, plevels = flatten_zones(zones.geometry.values, zones["hazard_level"].to_numpy())
            frame, levels = _cut_by_zones(frame, parts, plevels)
        else:
            levels = zonal_levels(in_raster.geometry.values, ds, classification=classification, stat=stat,
                                  code_map=code_map, band=band)  # fmt: skip
    return _finish(frame, levels, classification, exposure_type_field, type_mapping, notes)


def assign_aggregation(
    impacted: gpd.GeoDataFrame, areas: gpd.GeoDataFrame, *, name_field: str | None = None
) -> gpd.GeoDataFrame:
    """Keep only features inside the aggregation ``areas`` and name the area each falls in (``aggregation``).

    Polygons and points go to the area holding their representative point (the first area, in
    row order, if the point lies on a shared border); lines are cut at area borders and
    ``length_m`` is recomputed (index repeated for pieces). Features outside every area are
    dropped, as InaSAFE clips exposure to the aggregation areas; null, empty or unrepairable
    areas are dropped too. Both counts go to the log and ``attrs["notes"]``. Works in the
    impacted frame's CRS (``areas`` reprojected to it). Without ``name_field`` the area's index is used.
    """
    notes = list(impacted.attrs.get("notes", []))
    if name_field is not None and name_field not in areas.columns:
        raise InputError(f"aggregation layer has no field {name_field!r}; fields are {list(areas.columns)}")
    require_crs(impacted, name="exposure")
    cleaned, report = clean_geometries(to_crs(areas, impacted.crs, name="aggregation"), layer="aggregation",
                                       family="polygon")  # fmt: skip
    if report.problems:
        notes.append(str(report))
    names = (cleaned[name_field] if name_field else cleaned.index.to_series()).astype(str).to_numpy()
    ageoms = cleaned.geometry.values
    geoms = impacted.geometry.values
    if len(impacted) and _family_of(impacted) == _LINE:
        li, ai, pieces = cut_lines(np.asarray(geoms), np.asarray(ageoms), keep_outside=False)
        out = impacted.iloc[li].copy()
        out = out.set_geometry(gpd.GeoSeries(pieces, index=out.index, crs=impacted.crs))
        out["length_m"] = shapely.length(pieces)
        lost_m = float(shapely.length(geoms).sum() - out["length_m"].sum())
        dropped = f"{lost_m:.1f} m of lines outside the aggregation areas dropped"
    else:
        li, ai = _first_area(shapely.point_on_surface(geoms), ageoms)
        out = impacted.iloc[li].copy()
        dropped = f"{len(impacted) - len(out)} features outside the aggregation areas dropped"
    out["aggregation"] = names[ai]
    notes.append(dropped)
    log.info("%s", dropped)
    out.attrs["notes"] = notes
    return out


def population_by_class(
    population_raster: str | Path,
    hazard: gpd.GeoDataFrame | ClassifiedZones | str | Path,
    *,
    classification: HazardClassification,
    code_map: Mapping[int, str] | None = None,
    band: int = 1,
    aggregation: gpd.GeoDataFrame | None = None,
    aggregation_field: str | None = None,
) -> pd.DataFrame:
    """People per hazard class from a population *count* raster, on the population grid.

    Each population cell takes the hazard class at its centre: hazard polygons are burnt onto
    the population grid (cell-centre rule, most severe zone wins); a hazard raster on another
    grid is resampled to it by nearest neighbour on the *classes* (never on raw depths). Cells
    with nodata, NaN or negative counts are ignored. The analysis extent is the aggregation
    areas' bounds when given, else the hazard's bounds; people outside it are not counted.
    Returns one row per (aggregation area,) class, plus ``not_exposed``, with columns
    ``hazard_level``, ``hazard_class``, ``exposed``, ``affected``, ``population``,
    ``exposure_type`` (= "population") and ``aggregation`` when areas are given: ready for
    ``impact_summary(..., size_field="population", population_field="population")``.
    """
    return population_table(population_raster, hazard, classification=classification, code_map=code_map,
                            band=band, aggregation=aggregation, aggregation_field=aggregation_field)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# internals


def analysis_crs(gdf: gpd.GeoDataFrame) -> CRS:
    """The frame's CRS if projected in metres, else the UTM zone of its extent."""
    return metric_crs(gdf, name="exposure")


def _family_of(gdf: gpd.GeoDataFrame) -> str:
    ids = shapely.get_type_id(gdf.geometry.values)
    fams = {_FAMILY_OF.get(int(t), "other") for t in np.unique(ids[ids >= 0])}
    if "other" in fams:
        raise GeometryError("exposure has geometry collections; explode them or keep polygons, lines or points")
    if _LINE in fams and len(fams) > 1:
        raise InputError(f"exposure mixes lines with {sorted(fams - {_LINE})}; pass roads/lines as a separate layer")
    return _LINE if _LINE in fams else (_POLY if fams == {_POLY} else _POINT if fams == {_POINT} else "mixed")


def _prepare_exposure(exposure: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, str, list[str]]:
    """Exposure in the analysis CRS, geometries cleaned; its family; notes so far."""
    notes = list(exposure.attrs.get("notes", []))
    crs = analysis_crs(exposure) if len(exposure) else require_crs(exposure, name="exposure")
    frame = to_crs(exposure, crs, name="exposure")
    frame, report = clean_geometries(frame, layer="exposure")
    family = _family_of(frame) if len(frame) else _POINT
    if family in (_POLY, _LINE):
        frame, report = clean_geometries(frame, layer="exposure", family=family)
    if report.problems:
        notes.append(str(report))
    return frame, family, notes


def _zone_arrays(
    zones: gpd.GeoDataFrame, classification: HazardClassification, crs: CRS, notes: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Cleaned zone polygons (analysis CRS) and their class indices; unclassed rows left out."""
    if "hazard_class" not in zones.columns:
        raise InputError(
            "hazard polygons need a 'hazard_class' column of class names; "
            "make one with classify_hazard_polygons(gdf, field=..., classification=...)"
        )
    cleaned, report = clean_geometries(to_crs(zones, crs, name="hazard"), layer="hazard", family="polygon")
    if report.problems:
        notes.append(str(report))
    names = cleaned["hazard_class"]
    unknown = sorted({str(n) for n in names.dropna().unique()} - set(classification.names))
    if unknown:
        raise InputError(f"hazard_class values {unknown} are not classes of {classification.name!r}")
    classed = names.notna().to_numpy()
    if not classed.all():
        notes.append(f"{int((~classed).sum())} hazard polygons without a class ignored")
    positions = {n: i for i, n in enumerate(classification.names)}
    levels = names[classed].map(positions).to_numpy(dtype=np.int16)
    return np.asarray(cleaned.geometry.values[classed]), levels


def _levels_in_zones(geoms: np.ndarray, zgeoms: np.ndarray, zlevels: np.ndarray, *, polygonal: bool) -> np.ndarray:
    """Most severe zone level per geometry (-1 outside all); polygon edge-only contact does not count."""
    geoms = np.asarray(geoms)
    out = np.full(len(geoms), NOT_CLASSED, dtype=np.int16)
    if len(zgeoms) == 0 or len(geoms) == 0:
        return out
    ei, zi = shapely.STRtree(zgeoms).query(geoms, predicate="intersects")
    areal = np.isin(shapely.get_type_id(geoms[ei]), [3, 6])
    if areal.any():
        edge_only = np.zeros(len(ei), dtype=bool)
        edge_only[areal] = shapely.touches(geoms[ei[areal]], zgeoms[zi[areal]])
        ei, zi = ei[~edge_only], zi[~edge_only]
    np.maximum.at(out, ei, zlevels[zi])
    return out


def _cut_by_zones(
    frame: gpd.GeoDataFrame, parts: np.ndarray, levels: np.ndarray
) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    li, zi, pieces = cut_lines(np.asarray(frame.geometry.values), parts, keep_outside=True)
    order = np.lexsort((zi, li))
    li, zi, pieces = li[order], zi[order], pieces[order]
    out = frame.iloc[li].copy()
    out = out.set_geometry(gpd.GeoSeries(pieces, index=out.index, crs=frame.crs))
    out["length_m"] = shapely.length(pieces)
    return out, np.where(zi >= 0, levels[np.maximum(zi, 0)], NOT_CLASSED).astype(np.int16)


def _first_area(points: np.ndarray, areas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(feature index, area index) of the first area holding each point; points in no area left out."""
    pi, ai = shapely.STRtree(areas).query(points, predicate="intersects")
    order = np.lexsort((ai, pi))
    pi, ai = pi[order], ai[order]
    first = np.unique(pi, return_index=True)[1]
    return pi[first], ai[first]


def _grid_under(
    ds: rasterio.io.DatasetReader,
    bounds: np.ndarray,
    band: int,
    classification: HazardClassification,
    code_map: Mapping[int, str] | None,
) -> HazardGrid:
    """Classified raster window under ``bounds`` (raster CRS), one cell of margin."""
    win = outer_window(ds, bounds, margin=1)
    values = ds.read(band, window=win)
    levels = raster_levels(values, classification=classification, nodata=ds.nodata, code_map=code_map)
    return HazardGrid(levels, ds.window_transform(win), CRS.from_wkt(ds.crs.to_wkt()), classification)


def _finish(
    frame: gpd.GeoDataFrame,
    levels: np.ndarray,
    classification: HazardClassification,
    type_field: str | None,
    type_mapping: Mapping[str, str] | None,
    notes: list[str],
) -> gpd.GeoDataFrame:
    """Add the impact columns (see module docstring) and the notes."""
    out = frame.copy()
    names = np.array((*classification.names, None), dtype=object)
    affected = np.append(classification.affected_flags, False)
    out["hazard_level"] = levels.astype(np.int16)
    out["hazard_class"] = names[levels]  # -1 picks the trailing None
    out["exposed"] = levels >= 0
    out["affected"] = affected[levels]
    out["severity"] = classification.severity(levels)
    if type_field is not None:
        if type_field not in frame.columns:
            raise InputError(f"exposure has no field {type_field!r}; fields are {list(frame.columns.drop('geometry'))}")
        out["exposure_type"] = exposure_types(frame[type_field], type_mapping).to_numpy()
        if type_mapping is not None:
            other = int((out["exposure_type"] == "other").sum())
            if other:
                notes.append(f"{other} features with {type_field!r} values not in the type mapping counted as 'other'")
    elif "exposure_type" not in out.columns:
        out["exposure_type"] = "all"
    for note in notes:
        log.info("%s", note)
    out.attrs["notes"] = notes
    return out
