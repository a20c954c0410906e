"""A whole impact analysis from files (or frames): hazard x exposure [x aggregation] -> layers, summary, report.

This is what ``civicmap impact`` runs; a notebook can call :func:`run_impact` with paths or
GeoDataFrames and get the impacted frame and the summary back. The analysis itself is the
pure functions of :mod:`civicmap.layers.risk`; this module only reads inputs, picks the
classification and writes outputs.

Outputs (:func:`write_impact`): ``impact.gpkg`` (layer ``impact``, and ``hazard_zones`` for
polygon hazards, both EPSG:4326), ``summary.json`` (the :class:`ImpactSummary` document) and
``report.html`` (self-contained).
"""

from __future__ import annotations

import json
import logging
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import geopandas as gpd
import pyogrio

from civicmap.crs import to_wgs84
from civicmap.errors import InputError, NotFoundError
from civicmap.layers.risk import (
    FLOOD_PETABENCANA,
    FLOOD_WET_DRY,
    GENERIC,
    TSUNAMI,
    ClassifiedZones,
    HazardClassification,
    ImpactSummary,
    assign_aggregation,
    classify_hazard_polygons,
    exposed_features,
    exposed_to_raster,
    impact_summary,
)
from civicmap.layers.risk.report import impact_report_html
from civicmap.sources.raster import validate_raster
from civicmap.sources.vector import read_vector

__all__ = ["PRESETS", "ImpactAnalysis", "classification_for", "read_value_map", "run_impact", "write_impact"]

log = logging.getLogger(__name__)

#: Shipped classifications by name (see :mod:`civicmap.layers.risk.hazard`).
PRESETS: Mapping[str, HazardClassification] = {
    "flood_petabencana": FLOOD_PETABENCANA,
    "flood_wet_dry": FLOOD_WET_DRY,
    "tsunami": TSUNAMI,
    "generic": GENERIC,
}
_RASTER_SUFFIXES = {".tif", ".tiff", ".asc", ".img", ".vrt", ".nc"}


@dataclass(frozen=True)
class ImpactAnalysis:
    """Result of :func:`run_impact`: impacted features (metric CRS), summary, classification, hazard zones."""

    impacted: gpd.GeoDataFrame
    summary: ImpactSummary
    classification: HazardClassification
    hazard_zones: gpd.GeoDataFrame | None


def classification_for(
    *,
    preset: str | None = None,
    thresholds: Sequence[float] | None = None,
    class_names: Sequence[str] | None = None,
    affected: Sequence[str] | None = None,
    unit: str = "m",
    values: Sequence[str] | None = None,
) -> HazardClassification:
    """Pick the classification: a preset by name, one built from ``thresholds``, or guessed from class ``values``.

    ``thresholds`` are the inner boundaries (ascending, in ``unit``): ``[0.5, 1.5]`` gives
    three classes [min, 0.5], (0.5, 1.5], (1.5, inf) from 0 upwards; ``class_names`` name them
    (default ``class_1`` ...), ``affected`` lists the affected ones (default: all but the
    first). ``values`` (hazard polygon classes, after any value map) choose the preset with
    the fewest classes whose class names cover them all.
    """
    if preset is not None and thresholds is not None:
        raise InputError("give either a classification preset or thresholds, not both")
    if thresholds is not None:
        return _from_thresholds(list(thresholds), class_names, affected, unit)
    if preset is not None:
        if preset not in PRESETS:
            raise InputError(f"classification {preset!r} is not one of {sorted(PRESETS)}")
        return PRESETS[preset]
    if values is not None:
        wanted = {str(v).strip().lower() for v in values}
        fits = [c for c in PRESETS.values() if wanted <= {n.lower() for n in c.names}]
        if fits:
            chosen = min(fits, key=lambda c: len(c.classes))  # the tightest fit: high/low is generic, not flood
            log.info("hazard classes %s: using the %r classification", sorted(wanted), chosen.name)
            return chosen
        raise InputError(
            f"hazard class values {sorted(wanted)} match no preset classification "
            f"({', '.join(f'{k}: {list(v.names)}' for k, v in PRESETS.items())}); give a value map"
        )
    return FLOOD_PETABENCANA


