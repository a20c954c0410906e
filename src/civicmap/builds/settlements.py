"""The informal-settlement layers of a workspace: per-building indicators, grid cells, index, service gaps.

Layers written (workspace CRS): ``settlement_cells`` (public: H3 cells with at least ``k``
buildings, indicators and the informality index), ``settlement_cells_private`` and
``settlement_buildings`` (not public: small cells and per-building values can single out
households), and table ``service_gaps``. When the risk layers exist, each cell also gets the
share of its buildings in an affected hazard zone.
"""

from __future__ import annotations

import logging

import geopandas as gpd
import pandas as pd
from pyproj import CRS

from civicmap.builds.streets import stored_street_graph
from civicmap.config import ProjectConfig
from civicmap.errors import NotFoundError
from civicmap.impact import PRESETS
from civicmap.layers.settlements import settlement_analysis
from civicmap.store import LayerInfo, Store
from civicmap.types import Provenance

__all__ = ["build_settlements"]

log = logging.getLogger(__name__)


def build_settlements(store: Store, config: ProjectConfig, crs: CRS) -> list[tuple[LayerInfo, str]]:
    """Run the settlement analysis on the stored OSM layers (and risk zones, if built)."""
    settings = config.settlements
    assert settings is not None
    analysis = settlement_analysis(
        store.read_layer("buildings"),
        store.read_layer("roads"),
        stored_street_graph(store, "walk"),
        store.read_layer("amenities"),
        transit_stops=store.read_layer("transit_stops"),
        hazard=_affected_zones(store, config),
        resolution=settings.resolution,
        k=settings.k,
    )
    provenance = Provenance(
        source="civicmap settlements", details={"h3_resolution": settings.resolution, "k": settings.k}
    )
    private = {"public": False}
    counts = analysis.cells["informality_class"].value_counts().to_dict()
    return [
        (store.write_layer("settlement_cells", analysis.public.to_crs(crs), provenance=provenance),
         f"{len(analysis.cells) - len(analysis.public)} cells under k={settings.k} suppressed"),
        (store.write_layer("settlement_cells_private", analysis.cells.to_crs(crs), provenance=provenance, meta=private),
         ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))),
        (store.write_layer("settlement_buildings", _plain(analysis.buildings).to_crs(crs), provenance=provenance,
                           meta=private), "per building, private"),
        (store.write_table("service_gaps", analysis.gaps, provenance=provenance), "one row per service"),
    ]  # fmt: skip


def _affected_zones(store: Store, config: ProjectConfig) -> gpd.GeoDataFrame | None:
    """The risk layer's hazard zones with an ``affected`` flag, or None before any risk build."""
    if config.risk is None:
        return None
    try:
        zones = store.read_layer("hazard_zones")
    except NotFoundError:
        return None
    classification = PRESETS[config.risk.classification]
    flags = pd.Series(classification.affected_flags, index=range(len(classification.classes)))
    return zones.assign(affected=zones["hazard_level"].map(flags).fillna(False).astype(bool))


def _plain(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    out = gdf.copy()
    out.attrs = {}
    return out
