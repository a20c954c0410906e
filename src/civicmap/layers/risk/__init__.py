"""Risk layers: hazard classes, exposure, impact summaries and minimum needs (pure functions)."""

from civicmap.layers.risk.exposure import (
    EXPOSURE_TYPES,
    assign_aggregation,
    exposed_features,
    exposed_to_raster,
    exposure_types,
    population_by_class,
)
from civicmap.layers.risk.hazard import (
    FLOOD_PETABENCANA,
    FLOOD_WET_DRY,
    GENERIC,
    TSUNAMI,
    ClassifiedZones,
    HazardClass,
    HazardClassification,
    HazardGrid,
    classify_hazard_polygons,
    classify_hazard_raster,
    hazard_grid_polygons,
)
from civicmap.layers.risk.impact import ImpactSummary, PopulationImpact, combine_hazards, impact_summary
from civicmap.layers.risk.needs import Need, NeedsProfile, minimum_needs, read_needs_profile

__all__ = [
    "EXPOSURE_TYPES",
    "FLOOD_PETABENCANA",
    "FLOOD_WET_DRY",
    "GENERIC",
    "TSUNAMI",
    "ClassifiedZones",
    "HazardClass",
    "HazardClassification",
    "HazardGrid",
    "ImpactSummary",
    "Need",
    "NeedsProfile",
    "PopulationImpact",
    "assign_aggregation",
    "classify_hazard_polygons",
    "classify_hazard_raster",
    "combine_hazards",
    "exposed_features",
    "exposed_to_raster",
    "exposure_types",
    "hazard_grid_polygons",
    "impact_summary",
    "minimum_needs",
    "population_by_class",
    "read_needs_profile",
]
