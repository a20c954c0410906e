"""Evacuation and access on the street graph: nearest shelter, unserved buildings, service areas, access loss.

Units: distances in metres (``*_m``), times in seconds (``walk_time_s``), speeds in metres per
second (``speed_mps``). Everything is computed in a metric CRS: the street graph's own when it
is projected in metres, else the UTM zone of its bounds (:func:`civicmap.crs.local_metric_crs`).
Outputs are in the CRS of the buildings (or facilities) given.

Method
------
**Hazard cut** (:class:`HazardCut`, :func:`flooded_edges`). A street edge is *flooded* (removed)
when its geometry intersects a hazard zone whose integer rank (``hazard_level`` as made by
:func:`~civicmap.layers.risk.hazard.classify_hazard_polygons`, or ``rank``; 0 = least severe) is
``>= min_rank``, or whose boolean ``impassable`` is true. Intersection includes touching the
zone's boundary. With ``HazardCut(min_share=x)`` an edge is removed only when more than ``x`` of
its length lies inside such zones (the zones are dissolved first, so overlaps count once).
A facility (shelter, clinic) whose geometry intersects such a zone is unusable.

**Graph.** :func:`civicmap.layers.network.street_network` turns the osmnx MultiDiGraph (or
its edges GeoDataFrame with ``u``/``v``) into arrays; parallel edges keep the shortest;
weights are the edges' ``length`` (metres, osmnx's great-circle length) or, if absent, their
planar length in the metric CRS. Walking networks are two-way in osmnx; one-way edges are
respected as given.

**Snapping.** With a KD-tree, a building (a point on its surface) snaps to its nearest graph
node, the same node with and without the hazard; a facility (its point, or a point on its
surface) snaps to the nearest node that still has a dry edge. The straight legs are part of
the walk: ``walk_distance_m = access_distance_m + network_distance_m + egress_distance_m``
(building -> its node, node -> facility node along streets, facility node -> facility).

**Buildings in the water start anyway.** When every street at a building's node is flooded
(``starts_on_flooded_street``), it first leaves the water by the shortest way along flooded
streets (a second Dijkstra over the flooded edges, from every node that has a dry street),
then walks on dry streets only. Every other building never uses a flooded street, so a dry
pocket enclosed by flooded streets is cut off (unreachable). Because the node is the same
with and without the hazard, the hazard can only lengthen a walk. Rejected alternatives:
snapping to "the nearest node with a dry edge" moved buildings to other, sometimes better
placed nodes (across the river in the demo city) and made some walks *shorter* during the
flood; letting wading buildings choose any exit (a wet graph layer that can be left for the
dry one) let them wade anywhere inside a contiguous zone, bridges included, and in the demo
city the flood then lengthened no walk at all. ``starts_in_hazard`` tells whether the
building itself touches a closing zone (reported only; it does not change the rule).

**Search.** :func:`civicmap.layers.network.search_targets`: one multi-source Dijkstra
(``min_only=True``) on the reversed graph of dry streets from every usable facility gives, for
every node at once, the distance to its nearest facility, the facility and the next node
towards it; facilities are extra graph nodes linked to their snapped node by their egress leg.
The way out of the water is a second such search over the flooded streets, with the nodes that
have a dry street as targets. Routes are read from the predecessor array in lock-step for all
requested buildings together (:func:`civicmap.layers.network.path_vertices`).

**Walking speed.** Default 1.2 m/s (4.3 km/h): the Highway Capacity Manual (TRB, 2000) design
walking speed of 4.0 ft/s (1.22 m/s), lowered to 3.5 ft/s (1.07 m/s) by HCM 2010 and the MUTCD
(2009) to cover slower walkers; Fruin (1971, *Pedestrian Planning and Design*) measured a mean
free-flow speed near 1.35 m/s. People walk slower through water, at night, with children,
the elderly or people with disabilities: pass a lower ``speed_mps`` for those scenarios.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from civicmap.crs import require_crs, to_crs
from civicmap.errors import InputError
from civicmap.layers.network import StreetNetwork, Streets, street_network
from civicmap.layers.risk._hazard_walk import (
    DEFAULT_MIN_RANK,
    RANK_FIELDS,
    HazardCut,
    Nearest,
    as_cut,
    flooded_edges,
    nearest,
    route_lines,
)

__all__ = [
    "DEFAULT_MIN_RANK",
    "RANK_FIELDS",
    "WALK_SPEED_MPS",
    "AccessLoss",
    "HazardCut",
    "access_loss",
    "evacuation_routes",
    "flooded_edges",
    "nearest_shelter",
    "service_areas",
    "unserved",
]

log = logging.getLogger(__name__)

#: Default walking speed, m/s (HCM 2000 design speed 4.0 ft/s; see the module docstring).
WALK_SPEED_MPS = 1.2


def _check_speed(speed_mps: float, max_time_s: float | None) -> None:
    problems = []
    if not (isinstance(speed_mps, int | float) and np.isfinite(speed_mps) and speed_mps > 0):
        problems.append(f"speed_mps {speed_mps!r} must be a positive number of metres per second (walking: ~1.2)")
    if max_time_s is not None and not (isinstance(max_time_s, int | float) and max_time_s > 0):
        problems.append(f"max_time_s {max_time_s!r} must be a positive number of seconds (or None)")
    if problems:
        raise InputError("; ".join(problems))


def _check_frames(**frames: gpd.GeoDataFrame) -> None:
    for name, frame in frames.items():
        if not isinstance(frame, gpd.GeoDataFrame):
            raise InputError(f"{name} must be a GeoDataFrame; got {type(frame).__name__}")
        require_crs(frame, name=name)


def _check_targets(frame: gpd.GeoDataFrame, *, what: str) -> None:
    if frame.empty:
        raise InputError(f"there are no {what} to walk to (0 rows); give at least one point or polygon")
    if not frame.index.is_unique:
        raise InputError(f"the {what} index has duplicate labels; they are the ids in the result: reset_index() first")


def _labels(index: pd.Index, positions: np.ndarray) -> np.ndarray:
    """Index labels at ``positions``, None where the position is -1."""
    labels = np.empty(len(index) + 1, dtype=object)
    labels[:-1] = index.to_numpy()
    return labels[positions]


def _want_routes(
    with_routes: bool | Sequence[bool] | pd.Series | np.ndarray, buildings: gpd.GeoDataFrame
) -> np.ndarray:
    if isinstance(with_routes, bool | np.bool_):
        return np.full(len(buildings), bool(with_routes))
    mask = np.asarray(with_routes.reindex(buildings.index) if isinstance(with_routes, pd.Series) else with_routes)
    if mask.shape != (len(buildings),) or mask.dtype != bool:
        raise InputError(
            f"with_routes must be a bool, or a boolean mask with one value per building ({len(buildings)}; "
            f"a Series is aligned on the buildings' index); got {mask.dtype} of shape {mask.shape}"
        )
    return mask


def nearest_shelter(
    streets: Streets,
    buildings: gpd.GeoDataFrame,
    shelters: gpd.GeoDataFrame,
    *,
    hazard: gpd.GeoDataFrame | HazardCut | None = None,
    min_rank: int = DEFAULT_MIN_RANK,
    speed_mps: float = WALK_SPEED_MPS,
    max_time_s: float | None = None,
    with_routes: bool | Sequence[bool] | pd.Series | np.ndarray = True,
) -> gpd.GeoDataFrame:
    """Walk from every building to its nearest reachable shelter, with the hazard's streets removed.

    ``streets``: an osmnx MultiDiGraph (``read_osm(path).street_graph("walk")``, any CRS,
    ``length`` in metres) or its edges GeoDataFrame. ``buildings``, ``shelters``: points or
    polygons in any CRS; the shelters' index labels are the ids reported. ``hazard``: zones
    closing streets and shelters from rank ``min_rank`` (or a :class:`HazardCut`); ``None`` or
    empty closes nothing. ``speed_mps``: walking speed in m/s. ``max_time_s``: a building is
    ``reachable`` only if its walk takes at most this long (seconds). ``with_routes``: ``True``
    (all), ``False``, or a boolean mask of the buildings that want a route (e.g. exposed ones).

    Returns the buildings (index, columns and geometry kept, in their CRS) plus: ``shelter_id``
    (None if none is reachable), ``node`` (snapped graph node), ``starts_in_hazard``,
    ``starts_on_flooded_street`` (it wades out first), ``access_distance_m``,
    ``network_distance_m``, ``egress_distance_m``, ``walk_distance_m`` (their sum, metres),
    ``walk_time_s`` (seconds), ``reachable`` and, with routes, ``route``: a second geometry
    column (LineString building -> streets -> shelter, in the buildings' CRS; its length is
    ``walk_distance_m`` up to the gap between osmnx's great-circle ``length`` and planar
    lengths, under 0.6 %; None where not asked or unreachable).
    Use :func:`evacuation_routes` for a frame with the routes as its geometry. See the module
    docstring for the method.
    """
    _check_frames(buildings=buildings, shelters=shelters)
    _check_targets(shelters, what="shelters")
    _check_speed(speed_mps, max_time_s)
    net = street_network(streets)
    found = nearest(net, buildings, shelters, as_cut(hazard, min_rank), np.inf)
    out = _result_frame(buildings, shelters, net, found, speed_mps)
    out["reachable"] = out["walk_time_s"].le(np.inf if max_time_s is None else max_time_s).to_numpy()
    want = _want_routes(with_routes, buildings) & (found.facility >= 0)
    if not (isinstance(with_routes, bool | np.bool_) and not with_routes):
        routes = np.full(len(buildings), None, dtype=object)
        if want.any():
            routes[want] = route_lines(net, found, np.flatnonzero(want))
        frame = gpd.GeoDataFrame(geometry=gpd.GeoSeries(routes, crs=net.crs))
        out["route"] = gpd.GeoSeries(
            to_crs(frame, buildings.crs, name="routes").geometry.to_numpy(), index=out.index, crs=buildings.crs
        )
    log.info(
        "nearest shelter: %d buildings, %d shelters, %d reachable", len(out), len(shelters), int(out["reachable"].sum())
    )
    return out


def _result_frame(
    buildings: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame, net: StreetNetwork, found: Nearest, speed_mps: float
) -> gpd.GeoDataFrame:
    out = buildings.copy()
    has = found.facility >= 0
    out["shelter_id"] = pd.Series(_labels(facilities.index, found.facility), index=out.index, dtype="object")
    out["node"] = net.node_ids.to_numpy()[found.node]
    out["starts_in_hazard"] = found.inside
    out["starts_on_flooded_street"] = found.wet
    out["access_distance_m"] = found.access_m
    out["network_distance_m"] = found.network_m
    out["egress_distance_m"] = found.egress_m
    out["walk_distance_m"] = np.where(has, found.access_m + found.network_m + found.egress_m, np.nan)
    out["walk_time_s"] = out["walk_distance_m"] / speed_mps
    return out


def evacuation_routes(result: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The routes of a :func:`nearest_shelter` result as their own frame (geometry = route, same CRS).

    One row per building that has a route (index kept), with ``shelter_id``,
    ``walk_distance_m`` (metres) and ``walk_time_s`` (seconds): ready for ``to_file``.
    """
    if "route" not in result.columns:
        raise InputError("the result has no 'route' column; call nearest_shelter(..., with_routes=True)")
    has = result["route"].notna().to_numpy()
    cols = ["shelter_id", "walk_distance_m", "walk_time_s"]
    return gpd.GeoDataFrame(result.loc[has, cols], geometry=result["route"][has], crs=result["route"].crs)


