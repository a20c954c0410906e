"""Informality index: a documented, weighted composite of grid-cell indicators.

What it is: an **indicator of likely informality for planning and for asking the community**,
computed on grid cells. It is *not* a settlement boundary, not a legal status and not a
census of slum households; publish it as cells (with :func:`public_cells`), never as outlines.

Method. Each component is a cell column from :func:`~.grid.settlement_grid`, oriented so that
higher means "more like an informal settlement", normalised to [0, 1] across the cells of
the study area, and combined as a weighted mean over the components a cell has:

- ``method="rank"`` (default): percentile rank (``rank(pct=True)``, ties averaged), robust
  to outliers such as a single warehouse;
- ``method="minmax"``: ``(x - min) / (max - min)``.

Both are **relative to the area analysed**: a city without any informality still has its
"most informal-looking" cells. Components missing for every cell (no streets, no facilities,
no hazard layer) are dropped and the weights renormalised (logged and listed in
``attrs["components_used"]``); the normalised components are kept as ``c_<name>`` columns.

Default components (:data:`DEFAULT_COMPONENTS`) follow the physical proxies of the
literature: UN-Habitat's five slum-household deprivations (water, sanitation, durable
housing, sufficient living area, security of tenure; UN-Habitat 2003 *The Challenge of
Slums*) through access to water and sanitation and small, crowded structures; the
morphology of informal settlements, small, dense, irregularly oriented buildings with narrow
gaps (Taubenböck & Kraff 2014; Taubenböck et al. 2018; Kuffer, Pfeffer & Sliuzas 2016 "Slums
from space — 15 years of slum mapping using remote sensing", Remote Sensing 8(6) 455; Kohli
et al. 2012 / IDEAMAPS physical domain); and poor street access (block depth, Brelsford et
al. 2018). Classes (:data:`INDEX_CLASSES`, rule ``lower < x <= upper``): ``unlikely``
[0, 0.45], ``possible`` (0.45, 0.6], ``likely`` (0.6, 1].
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from civicmap.errors import InputError
from civicmap.layers.settlements.access import SERVICES

__all__ = [
    "DEFAULT_COMPONENTS",
    "INDEX_CLASSES",
    "IndexClass",
    "IndexComponent",
    "classify",
    "informality_index",
    "public_cells",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexComponent:
    """One input of the index: ``columns`` (averaged when several), ``direction`` +1 / -1, ``weight``."""

    name: str
    columns: tuple[str, ...]
    direction: int
    weight: float


@dataclass(frozen=True)
class IndexClass:
    """A class of the index with the interval rule ``lower < index <= upper`` (lower bound 0 included)."""

    name: str
    lower: float
    upper: float


DEFAULT_COMPONENTS: tuple[IndexComponent, ...] = (
    IndexComponent("coverage", ("coverage_ratio",), +1, 0.15),
    IndexComponent("small_buildings", ("area_median_m2",), -1, 0.20),
    IndexComponent("closeness", ("neighbour_distance_median_m",), -1, 0.15),
    IndexComponent("irregularity", ("orientation_circstd_deg", "alignment_median_deg"), +1, 0.15),
    IndexComponent("street_access", ("deep_share", "street_distance_median_m"), +1, 0.15),
    IndexComponent("service_access", tuple(f"{s}_median_m" for s in SERVICES), +1, 0.10),
    IndexComponent("hazard", ("hazard_share",), +1, 0.10),
)

INDEX_CLASSES: tuple[IndexClass, ...] = (
    IndexClass("unlikely", 0.0, 0.45),
    IndexClass("possible", 0.45, 0.6),
    IndexClass("likely", 0.6, 1.0),
)


def _normalise(values: pd.DataFrame, method: str) -> pd.DataFrame:
    if method == "rank":
        return values.rank(pct=True, method="average")
    low, high = values.min(), values.max()
    span = (high - low).replace(0, np.nan)
    scaled = (values - low) / span
    scaled.loc[:, span.isna().to_numpy()] = 0.5  # a constant column says nothing: the middle
    return scaled


def _component(grid: pd.DataFrame, part: IndexComponent, method: str) -> pd.Series | None:
    present = [c for c in part.columns if c in grid and grid[c].notna().any()]
    if not present:
        return None
    values = grid[present].astype(float) * part.direction
    return _normalise(values, method).mean(axis=1, skipna=True)


def informality_index(
    grid: gpd.GeoDataFrame,
    *,
    components: Sequence[IndexComponent] = DEFAULT_COMPONENTS,
    method: Literal["rank", "minmax"] = "rank",
    classes: Sequence[IndexClass] = INDEX_CLASSES,
) -> gpd.GeoDataFrame:
    """Add ``c_<component>`` (0–1), ``informality_index`` (0–1) and ``informality_class`` to the cells.

    See the module docstring for the method. ``grid`` is the output of
    :func:`~.grid.settlement_grid`. Raises :class:`InputError` for an unknown ``method``,
    non-positive weights or classes that do not cover [0, 1].
    """
    if method not in ("rank", "minmax"):
        raise InputError(f"method={method!r}; expected 'rank' (percentile) or 'minmax'")
    if any(c.weight < 0 for c in components) or not any(c.weight > 0 for c in components):
        raise InputError(f"component weights {[c.weight for c in components]} must be >= 0 with at least one > 0")
    _check_classes(classes)
    out = grid.copy()
    used, weights = [], []
    for part in components:
        values = _component(out, part, method)
        if values is None or part.weight == 0:
            log.info("index component %r has no data (columns %s): left out", part.name, part.columns)
            continue
        out[f"c_{part.name}"] = values
        used.append(part.name)
        weights.append(part.weight)
    if not used:
        raise InputError(f"none of the index columns is in the grid (columns: {list(grid.columns)})")
    matrix = out[[f"c_{n}" for n in used]].to_numpy(dtype=float)
    w = np.broadcast_to(np.asarray(weights), matrix.shape) * np.isfinite(matrix)
    out["informality_index"] = np.nansum(matrix * w, axis=1) / np.where(w.sum(axis=1) > 0, w.sum(axis=1), np.nan)
    out["informality_class"] = classify(out["informality_index"], classes)
    out.attrs["components_used"] = dict(zip(used, np.asarray(weights) / sum(weights), strict=True))
    return out


def _check_classes(classes: Sequence[IndexClass]) -> None:
    bounds = [(c.lower, c.upper) for c in classes]
    ordered = sorted(bounds)
    joined = all(a[1] == b[0] for a, b in itertools.pairwise(ordered))
    if not classes or ordered[0][0] > 0 or ordered[-1][1] < 1 or not joined:
        raise InputError(f"index classes {bounds} must tile [0, 1] without gaps (lower < x <= upper)")


def classify(index: pd.Series, classes: Sequence[IndexClass] = INDEX_CLASSES) -> pd.Series:
    """Class name per value with ``lower < x <= upper`` (the lowest class also takes its lower bound)."""
    ordered = sorted(classes, key=lambda c: c.lower)
    edges = [ordered[0].lower, *(c.upper for c in ordered)]
    cut = pd.cut(index, bins=edges, labels=[c.name for c in ordered], right=True, include_lowest=True)
    return cut.astype(object).where(cut.notna(), None)


def public_cells(grid: gpd.GeoDataFrame, k: int = 5, *, blank: bool = False) -> gpd.GeoDataFrame:
    """Cells safe to publish: those with fewer than ``k`` buildings are dropped (or, ``blank``, emptied).

    Blanked cells keep ``cell_id`` and geometry with every other value missing and
    ``suppressed`` True. Per-building frames are never public; pass only cell grids here.
    """
    if k < 1:
        raise InputError(f"k={k}; expected the minimum number of buildings per published cell (>= 1, default 5)")
    if "building_count" not in grid:
        raise InputError("grid has no 'building_count' column; pass the output of settlement_grid")
    small = (grid["building_count"].fillna(0) < k).to_numpy()
    log.info("public cells: %d of %d suppressed (fewer than %d buildings)", small.sum(), len(grid), k)
    if not blank:
        return grid.loc[~small].copy()
    out = grid.copy()
    values = [c for c in out.columns if c not in ("cell_id", out.geometry.name)]
    out[values] = out[values].astype(object)
    out.loc[small, values] = None
    out["suppressed"] = small
    return out
