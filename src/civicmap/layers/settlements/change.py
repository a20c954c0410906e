"""Change and encroachment between two footprint layers (e.g. two drone surveys or OSM dates).

:func:`building_changes` matches footprints one to one by intersection over union (IoU,
area of intersection / area of union). Candidate pairs are footprints that intersect; pairs
are taken greedily from the highest IoU down (each footprint at most once, vectorised with
sort + de-duplication). A matched pair with IoU >= ``same_iou`` (default 0.8) is
``unchanged``; with ``match_iou`` (default 0.3) <= IoU < ``same_iou`` it is ``changed``
(extended, rebuilt or re-digitised); below ``match_iou`` footprints are not the same
structure. Unmatched ``after`` footprints are ``new``, unmatched ``before`` ones ``removed``.
The thresholds are declared defaults: digitising noise between two surveys of the same
house typically stays above 0.8, an extension by a room drops it to 0.5–0.8.

New (and changed) structures are flagged when they intersect a hazard zone (only zones
with ``affected`` true when that column exists) or reserved land (road reserves, riparian
buffers, public land). Computed in a metric CRS (``before``'s own, or its local UTM).
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from civicmap.errors import InputError
from civicmap.layers.overlay import intersects_any
from civicmap.layers.settlements._prepare import clean_footprints, metric_crs_of, to_metric

__all__ = ["building_changes"]

log = logging.getLogger(__name__)


def _matches(before: np.ndarray, after: np.ndarray, match_iou: float) -> pd.DataFrame:
    a_idx, b_idx = shapely.STRtree(before).query(after, predicate="intersects")
    inter = shapely.area(shapely.intersection(after[a_idx], before[b_idx]))
    union = shapely.area(after[a_idx]) + shapely.area(before[b_idx]) - inter
    pairs = pd.DataFrame({"after": a_idx, "before": b_idx, "iou": inter / np.where(union > 0, union, np.nan)})
    pairs = pairs.loc[pairs["iou"] >= match_iou].sort_values("iou", ascending=False, kind="stable")
    return pairs.drop_duplicates("after").drop_duplicates("before")


def _zones(layer: gpd.GeoDataFrame | None, crs: CRS, name: str) -> np.ndarray:
    if layer is None or not len(layer):
        return np.empty(0, dtype=object)
    zones = to_metric(layer, crs, name=name)
    if "affected" in zones:
        zones = zones.loc[zones["affected"].fillna(False).astype(bool).to_numpy()]
    return zones.geometry.to_numpy()


def building_changes(
    before: gpd.GeoDataFrame,
    after: gpd.GeoDataFrame,
    *,
    hazard: gpd.GeoDataFrame | None = None,
    reserved: gpd.GeoDataFrame | None = None,
    match_iou: float = 0.3,
    same_iou: float = 0.8,
    crs: CRS | str | int | None = None,
) -> gpd.GeoDataFrame:
    """One row per structure: ``change`` in new / removed / changed / unchanged (see module docstring).

    Columns: ``before_id`` and ``after_id`` (input index labels, None when absent), ``iou``
    (NaN for new/removed), ``area_before_m2``, ``area_after_m2``, ``in_hazard``,
    ``in_reserved`` and ``flagged`` (a new or changed structure in a hazard zone or on
    reserved land). Geometry: the ``after`` footprint, or the ``before`` one if removed; metric CRS.
    """
    if not 0 < match_iou <= same_iou <= 1:
        raise InputError(f"match_iou={match_iou}, same_iou={same_iou}; expected 0 < match_iou <= same_iou <= 1")
    metric = metric_crs_of(before if len(before) else after, name="before", crs=crs)
    old = clean_footprints(to_metric(before, metric, name="before"), name="before")
    new = clean_footprints(to_metric(after, metric, name="after"), name="after")
    og, ng = old.geometry.to_numpy(), new.geometry.to_numpy()
    pairs = _matches(og, ng, match_iou)
    lost = np.setdiff1d(np.arange(len(og)), pairs["before"].to_numpy())
    born = np.setdiff1d(np.arange(len(ng)), pairs["after"].to_numpy())
    kind = np.where(pairs["iou"].to_numpy() >= same_iou, "unchanged", "changed")
    table = pd.DataFrame(
        {
            "change": np.concatenate([kind, np.full(len(born), "new"), np.full(len(lost), "removed")]),
            "before_id": [*old.index.take(pairs["before"]), *([None] * len(born)), *old.index.take(lost)],
            "after_id": [*new.index.take(pairs["after"]), *new.index.take(born), *([None] * len(lost))],
            "iou": np.concatenate([pairs["iou"].to_numpy(), np.full(len(born) + len(lost), np.nan)]),
        }
    )
    geoms = np.concatenate([ng[pairs["after"].to_numpy()], ng[born], og[lost]])
    area_old = np.concatenate(
        [shapely.area(og[pairs["before"].to_numpy()]), np.full(len(born), np.nan), shapely.area(og[lost])]
    )
    table["area_before_m2"] = area_old
    table["area_after_m2"] = np.where(table["change"] == "removed", np.nan, shapely.area(geoms))
    table["in_hazard"] = intersects_any(geoms, _zones(hazard, metric, "hazard"))
    table["in_reserved"] = intersects_any(geoms, _zones(reserved, metric, "reserved"))
    growing = table["change"].isin(["new", "changed"])
    table["flagged"] = growing & (table["in_hazard"] | table["in_reserved"])
    log.info("building changes: %s; %d flagged", table["change"].value_counts().to_dict(), table["flagged"].sum())
    return gpd.GeoDataFrame(table, geometry=geoms, crs=metric)