def _people(frame: pd.DataFrame, population_field: str | None) -> np.ndarray | None:
    if population_field is None:
        return None
    if population_field not in frame.columns:
        raise InputError(f"population_field {population_field!r} is not a column; columns are {list(frame.columns)}")
    people = pd.to_numeric(frame[population_field], errors="coerce").to_numpy(dtype=float)
    if (people < 0).any():
        raise InputError(f"population_field {population_field!r} has negative values; expected head counts >= 0")
    if np.isnan(people).any():
        log.warning("%d buildings have no %r value; counted as 0 people", int(np.isnan(people).sum()), population_field)
    return np.nan_to_num(people)


def unserved(
    buildings_result: gpd.GeoDataFrame, *, max_time_s: float, population_field: str | None = None
) -> dict[str, Any]:
    """Buildings (and people) with no shelter within ``max_time_s`` seconds, from a :func:`nearest_shelter` result.

    A building is unserved when no shelter is reachable or its ``walk_time_s`` exceeds
    ``max_time_s``. Returns a JSON-ready dict: ``max_time_s``, ``buildings``,
    ``buildings_unserved``, ``buildings_unreachable`` (no shelter at all), ``share_unserved``
    (0..1) and, with ``population_field``, ``people``, ``people_unserved``,
    ``share_people_unserved`` (None without it).
    """
    _check_speed(1.0, max_time_s)
    if "walk_time_s" not in buildings_result.columns:
        raise InputError("buildings_result has no 'walk_time_s' column; pass the frame nearest_shelter returns")
    time_s = buildings_result["walk_time_s"].to_numpy(dtype=float)
    out_mask = ~(time_s <= max_time_s)
    people = _people(buildings_result, population_field)
    total = len(time_s)
    summary: dict[str, Any] = {
        "max_time_s": float(max_time_s),
        "buildings": total,
        "buildings_unserved": int(out_mask.sum()),
        "buildings_unreachable": int(np.isnan(time_s).sum()),
        "share_unserved": float(out_mask.mean()) if total else 0.0,
        "people": None,
        "people_unserved": None,
        "share_people_unserved": None,
    }
    if people is not None:
        summary["people"] = float(people.sum())
        summary["people_unserved"] = float(people[out_mask].sum())
        summary["share_people_unserved"] = float(people[out_mask].sum() / people.sum()) if people.sum() else 0.0
    return summary


