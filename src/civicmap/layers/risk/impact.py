"""Impact summaries: counts (or metres, or people) per hazard class, exposure type and area.

Reads the "impacted" frames made by :mod:`civicmap.layers.risk.exposure` (columns
``hazard_level``, ``exposed``, ``affected``, ``exposure_type``, optional ``aggregation``).
Every table row has the same keys: one per hazard class, then ``affected``, ``not_affected``
(exposed in a class that is not affected), ``not_exposed`` and ``total``. Sizes are feature
counts by default, or the sum of ``size_field`` (``"length_m"`` for roads: metres;
``"population"``: people). People and displacement come from ``population_field``:
``displaced = sum over classes of people_in_class x displacement_rate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from civicmap.errors import InputError
from civicmap.layers.risk.hazard import HazardClassification
from civicmap.layers.risk.needs import NeedsProfile, minimum_needs, read_needs_profile
from civicmap.types import Provenance

__all__ = ["COMBINE_RULES", "ImpactSummary", "PopulationImpact", "combine_hazards", "impact_summary"]

#: Rules of :func:`combine_hazards`.
COMBINE_RULES = ("max_severity", "any_affected")
_STATUS = ("affected", "not_affected", "not_exposed", "total")


@dataclass(frozen=True)
class PopulationImpact:
    """People per class and in total; ``displaced`` = sum of people_in_class x displacement_rate."""

    by_class: Mapping[str, float]
    affected: float
    not_affected: float
    not_exposed: float
    total: float
    displaced: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"by_class": dict(self.by_class), "affected": self.affected, "not_affected": self.not_affected,
                "not_exposed": self.not_exposed, "total": self.total, "displaced": self.displaced}  # fmt: skip


@dataclass(frozen=True)
class ImpactSummary:
    """The numbers of one analysis; ``to_dict()`` gives the JSON document (see module docstring)."""

    totals: Mapping[str, float]
    by_exposure_type: Mapping[str, Mapping[str, float]]
    by_aggregation: Mapping[str, Mapping[str, float]]
    population: PopulationImpact | None
    minimum_needs: Mapping[str, tuple[int, str, str]]
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict.

        Exactly the keys totals, by_exposure_type, by_aggregation, population, minimum_needs, provenance.
        """
        needs = {k: {"quantity": q, "unit": u, "frequency": f} for k, (q, u, f) in self.minimum_needs.items()}
        return {
            "totals": dict(self.totals),
            "by_exposure_type": {k: dict(v) for k, v in self.by_exposure_type.items()},
            "by_aggregation": {k: dict(v) for k, v in self.by_aggregation.items()},
            "population": self.population.to_dict() if self.population is not None else None,
            "minimum_needs": needs,
            "provenance": dict(self.provenance),
        }


def impact_summary(
    impacted: gpd.GeoDataFrame | pd.DataFrame,
    *,
    classification: HazardClassification | None,
    exposure_type_field: str = "exposure_type",
    aggregation_field: str | None = None,
    size_field: str | None = None,
    population_field: str | None = None,
    needs_profile: NeedsProfile | str | None = "BNPB",
    provenance: Provenance | Mapping[str, Any] | None = None,
) -> ImpactSummary:
    """Summarise an impacted frame (see module docstring for keys and units).

    ``classification=None`` (frames from :func:`combine_hazards`) gives only the status keys.
    ``aggregation_field`` defaults to ``"aggregation"`` when that column exists. Minimum needs
    are computed from the displaced people when ``population_field`` and ``needs_profile`` are
    given. ``provenance`` (from the caller) is copied into the result with the classification,
    unit, needs profile and the notes collected on the way (``impacted.attrs["notes"]``).
    """
    _require_columns(impacted, classification, exposure_type_field, size_field, population_field)
    if aggregation_field is None and "aggregation" in impacted.columns:
        aggregation_field = "aggregation"
    size = _size(impacted, size_field)
    table = _Table(impacted, classification)
    by_type = table.grouped(impacted[exposure_type_field], size)
    by_area = table.grouped(impacted[aggregation_field], size) if aggregation_field else {}
    population = None
    needs: dict[str, tuple[int, str, str]] = {}
    profile = read_needs_profile(needs_profile) if isinstance(needs_profile, str) else needs_profile
    if population_field is not None:
        population = _population(table, impacted[population_field].to_numpy(dtype=np.float64), classification)
        if profile is not None:
            needs = minimum_needs(population.displaced, profile)
    prov = _provenance(provenance, classification, size_field, profile, impacted)
    return ImpactSummary(table.row(size), by_type, by_area, population, needs, prov)


