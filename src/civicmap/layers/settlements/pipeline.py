"""The whole settlement analysis in one call: buildings and streets in, public grid cells out.

:func:`settlement_analysis` chains :func:`~.morphology.building_morphology`,
:func:`~.access.street_access`, :func:`~.access.service_access`,
:func:`~.grid.settlement_grid`, :func:`~.index.informality_index` and
:func:`~.index.public_cells`, as the workspace build and ``civicmap settlements`` run it.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import networkx as nx
import pandas as pd

from civicmap.layers.settlements.access import service_access, service_gaps, street_access
from civicmap.layers.settlements.grid import settlement_grid
from civicmap.layers.settlements.index import informality_index, public_cells
from civicmap.layers.settlements.morphology import building_morphology

__all__ = ["SettlementAnalysis", "settlement_analysis"]


@dataclass(frozen=True)
class SettlementAnalysis:
    """Results of :func:`settlement_analysis`, all in the buildings' metric CRS.

    ``buildings`` (per building: morphology, street and service access) and ``cells`` (every
    cell with its index) are private; ``public`` holds only cells with at least ``k``
    buildings; ``gaps`` is the service-gap table (one row per service).
    """

    buildings: gpd.GeoDataFrame
    cells: gpd.GeoDataFrame
    public: gpd.GeoDataFrame
    gaps: pd.DataFrame


def settlement_analysis(
    buildings: gpd.GeoDataFrame,
    streets: gpd.GeoDataFrame,
    walk_graph: nx.MultiDiGraph,
    facilities: gpd.GeoDataFrame,
    *,
    transit_stops: gpd.GeoDataFrame | None = None,
    hazard: gpd.GeoDataFrame | None = None,
    resolution: int = 10,
    k: int = 5,
) -> SettlementAnalysis:
    """Morphology, access, H3 grid (``resolution``), informality index and public cells (>= ``k`` buildings).

    Inputs in any CRS (computed in the buildings' local metric CRS): building footprints,
    street lines, the walking graph (osmnx), facilities with a ``use`` column (water,
    sanitation, health, education, shelter), optional transit stops and hazard polygons with
    an ``affected`` flag.
    """
    morphology = building_morphology(buildings)
    access = street_access(morphology, streets)
    services = service_access(morphology, walk_graph, facilities, transit_stops=transit_stops)
    per_building = morphology.join(access).join(services)
    cells = informality_index(
        settlement_grid(per_building, kind="h3", resolution=resolution, streets=streets, hazard=hazard)
    )
    return SettlementAnalysis(per_building, cells, public_cells(cells, k=k), service_gaps(services))