def service_areas(
    streets: Streets,
    facilities: gpd.GeoDataFrame,
    *,
    max_time_s: float,
    speed_mps: float = WALK_SPEED_MPS,
    hazard: gpd.GeoDataFrame | HazardCut | None = None,
    min_rank: int = DEFAULT_MIN_RANK,
    buffer_m: float = 50.0,
) -> gpd.GeoDataFrame:
    """Walking service area of each facility within ``max_time_s`` seconds, with the hazard's streets removed.

    A street edge belongs to a facility's area when both its ends reach a facility within the
    time (egress leg included), walking at ``speed_mps`` m/s on dry streets; it goes to the
    facility of its nearer end, so areas do not overlap except by the buffer. Partly reachable
    edges are left out. The area is those edges buffered by ``buffer_m`` metres (default 50 m,
    about a plot's depth off the street) and dissolved: a street-based area, not a hull, so it
    does not claim blocks the streets do not reach. Call it without and with ``hazard`` to
    compare. Returns one row per facility (index kept, facilities' CRS): ``usable`` (False when
    inside a closing zone or with no dry node to snap to), ``street_length_m`` (metres of
    directed-pair-deduplicated street), ``area_m2`` (in the metric CRS) and the polygon (empty
    when nothing is reachable).
    """
    _check_frames(facilities=facilities)
    _check_targets(facilities, what="facilities")
    _check_speed(speed_mps, max_time_s)
    if not buffer_m > 0:
        raise InputError(f"buffer_m {buffer_m!r} must be a positive number of metres (e.g. 50)")
    net = street_network(streets)
    found = nearest(net, facilities.iloc[:0], facilities, as_cut(hazard, min_rank), max_time_s * speed_mps)
    search, n = found.search, net.n_nodes
    src, dst = net.u[search.edges], net.v[search.edges]
    pair = np.minimum(src, dst) * n + np.maximum(src, dst)
    _, once = np.unique(pair, return_index=True)  # one of the two directions of a two-way street
    src, dst, edge = src[once], dst[once], search.edges[once]
    dist = search.distance_m
    good = np.isfinite(dist[src]) & np.isfinite(dist[dst])
    owner = np.where(dist[src] <= dist[dst], search.target[src], search.target[dst])[good]
    pieces = gpd.GeoDataFrame(
        {"target": owner, "length": net.length_m[edge[good]]},
        geometry=shapely.buffer(net.lines[edge[good]], buffer_m),
        crs=net.crs,
    )
    return _area_frame(facilities, pieces, found.usable, net.crs)


