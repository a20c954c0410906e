"""Risk layers: hazard x exposure x vulnerability, impact summaries, evacuation (pure functions).

* :mod:`~civicmap.layers.risk.hazard` — declared hazard classifications, classified zones and grids;
* :mod:`~civicmap.layers.risk.flood_dem` — flood depth derived from a DEM (height above drainage);
* :mod:`~civicmap.layers.risk.exposure` — which class each building, road, place or person is in;
* :mod:`~civicmap.layers.risk.vulnerability` — survey answers -> per-building vulnerability, risk class;
* :mod:`~civicmap.layers.risk.impact` and :mod:`~civicmap.layers.risk.needs` — InaSAFE-style summaries;
* :mod:`~civicmap.layers.risk.evacuation` — walking to shelters and health care with flooded streets cut;
* :mod:`~civicmap.layers.risk.report` — a self-contained HTML impact report.
"""

from civicmap.layers.risk.evacuation import (
    AccessLoss,
    HazardCut,
    access_loss,
    evacuation_routes,
    flooded_edges,
    nearest_shelter,
    service_areas,
    unserved,
)
from civicmap.layers.risk.exposure import (
    EXPOSURE_TYPES,
    assign_aggregation,
    exposed_features,
    exposed_to_raster,
    exposure_types,
    population_by_class,
)
from civicmap.layers.risk.flood_dem import (
    DemGrid,
    FloodDepthGrid,
    flood_depth_from_dem,
    height_above_drainage,
    read_dem,
    write_flood_depth,
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
from civicmap.layers.risk.report import impact_report_html
from civicmap.layers.risk.vulnerability import (
    DEFAULT_RISK_MATRIX,
    DEFAULT_VULNERABILITY,
    RiskMatrix,
    SurveyJoin,
    VulnerabilityTable,
    building_vulnerability,
    join_surveys,
    read_vulnerability_table,
    risk_class,
)

__all__ = [
    "DEFAULT_RISK_MATRIX",
    "DEFAULT_VULNERABILITY",
    "EXPOSURE_TYPES",
    "FLOOD_PETABENCANA",
    "FLOOD_WET_DRY",
    "GENERIC",
    "TSUNAMI",
    "AccessLoss",
    "ClassifiedZones",
    "DemGrid",
    "FloodDepthGrid",
    "HazardClass",
    "HazardClassification",
    "HazardCut",
    "HazardGrid",
    "ImpactSummary",
    "Need",
    "NeedsProfile",
    "PopulationImpact",
    "RiskMatrix",
    "SurveyJoin",
    "VulnerabilityTable",
    "access_loss",
    "assign_aggregation",
    "building_vulnerability",
    "classify_hazard_polygons",
    "classify_hazard_raster",
    "combine_hazards",
    "evacuation_routes",
    "exposed_features",
    "exposed_to_raster",
    "exposure_types",
    "flood_depth_from_dem",
    "flooded_edges",
    "hazard_grid_polygons",
    "height_above_drainage",
    "impact_report_html",
    "impact_summary",
    "join_surveys",
    "minimum_needs",
    "nearest_shelter",
    "population_by_class",
    "read_dem",
    "read_needs_profile",
    "read_vulnerability_table",
    "risk_class",
    "service_areas",
    "unserved",
    "write_flood_depth",
]
