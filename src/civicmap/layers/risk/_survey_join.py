"""Survey-to-building join internals of :func:`civicmap.layers.risk.vulnerability.join_surveys`.

Positions, not labels: a survey's building is its row position in the buildings frame (-1 =
none). Every step is vectorised (shapely STRtree queries, pandas sorts); metric CRS assumed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from civicmap.errors import InputError

__all__ = [
    "MATCH_RULES",
    "carried_columns",
    "footprints",
    "latest_rows",
    "match_surveys",
    "spread",
    "survey_points",
    "unmatched_report",
]

log = logging.getLogger("civicmap.layers.risk.vulnerability")

#: How a survey found its building, in the order the rules are tried.
MATCH_RULES = ("osm_id", "inside", "nearest")


def carried_columns(
    buildings: gpd.GeoDataFrame,
    submissions: pd.DataFrame,
    id_field: str | None,
    columns: Sequence[str] | None,
    *,
    default: Sequence[str],
) -> list[str]:
    """Answer columns to carry (``default`` when ``columns`` is None); checks ids and name clashes."""
    if not buildings.index.is_unique:
        raise InputError("buildings index has repeated ids; index buildings by a unique OSM id such as 'w123'")
    if not submissions.index.is_unique:
        raise InputError("survey index has repeated instanceIDs; pass the frame read_submissions returns")
    if id_field is not None and id_field not in submissions.columns:
        raise InputError(f"survey has no field {id_field!r} (id_field); pass id_field=None to join by location only")
    if columns is None:
        carry = [c for c in default if c in submissions.columns]
    else:
        carry = list(columns)
        missing = [c for c in carry if c not in submissions.columns]
        if missing:
            raise InputError(f"survey has no columns {missing}; columns are {list(submissions.columns)}")
    added = ["survey_id", "survey_count", "survey_match", "survey_distance_m", "submitted_at"]
    clash = [c for c in [*carry, *added] if c in buildings.columns]
    if clash:
        raise InputError(f"buildings already have columns {clash}; rename or drop them before joining surveys")
    return carry


def footprints(frame: gpd.GeoDataFrame) -> np.ndarray:
    """Building geometries (invalid ones repaired for the predicates; null/empty ones kept as they are)."""
    geoms = np.asarray(frame.geometry.values, dtype=object)
    bad = ~shapely.is_missing(geoms) & ~shapely.is_valid(geoms)
    if bad.any():
        geoms = geoms.copy()
        geoms[bad] = shapely.make_valid(geoms[bad])
    return geoms


def survey_points(frame: gpd.GeoDataFrame) -> np.ndarray:
    """One point per survey (a shape's point on surface); None where the survey has no location."""
    geoms = np.asarray(frame.geometry.values, dtype=object)
    usable = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    out = np.full(len(geoms), None, dtype=object)
    out[usable] = shapely.point_on_surface(geoms[usable])
    return out


def match_surveys(
    frame: gpd.GeoDataFrame, submissions: pd.DataFrame, points: np.ndarray, id_field: str | None, max_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Building position per survey (-1 if none) and the rule that matched it."""
    n = len(points)
    pos = np.full(n, -1, dtype=np.int64)
    rule = np.full(n, None, dtype=object)
    if id_field is not None:
        answers = submissions[id_field].astype("string").str.strip().fillna("")
        pos = pd.Index(frame.index.astype(str)).get_indexer(answers.to_numpy(dtype=object)).astype(np.int64)
        rule[pos >= 0] = "osm_id"
    geoms = footprints(frame)
    tree = shapely.STRtree(geoms)
    left = np.flatnonzero((pos < 0) & ~shapely.is_missing(points))
    si, bi = tree.query(points[left], predicate="intersects")
    order = np.lexsort((bi, si))
    si, bi = si[order], bi[order]
    first = np.unique(si, return_index=True)[1]  # inside two overlapping footprints: the first in row order
    pos[left[si[first]]], rule[left[si[first]]] = bi[first], "inside"
    left = np.flatnonzero((pos < 0) & ~shapely.is_missing(points))
    if len(left) and len(geoms):
        si, bi = tree.query_nearest(points[left], max_distance=max_m, all_matches=False)
        pos[left[si]], rule[left[si]] = bi, "nearest"
    return pos, rule


def latest_rows(pos: np.ndarray, times: pd.Series | None) -> np.ndarray:
    """Row positions of the winning survey of each surveyed building: latest time, then last row."""
    order = pd.DataFrame({"pos": pos, "row": np.arange(len(pos))})
    order["t"] = pd.to_datetime(times.to_numpy(), utc=True) if times is not None else pd.NaT
    order = order[order["pos"] >= 0].sort_values(["pos", "t", "row"], na_position="first", kind="stable")
    return order.drop_duplicates("pos", keep="last")["row"].to_numpy(dtype=np.int64)


def spread(values: pd.Series, where: np.ndarray, index: pd.Index) -> pd.Series:
    """Values placed at building positions ``where``; missing elsewhere (dtype kept where pandas can)."""
    placed = pd.Series(values.to_numpy(), index=index[where], dtype=values.dtype)
    return placed.reindex(index)


def unmatched_report(
    submissions: pd.DataFrame, points: np.ndarray, pos: np.ndarray, id_field: str | None, max_m: float
) -> pd.DataFrame:
    """One row per survey without a building (index: instanceID) with the ``reason``, the id answer and time."""
    lost = pos < 0
    located = ~shapely.is_missing(points[lost])
    reason = np.where(located, f"no building footprint within {max_m:g} m", "no location")
    out = pd.DataFrame({"reason": reason}, index=submissions.index[lost])
    if id_field is not None:
        ids = submissions[id_field][lost]
        out[id_field] = ids.to_numpy()
        named = ids.notna().to_numpy()
        out.loc[named, "reason"] = "id " + ids[named].astype(str).map(repr) + " is not a building; " + reason[named]
    if "submitted_at" in submissions.columns:
        out["submitted_at"] = submissions["submitted_at"][lost].to_numpy()
    if len(out):
        log.warning("%d surveys joined no building: %s", len(out), out["reason"].value_counts().to_dict())
    return out