def _area_frame(
    facilities: gpd.GeoDataFrame, pieces: gpd.GeoDataFrame, usable: np.ndarray, crs: CRS
) -> gpd.GeoDataFrame:
    geoms = np.full(len(facilities), shapely.Polygon(), dtype=object)
    length = np.zeros(len(facilities))
    if len(pieces):
        merged = pieces.dissolve(by="target", aggfunc={"length": "sum"})
        pos = usable[merged.index.to_numpy()]
        geoms[pos], length[pos] = merged.geometry.to_numpy(), merged["length"].to_numpy()
    ok = np.zeros(len(facilities), dtype=bool)
    ok[usable] = True
    out = gpd.GeoDataFrame(
        {"usable": ok, "street_length_m": length, "area_m2": shapely.area(geoms)},
        geometry=gpd.GeoSeries(geoms, crs=crs),
        crs=crs,
    )
    out = to_crs(out, facilities.crs, name="service areas")
    out.index = facilities.index
    return out


@dataclass(frozen=True)
class AccessLoss:
    """Walking access to the nearest facility before and during a hazard (see :func:`access_loss`).

    ``buildings``: per building (index kept, its CRS) ``facility_before``, ``walk_time_before_s``,
    ``facility_during``, ``walk_time_during_s`` (seconds; NaN when none is reachable),
    ``access_before``, ``access_during`` (within ``max_time_s``) and ``loses_access``.
    ``summary``: JSON-ready totals (buildings and, with a population field, people).
    """

    buildings: gpd.GeoDataFrame
    summary: dict[str, Any]