def combine_hazards(
    *impacted: gpd.GeoDataFrame, rule: str = "max_severity", names: tuple[str, ...] | None = None
) -> gpd.GeoDataFrame:
    """One frame from several analyses of the *same* point/polygon exposure (same index).

    Each hazard's class is normalised to ``severity = (class index + 1) / number of classes``
    (0 when not exposed), so classifications with different numbers of classes compare.
    ``rule="max_severity"``: per feature the hazard with the highest severity wins (first in
    argument order on ties) and gives ``affected``; ``rule="any_affected"``: ``affected`` is
    the OR of all hazards' flags. ``exposed`` is always the OR. Adds ``hazard_source`` (winning
    hazard's name, ``None`` if exposed to none) and ``hazard_class`` as ``"name:class"``, plus
    ``severity_<name>`` and ``affected_<name>`` per hazard. Summarise with ``classification=None``.
    """
    if rule not in COMBINE_RULES:
        raise InputError(f"rule {rule!r} is not one of {list(COMBINE_RULES)}")
    labels = tuple(names) if names is not None else tuple(f"hazard_{i + 1}" for i in range(len(impacted)))
    _check_combinable(impacted, labels)
    sev = np.column_stack([f["severity"].to_numpy(dtype=np.float64) for f in impacted])
    aff = np.column_stack([f["affected"].to_numpy(dtype=bool) for f in impacted])
    exp = np.column_stack([f["exposed"].to_numpy(dtype=bool) for f in impacted])
    cls = np.column_stack([f["hazard_class"].to_numpy(dtype=object) for f in impacted])
    rows = np.arange(len(sev))
    win = np.argmax(sev, axis=1)
    base = impacted[0].drop(columns=["hazard_level", "hazard_class", "severity", "affected", "exposed"])
    out = base.copy()
    out["severity"] = sev[rows, win]
    out["exposed"] = exp.any(axis=1)
    out["affected"] = aff[rows, win] if rule == "max_severity" else aff.any(axis=1)
    source = np.array(labels, dtype=object)[win]
    out["hazard_source"] = np.where(out["exposed"], source, None)
    out["hazard_class"] = np.where(out["exposed"], source + ":" + cls[rows, win].astype(str), None)
    for j, label in enumerate(labels):
        out[f"severity_{label}"] = sev[:, j]
        out[f"affected_{label}"] = aff[:, j]
    out.attrs["notes"] = [n for f in impacted for n in f.attrs.get("notes", [])]
    return out


class _Table:
    """Per-class and per-status sums of an impacted frame, optionally per group, vectorised."""

    def __init__(self, impacted: pd.DataFrame, classification: HazardClassification | None) -> None:
        self.classification = classification
        self.exposed = impacted["exposed"].to_numpy(dtype=bool)
        self.affected = impacted["affected"].to_numpy(dtype=bool) & self.exposed
        self.levels = impacted["hazard_level"].to_numpy(dtype=np.int64) if classification is not None else None

    def sums(self, codes: np.ndarray, n_groups: int, size: np.ndarray) -> np.ndarray:
        """Array (groups, classes + 4): class sums, then affected, not_affected, not_exposed, total."""
        status = [self.affected, self.exposed & ~self.affected, ~self.exposed, np.ones_like(self.exposed)]
        cols = [np.bincount(codes, weights=size * s, minlength=n_groups) for s in status]
        if self.classification is not None and self.levels is not None:
            n = len(self.classification.classes)
            ok = self.levels >= 0
            key = codes[ok] * n + self.levels[ok]
            per = np.bincount(key, weights=size[ok], minlength=n_groups * n).reshape(n_groups, n)
            return np.column_stack([per, *cols])
        return np.column_stack(cols)

    def keys(self) -> tuple[str, ...]:
        """Row keys: class names then the status keys."""
        return (*(self.classification.names if self.classification else ()), *_STATUS)

    def row(self, size: np.ndarray) -> dict[str, float]:
        """The totals row."""
        return _as_row(self.keys(), self.sums(np.zeros(len(size), dtype=np.int64), 1, size)[0], size)

    def grouped(self, groups: pd.Series, size: np.ndarray) -> dict[str, dict[str, float]]:
        """One row per group value (missing values grouped as "unknown")."""
        codes, uniques = pd.factorize(groups.astype("string").fillna("unknown"), sort=True)
        sums = self.sums(codes.astype(np.int64), len(uniques), size)
        return {str(u): _as_row(self.keys(), sums[i], size) for i, u in enumerate(uniques)}


