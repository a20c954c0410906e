"""The flood risk layers of a workspace: stored sources in, risk layers and a summary out.

Orchestration only: reads layers from the store, calls :mod:`civicmap.layers.risk`, writes
the results back. Everything is in the workspace's metric CRS. Layers written:

* ``flood_depth`` (raster, m; when derived from the DEM) and ``hazard_zones`` (polygons of
  each hazard class);
* ``risk_buildings`` (every building: hazard class, vulnerability, risk class, occupants,
  walk to the nearest shelter, health access before/during), ``risk_roads`` (road pieces per
  class, metres), ``risk_facilities`` (amenities per class);
* ``evacuation_routes`` (affected buildings to their shelter), ``health_service_areas``
  (before and during);
* table ``risk_summary``: one JSON document (impact summaries per exposure, evacuation,
  health access, the settings used).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from pyproj import CRS

from civicmap.config import ProjectConfig, RiskConfig
from civicmap.crs import WGS84
from civicmap.errors import ConfigError
from civicmap.impact import PRESETS
from civicmap.layers.risk import (
    EXPOSURE_TYPES,
    HazardClassification,
    access_loss,
    building_vulnerability,
    classify_hazard_raster,
    evacuation_routes,
    exposed_to_raster,
    flood_depth_from_dem,
    hazard_grid_polygons,
    impact_summary,
    join_surveys,
    nearest_shelter,
    risk_class,
    service_areas,
    unserved,
    write_flood_depth,
)
from civicmap.sources.raster import write_cog
from civicmap.store import LayerInfo, Store
from civicmap.types import Provenance

__all__ = ["build_risk"]

log = logging.getLogger(__name__)


def build_risk(
    store: Store, config: ProjectConfig, crs: CRS, *, approved: gpd.GeoDataFrame | None = None
) -> list[tuple[LayerInfo, str]]:
    """Build every risk layer from the stored OSM, raster and survey layers; returns (layer, note) pairs.

    ``approved``: survey submissions approved by moderators since the files were read (any
    CRS, indexed by instanceID); they join the survey file's rows, an approved version
    replacing a file row with the same instanceID.
    """
    risk = config.risk
    assert risk is not None
    classification, min_rank = _classification(risk)
    written: list[tuple[LayerInfo, str]] = []
    hazard_path, hazard_note = _hazard_raster(store, risk, written)
    provenance = Provenance(source=f"civicmap risk: {hazard_note}", details={"classification": classification.name})
    forms = [store.layer_info(f"survey_{risk.survey}").meta.get("form_id")] if risk.survey else []
    meta = {"source_forms": [f for f in forms if f]}  # approvals of these forms change the layers below

    zones = hazard_grid_polygons(classify_hazard_raster(hazard_path, classification=classification)).to_crs(crs)
    written.append((store.write_layer("hazard_zones", zones, provenance=provenance), "polygons per hazard class"))

    buildings = _buildings(store, risk, hazard_path, classification, approved)
    amenities = store.read_layer("amenities")
    edges = store.read_layer("streets_walk_edges")
    evac, routes, loss, areas = _walking(buildings, amenities, edges, zones, risk, min_rank)
    columns = ["shelter_id", "walk_distance_m", "walk_time_s", "reachable"]
    buildings = buildings.join(evac[columns].add_prefix("shelter_")).join(
        loss.buildings[["walk_time_before_s", "walk_time_during_s", "loses_access"]].add_prefix("health_")
    )
    written.append((store.write_layer("risk_buildings", buildings, provenance=provenance, meta=meta), _note(buildings)))
    written.append((store.write_layer("evacuation_routes", routes, provenance=provenance, meta=meta), "affected"))
    written.append((store.write_layer("health_service_areas", areas, provenance=provenance), "before and during"))

    roads = exposed_to_raster(
        store.read_layer("roads"), hazard_path, classification=classification, exposure_type_field="highway"
    )
    facilities = exposed_to_raster(amenities, hazard_path, classification=classification, exposure_type_field="use")
    written.append((store.write_layer("risk_roads", _plain(roads), provenance=provenance), "road pieces per class"))
    written.append((store.write_layer("risk_facilities", _plain(facilities), provenance=provenance), ""))

    document = _summary(buildings, roads, facilities, classification, risk)
    document["evacuation"] = unserved(evac, max_time_s=risk.shelter_walk_min * 60, population_field="occupants")
    document["health_access"] = loss.summary
    table = pd.DataFrame({"document": [json.dumps(document, default=str)]})
    written.append((store.write_table("risk_summary", table, provenance=provenance), "JSON document"))
    return written


def _classification(risk: RiskConfig) -> tuple[HazardClassification, int]:
    if risk.classification not in PRESETS:
        raise ConfigError(f"risk.classification: {risk.classification!r} is not one of {sorted(PRESETS)}")
    classification = PRESETS[risk.classification]
    if risk.impassable_from not in classification.names:
        raise ConfigError(
            f"risk.impassable_from: {risk.impassable_from!r} is not a class of {classification.name!r} "
            f"({', '.join(classification.names)})"
        )
    return classification, classification.index(risk.impassable_from)


def _hazard_raster(store: Store, risk: RiskConfig, written: list[tuple[LayerInfo, str]]) -> tuple[Path, str]:
    """The flood depth COG: a stored hazard raster, or one derived from the DEM and the waterways."""
    if risk.hazard is not None:
        path = store.layer_info(risk.hazard).path
        assert path is not None
        return path, f"hazard raster {risk.hazard!r}"
    assert risk.dem is not None and risk.stage_m is not None
    dem = store.layer_info(risk.dem).path
    waterways = store.read_layer("waterways")
    lines = waterways[waterways["waterway"].isin(risk.waterways) & (waterways["geometry_kind"] == "line")]
    flood = flood_depth_from_dem(dem, stage_m=risk.stage_m, waterways=lines)  # type: ignore[arg-type]
    target = store.raster_path("flood_depth")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        raw = write_flood_depth(flood, Path(tmp) / "depth.tif")
        write_cog(raw, target, blocksize=256, resampling="bilinear")
    note = f"flood depth from DEM {risk.dem!r} at {risk.stage_m:g} m above the river bed ({len(lines)} waterways)"
    meta = {"raster_kind": "hazard", "unit": "m", "stage_m": risk.stage_m, "method": "HAND (pyflwdir)"}
    info = store.register_raster("flood_depth", provenance=Provenance(source=note), meta=meta)
    written.append((info, "derived from the DEM"))
    return target, note


def _buildings(
    store: Store,
    risk: RiskConfig,
    hazard: Path,
    classification: HazardClassification,
    approved: gpd.GeoDataFrame | None,
) -> gpd.GeoDataFrame:
    """Buildings with hazard class, survey answers, vulnerability, occupants and risk class."""
    buildings = exposed_to_raster(
        store.read_layer("buildings"),
        hazard,
        classification=classification,
        exposure_type_field="building",
        type_mapping=EXPOSURE_TYPES,
    )
    if risk.survey is not None:
        surveys = store.read_layer(f"survey_{risk.survey}").to_crs(WGS84)
        if approved is not None and len(approved):
            fresh = approved.to_crs(WGS84)
            surveys = pd.concat([surveys[~surveys.index.isin(fresh.index)], fresh[fresh.geometry.notna()]])
        joined = join_surveys(buildings, surveys)
        log.info("survey join: %s", dict(joined.counts))
        buildings = joined.buildings
    scored = building_vulnerability(buildings, m2_per_person="local")
    scored["risk_class"] = risk_class(scored["hazard_level"], scored["vulnerability"], classification=classification)
    return _plain(scored)


def _walking(
    buildings: gpd.GeoDataFrame,
    amenities: gpd.GeoDataFrame,
    edges: gpd.GeoDataFrame,
    zones: gpd.GeoDataFrame,
    risk: RiskConfig,
    min_rank: int,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, Any, gpd.GeoDataFrame]:
    """Evacuation to shelters and health access, with streets in impassable zones cut."""
    shelters = amenities[amenities["use"] == "shelter"]
    health = amenities[amenities["use"] == "health"]
    evac = nearest_shelter(
        edges, buildings, shelters, hazard=zones, min_rank=min_rank, with_routes=buildings["affected"].to_numpy()
    )
    routes = evacuation_routes(evac)
    limit_s = risk.health_walk_min * 60
    loss = access_loss(
        buildings, health, edges, zones, max_time_s=limit_s, population_field="occupants", min_rank=min_rank
    )
    before = service_areas(edges, health, max_time_s=limit_s).assign(scenario="before")
    during = service_areas(edges, health, max_time_s=limit_s, hazard=zones, min_rank=min_rank).assign(scenario="during")
    areas = gpd.GeoDataFrame(pd.concat([before, during]), crs=before.crs)
    return evac, routes, loss, _plain(areas)


def _summary(
    buildings: gpd.GeoDataFrame,
    roads: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    classification: HazardClassification,
    risk: RiskConfig,
) -> dict[str, Any]:
    return {
        "settings": {
            "classification": classification.to_dict(),
            "impassable_from": risk.impassable_from,
            "stage_m": risk.stage_m,
            "shelter_walk_min": risk.shelter_walk_min,
            "health_walk_min": risk.health_walk_min,
        },
        "buildings": impact_summary(buildings, classification=classification, population_field="occupants").to_dict(),
        "roads": impact_summary(
            roads, classification=classification, size_field="length_m", needs_profile=None
        ).to_dict(),
        "facilities": impact_summary(facilities, classification=classification, needs_profile=None).to_dict(),
        "risk_classes": buildings["risk_class"].value_counts().to_dict(),
    }


def _plain(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Drop extra geometry columns (a GeoPackage layer holds one) and analysis notes in ``attrs``."""
    extra = [c for c in gdf.columns if c != gdf.geometry.name and isinstance(gdf[c].dtype, gpd.array.GeometryDtype)]
    out = gdf.drop(columns=extra)
    out.attrs = {}
    return out


def _note(buildings: gpd.GeoDataFrame) -> str:
    affected = int(buildings["affected"].sum())
    surveyed = int(buildings["surveyed"].sum()) if "surveyed" in buildings else 0
    return f"{affected} affected, {surveyed} surveyed"