def _from_thresholds(
    inner: list[float], names: Sequence[str] | None, affected: Sequence[str] | None, unit: str
) -> HazardClassification:
    if not inner or any(b <= a for a, b in pairwise(inner)):
        raise InputError(f"thresholds {inner} must be one or more numbers in ascending order")
    n = len(inner) + 1
    names = list(names) if names else [f"class_{i + 1}" for i in range(n)]
    if len(names) != n:
        raise InputError(f"{len(inner)} thresholds make {n} classes, but {len(names)} class names were given")
    chosen = set(affected) if affected is not None else set(names[1:])
    unknown = chosen - set(names)
    if unknown:
        raise InputError(f"affected classes {sorted(unknown)} are not among the class names {names}")
    low = min(0.0, inner[0])
    return HazardClassification.from_thresholds(
        "custom", [low, *inner, float("inf")], names, unit=unit, affected=[n in chosen for n in names]
    )


def read_value_map(path: str | Path) -> dict[str, str]:
    """A value map file: JSON or TOML object ``{raw value: class name}``, or CSV lines ``raw,class``."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"no value map file at {p}")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() == ".json":
            data: Any = json.loads(text)
        elif p.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        else:
            data = dict(line.split(",", 1) for line in text.splitlines() if line.strip() and "," in line)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise InputError(f"value map {p} cannot be parsed: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise InputError(f'value map {p} must map raw values to class names, e.g. {{"YES": "wet"}}')
    return {str(k).strip(): str(v).strip() for k, v in data.items()}


def _classified_polygons(
    hazard: str | Path | gpd.GeoDataFrame,
    hazard_field: str | None,
    value_map: Mapping[str, str] | None,
    classification: HazardClassification | None,
) -> tuple[ClassifiedZones, HazardClassification]:
    """Hazard polygons classed by ``hazard_field`` (any CRS), and the classification used (given or guessed)."""
    hazard_gdf = hazard if isinstance(hazard, gpd.GeoDataFrame) else read_vector(hazard)
    if hazard_field is None:
        raise InputError("a polygon hazard needs --hazard-field: the field holding each zone's class")
    if hazard_field not in hazard_gdf.columns:
        raise InputError(
            f"hazard has no field {hazard_field!r}; fields are {list(hazard_gdf.columns.drop('geometry'))}"
        )
    raw = hazard_gdf[hazard_field].dropna().astype(str).str.strip().str.lower()
    values = raw.map({k.lower(): v for k, v in value_map.items()}) if value_map else raw
    chosen = classification or classification_for(values=sorted(set(values.dropna())))
    classified = classify_hazard_polygons(hazard_gdf, field=hazard_field, classification=chosen, value_map=value_map)
    if classified.unmapped:
        log.warning("hazard values with no class, left unclassed: %s", dict(classified.unmapped))
    return classified, chosen


def run_impact(
    hazard: str | Path | gpd.GeoDataFrame,
    exposure: str | Path | gpd.GeoDataFrame,
    *,
    classification: HazardClassification | None = None,
    hazard_field: str | None = None,
    value_map: Mapping[str, str] | None = None,
    exposure_type_field: str | None = None,
    aggregation: str | Path | gpd.GeoDataFrame | None = None,
    options: Mapping[str, Any] | None = None,
) -> ImpactAnalysis:
    """Run hazard x exposure (x aggregation) in the exposure's local metric CRS.

    ``hazard`` is a raster (continuous values, classified with ``classification``, default
    PetaBencana flood depth) or polygons with a class field (``hazard_field``, values mapped
    by ``value_map`` or already class names; the classification is guessed from them when not
    given). Inputs may be in any CRS. ``options``: ``stat`` (raster zonal statistic, default
    ``"max"``), ``aggregation_field``, ``population_field``, ``needs_profile`` (default BNPB),
    ``type_mapping``.
    """
    opts = dict(options or {})
    unknown = set(opts) - {"stat", "aggregation_field", "population_field", "needs_profile", "type_mapping"}
    if unknown:
        raise InputError(f"unknown impact options {sorted(unknown)}")
    exposure_gdf = exposure if isinstance(exposure, gpd.GeoDataFrame) else read_vector(exposure)
    type_mapping = opts.get("type_mapping")
    zones = None
    if _is_raster(hazard):
        assert isinstance(hazard, str | Path)
        validate_raster(hazard)
        chosen = classification or FLOOD_PETABENCANA
        impacted = exposed_to_raster(
            exposure_gdf,
            hazard,
            classification=chosen,
            stat=opts.get("stat", "max"),
            exposure_type_field=exposure_type_field,
            type_mapping=type_mapping,
        )
    else:
        classified, chosen = _classified_polygons(hazard, hazard_field, value_map, classification)
        zones = classified.zones
        impacted = exposed_features(
            exposure_gdf,
            classified,
            classification=chosen,
            exposure_type_field=exposure_type_field,
            type_mapping=type_mapping,
        )
    if aggregation is not None:
        areas = aggregation if isinstance(aggregation, gpd.GeoDataFrame) else read_vector(aggregation)
        impacted = assign_aggregation(impacted, areas, name_field=opts.get("aggregation_field"))
    size_field = "length_m" if "length_m" in impacted.columns else None
    summary = impact_summary(
        impacted,
        classification=chosen,
        size_field=size_field,
        population_field=opts.get("population_field"),
        needs_profile=opts.get("needs_profile", "BNPB"),
        provenance=_provenance(hazard, exposure, aggregation, hazard_field, value_map),
    )
    return ImpactAnalysis(impacted=impacted, summary=summary, classification=chosen, hazard_zones=zones)


def write_impact(analysis: ImpactAnalysis, out_dir: str | Path, *, title: str = "Impact analysis") -> dict[str, Path]:
    """Write ``impact.gpkg``, ``summary.json`` and ``report.html`` into ``out_dir`` (created); returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"impact": out / "impact.gpkg", "summary": out / "summary.json", "report": out / "report.html"}
    paths["impact"].unlink(missing_ok=True)
    impacted = to_wgs84(analysis.impacted, name="impact")
    impacted.attrs = {}
    pyogrio.write_dataframe(impacted.reset_index(), paths["impact"], layer="impact", driver="GPKG")
    if analysis.hazard_zones is not None:
        zones = to_wgs84(analysis.hazard_zones, name="hazard zones")
        zones.attrs = {}
        pyogrio.write_dataframe(zones.reset_index(drop=True), paths["impact"], layer="hazard_zones", driver="GPKG")
    document = analysis.summary.to_dict()
    paths["summary"].write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")
    html = impact_report_html(
        analysis.summary,
        analysis.impacted,
        title=title,
        classification=analysis.classification,
        notes=tuple(analysis.impacted.attrs.get("notes", ())),
        provenance=document["provenance"],
    )
    paths["report"].write_text(html, encoding="utf-8")
    return paths


def _is_raster(hazard: object) -> bool:
    return isinstance(hazard, str | Path) and Path(hazard).suffix.lower() in _RASTER_SUFFIXES


def _provenance(
    hazard: object, exposure: object, aggregation: object, field: str | None, value_map: Mapping[str, str] | None
) -> dict[str, Any]:
    def name(x: object) -> str | None:
        return None if x is None else (str(x) if isinstance(x, str | Path) else "GeoDataFrame (in memory)")

    return {
        "hazard": name(hazard),
        "hazard_field": field,
        "value_map": dict(value_map) if value_map else None,
        "exposure": name(exposure),
        "aggregation": name(aggregation),
    }