def _as_row(keys: tuple[str, ...], values: np.ndarray, size: np.ndarray) -> dict[str, float]:
    counts = np.issubdtype(size.dtype, np.integer)
    return {k: round(float(v)) if counts else float(v) for k, v in zip(keys, values, strict=True)}


def _size(impacted: pd.DataFrame, size_field: str | None) -> np.ndarray:
    if size_field is None:
        return np.ones(len(impacted), dtype=np.int64)
    size = pd.to_numeric(impacted[size_field], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(size).any():
        raise InputError(f"size_field {size_field!r} has {int(np.isnan(size).sum())} missing or non-numeric values")
    return size


def _population(table: _Table, people: np.ndarray, classification: HazardClassification | None) -> PopulationImpact:
    if np.isnan(people).any():
        raise InputError(f"population has {int(np.isnan(people).sum())} missing values; fill them (e.g. 0) first")
    sums = table.sums(np.zeros(len(people), dtype=np.int64), 1, people)[0]
    n = len(classification.classes) if classification is not None else 0
    by_class = {name: float(v) for name, v in zip(table.keys()[:n], sums[:n], strict=True)}
    displaced = float(np.dot(sums[:n], classification.displacement_rates)) if classification is not None else 0.0
    affected, not_affected, not_exposed, total = (float(v) for v in sums[n:])
    return PopulationImpact(by_class, affected, not_affected, not_exposed, total, displaced)


def _require_columns(
    impacted: pd.DataFrame,
    classification: HazardClassification | None,
    type_field: str,
    size_field: str | None,
    population_field: str | None,
) -> None:
    wanted = ["exposed", "affected", type_field, size_field, population_field]
    if classification is not None:
        wanted.append("hazard_level")
    missing = [c for c in wanted if c is not None and c not in impacted.columns]
    if missing:
        raise InputError(
            f"impacted frame lacks columns {missing}; make it with exposed_features / exposed_to_raster / "
            "population_by_class (or pass classification=None for combine_hazards output)"
        )


def _provenance(
    provenance: Provenance | Mapping[str, Any] | None,
    classification: HazardClassification | None,
    size_field: str | None,
    profile: NeedsProfile | None,
    impacted: pd.DataFrame,
) -> dict[str, Any]:
    base = provenance.to_dict() if isinstance(provenance, Provenance) else dict(provenance or {})
    unit = {None: "count", "length_m": "m", "population": "people"}.get(size_field, size_field)
    base.update(
        {
            "classification": classification.to_dict() if classification is not None else None,
            "unit": unit,
            "needs_profile": {"name": profile.name, "source": profile.source} if profile is not None else None,
            "notes": list(impacted.attrs.get("notes", [])),
        }
    )
    return base


def _check_combinable(impacted: tuple[gpd.GeoDataFrame, ...], labels: tuple[str, ...]) -> None:
    if len(impacted) < 1:
        raise InputError("combine_hazards needs at least one impacted frame")
    if len(labels) != len(impacted) or len(set(labels)) != len(labels):
        raise InputError(f"names {labels!r} must be {len(impacted)} distinct labels")
    first = impacted[0].index
    for label, frame in zip(labels, impacted, strict=True):
        if "length_m" in frame.columns or not frame.index.is_unique:
            raise InputError(f"{label}: lines cut into pieces cannot be combined feature by feature; summarise each")
        if not frame.index.equals(first):
            raise InputError(f"{label}: index differs from the first frame's; run every hazard on the same exposure")
