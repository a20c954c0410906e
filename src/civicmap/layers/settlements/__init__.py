"""Informal-settlement indicators: building morphology, street and service access, grid cells, index.

Pipeline: :func:`building_morphology` -> join :func:`street_access` and :func:`service_access`
-> :func:`settlement_grid` -> :func:`informality_index` -> :func:`public_cells`. Per-building
outputs are private; only cells with at least ``k`` buildings are public.
"""

from civicmap.layers.settlements.access import service_access, service_gaps, street_access, street_intersections
from civicmap.layers.settlements.change import building_changes
from civicmap.layers.settlements.grid import settlement_grid
from civicmap.layers.settlements.index import informality_index, public_cells
from civicmap.layers.settlements.morphology import building_morphology
from civicmap.layers.settlements.pipeline import SettlementAnalysis, settlement_analysis

__all__ = [
    "SettlementAnalysis",
    "building_changes",
    "building_morphology",
    "informality_index",
    "public_cells",
    "service_access",
    "service_gaps",
    "settlement_analysis",
    "settlement_grid",
    "street_access",
    "street_intersections",
]