def access_loss(
    buildings: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    streets: Streets,
    hazard: gpd.GeoDataFrame | HazardCut | None,
    *,
    max_time_s: float,
    population_field: str | None = None,
    speed_mps: float = WALK_SPEED_MPS,
    min_rank: int = DEFAULT_MIN_RANK,
) -> AccessLoss:
    """Which buildings (and people) lose walking access to a facility (e.g. health) within ``max_time_s`` seconds.

    Two runs of the :func:`nearest_shelter` search (facilities as targets, no routes): without
    the hazard and with its streets and facilities closed from rank ``min_rank``. A building
    *loses access* when it reaches a facility within ``max_time_s`` before and not during.
    ``speed_mps`` in m/s; ``population_field`` a column of ``buildings`` (people per building).
    """
    _check_frames(buildings=buildings, facilities=facilities)
    _check_targets(facilities, what="facilities")
    _check_speed(speed_mps, max_time_s)
    people = _people(buildings, population_field)
    net = street_network(streets)
    out = gpd.GeoDataFrame(index=buildings.index, geometry=buildings.geometry, crs=buildings.crs)
    for when, cut in (("before", None), ("during", as_cut(hazard, min_rank))):
        found = nearest(net, buildings, facilities, cut, np.inf)
        walk_m = found.access_m + found.network_m + found.egress_m
        out[f"facility_{when}"] = pd.Series(_labels(facilities.index, found.facility), index=out.index, dtype="object")
        out[f"walk_time_{when}_s"] = walk_m / speed_mps
        out[f"access_{when}"] = out[f"walk_time_{when}_s"].le(max_time_s).to_numpy()
    out["loses_access"] = out["access_before"] & ~out["access_during"]
    summary: dict[str, Any] = {
        "max_time_s": float(max_time_s),
        "buildings": len(out),
        "buildings_with_access_before": int(out["access_before"].sum()),
        "buildings_with_access_during": int(out["access_during"].sum()),
        "buildings_losing_access": int(out["loses_access"].sum()),
        "people": None if people is None else float(people.sum()),
        "people_losing_access": None if people is None else float(people[out["loses_access"].to_numpy()].sum()),
    }
    log.info("access loss within %.0f s: %d of %d buildings", max_time_s, summary["buildings_losing_access"], len(out))
    return AccessLoss(buildings=out, summary=summary)
