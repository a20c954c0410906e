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

**Graph.** The osmnx MultiDiGraph (or its edges GeoDataFrame with ``u``/``v``) becomes one
sparse CSR matrix; parallel edges keep the shortest; weights are the edges' ``length``
(metres, osmnx's great-circle length) or, if absent, their planar length in the metric CRS.
Walking networks are two-way in osmnx; one-way edges are respected as given.

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

**Search.** One multi-source Dijkstra (:func:`scipy.sparse.csgraph.dijkstra`, ``min_only=True``)
on the reversed graph from every usable facility gives, for every node at once, the distance
to its nearest facility, the facility and the next node towards it; facilities are extra
graph nodes linked to their snapped node by their egress leg. Routes are read from the
predecessor array in lock-step for all requested buildings together.

**Walking speed.** Default 1.2 m/s (4.3 km/h): the Highway Capacity Manual (TRB, 2000) design
walking speed of 4.0 ft/s (1.22 m/s), lowered to 3.5 ft/s (1.07 m/s) by HCM 2010 and the MUTCD
(2009) to cover slower walkers; Fruin (1971, *Pedestrian Planning and Design*) measured a mean
free-flow speed near 1.35 m/s. People walk slower through water, at night, with children,
the elderly or people with disabilities: pass a lower ``speed_mps`` for those scenarios.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from civicmap.crs import local_metric_crs, parse_crs, require_crs, to_crs, to_wgs84
from civicmap.errors import CRSError, GeometryError, InputError
from civicmap.types import BBox

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
#: Default rank from which a hazard zone removes streets (0 = least severe class stays open).
DEFAULT_MIN_RANK = 1
#: Integer rank columns looked for, in order, when ``rank_field`` is not given; then ``impassable``.
RANK_FIELDS = ("hazard_level", "rank")
_IMPASSABLE = "impassable"
_UNSEEN = -9999  # scipy's "no predecessor"

Streets: TypeAlias = nx.MultiDiGraph | gpd.GeoDataFrame


@dataclass(frozen=True)
class HazardCut:
    """Which hazard zones close streets and facilities, and by which rule (see the module docstring).

    ``zones``: polygons in any CRS with an integer rank column (``rank_field``; by default the
    first of :data:`RANK_FIELDS` present) or a boolean ``impassable`` column. A zone closes
    streets when ``rank >= min_rank`` (or ``impassable`` is true; ``min_rank`` is then unused).
    ``min_share`` (0 <= x < 1): remove an edge only when more than this share of its length
    is inside closing zones; ``None`` (default) removes every edge that intersects one.
    """

    zones: gpd.GeoDataFrame
    min_rank: int = DEFAULT_MIN_RANK
    rank_field: str | None = None
    min_share: float | None = None
    column: str = field(default="", init=False)  # the rank or impassable column used, resolved on creation

    def __post_init__(self) -> None:
        if not isinstance(self.zones, gpd.GeoDataFrame):
            raise InputError(f"hazard zones must be a GeoDataFrame of polygons; got {type(self.zones).__name__}")
        require_crs(self.zones, name="hazard")
        problems = []
        name = self.rank_field or next((c for c in (*RANK_FIELDS, _IMPASSABLE) if c in self.zones.columns), None)
        if name is None or name not in self.zones.columns:
            wanted = repr(self.rank_field) if self.rank_field else f"one of {[*RANK_FIELDS, _IMPASSABLE]}"
            problems.append(f"hazard has no column {wanted}; its columns are {list(self.zones.columns)}")
        elif not (pd.api.types.is_bool_dtype(self.zones[name]) or pd.api.types.is_numeric_dtype(self.zones[name])):
            problems.append(f"hazard column {name!r} is {self.zones[name].dtype}; expected integer ranks or booleans")
        if self.min_share is not None and not 0 <= self.min_share < 1:
            problems.append(f"min_share {self.min_share} must lie in [0, 1) (or be None for the intersect rule)")
        if problems:
            raise InputError("; ".join(problems))
        object.__setattr__(self, "column", name)

    def closing(self, crs: CRS) -> np.ndarray:
        """The geometries of the zones that close streets, valid, in ``crs``."""
        values = self.zones[self.column]
        closes = values.fillna(False).astype(bool) if pd.api.types.is_bool_dtype(values) else values >= self.min_rank
        zones = self.zones.loc[closes.fillna(False).to_numpy()]
        zones = zones.loc[~(zones.geometry.isna() | zones.geometry.is_empty).to_numpy()]
        if zones.empty:
            return np.empty(0, dtype=object)
        return shapely.make_valid(to_crs(zones, crs, name="hazard").geometry.to_numpy())


def _as_cut(hazard: gpd.GeoDataFrame | HazardCut | None, min_rank: int) -> HazardCut | None:
    if hazard is None or isinstance(hazard, HazardCut):
        return hazard
    return HazardCut(hazard, min_rank=min_rank)


def _is_metric(crs: CRS) -> bool:
    unit = crs.axis_info[0].unit_name if crs.axis_info else ""
    return bool(crs.is_projected and unit in ("metre", "meter"))


def _metric_crs(gdf: gpd.GeoDataFrame) -> CRS:
    """The frame's CRS if it is metric, else the UTM zone of its bounds."""
    crs = require_crs(gdf, name="streets")
    if _is_metric(crs):
        return crs
    west, south, east, north = to_wgs84(gdf[[gdf.geometry.name]], name="streets").total_bounds
    return local_metric_crs(BBox(west, south, east, north))


def _touching(geoms: np.ndarray, zones: np.ndarray) -> np.ndarray:
    """Which ``geoms`` intersect any of ``zones`` (STRtree, vectorised)."""
    out = np.zeros(len(geoms), dtype=bool)
    if len(zones) and len(geoms):
        hit, _ = shapely.STRtree(zones).query(geoms, predicate="intersects")
        out[hit] = True
    return out


def _flooded(lines: np.ndarray, zones: np.ndarray, min_share: float | None) -> np.ndarray:
    """Boolean per line: removed by ``zones`` under the intersect rule or the share-of-length rule."""
    out = _touching(lines, zones)
    if min_share is None or not out.any():
        return out
    cand = np.flatnonzero(out)
    inside = shapely.length(shapely.intersection(lines[cand], shapely.union_all(zones)))
    out[cand] = inside / np.maximum(shapely.length(lines[cand]), 1e-12) > min_share
    return out


def flooded_edges(
    edges: gpd.GeoDataFrame, hazard: gpd.GeoDataFrame | HazardCut | None, *, min_rank: int = DEFAULT_MIN_RANK
) -> pd.Series:
    """Boolean Series (same index as ``edges``, name ``flooded``): the street edges the hazard removes.

    ``edges``: line geometries in any CRS (e.g. ``osmnx.graph_to_gdfs(G, nodes=False)``);
    ``hazard``: zones with a rank or ``impassable`` column, or a :class:`HazardCut` (which then
    carries its own ``min_rank``). Rule: intersects a zone with rank >= ``min_rank`` (see the
    module docstring). No hazard, or an empty one, floods nothing.
    """
    require_crs(edges, name="edges")
    cut = _as_cut(hazard, min_rank)
    if cut is None or edges.empty:
        return pd.Series(False, index=edges.index, name="flooded")
    crs = _metric_crs(edges)
    lines = to_crs(edges[[edges.geometry.name]], crs, name="edges").geometry.to_numpy()
    return pd.Series(_flooded(lines, cut.closing(crs), cut.min_share), index=edges.index, name="flooded")


@dataclass(frozen=True)
class _Network:
    """A street network as arrays in a metric CRS: nodes ``0..n-1``, directed edges ``u -> v``."""

    crs: CRS
    node_ids: pd.Index
    xy: np.ndarray
    u: np.ndarray
    v: np.ndarray
    length_m: np.ndarray
    lines: np.ndarray


def _network(streets: Streets) -> _Network:
    if isinstance(streets, nx.Graph):
        return _graph_network(streets)
    if isinstance(streets, gpd.GeoDataFrame):
        return _edges_network(streets)
    raise InputError(
        f"streets must be an osmnx-style networkx.MultiDiGraph or an edges GeoDataFrame; got {type(streets).__name__}"
    )


def _graph_network(graph: nx.MultiDiGraph) -> _Network:
    if graph.graph.get("crs") is None:
        raise CRSError("the street graph has no 'crs' graph attribute; set graph.graph['crs'] (osmnx graphs have one)")
    if graph.number_of_edges() == 0:
        raise InputError("the street graph has no edges; expected a walking network (read_osm(...).street_graph())")
    crs = parse_crs(graph.graph["crs"], what="street graph crs")
    try:
        ids, x, y = zip(*((n, d["x"], d["y"]) for n, d in graph.nodes(data=True)), strict=True)
    except KeyError as exc:
        raise InputError("every street graph node needs 'x' and 'y' attributes (osmnx graphs have them)") from exc
    index = pd.Index(ids)
    us, vs, data = zip(*graph.edges(data=True), strict=True)
    u, v = index.get_indexer(us), index.get_indexer(vs)
    xy = np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])
    lines = np.array([d.get("geometry") for d in data], dtype=object)
    missing = shapely.is_missing(lines)
    lines[missing] = shapely.linestrings(np.stack([xy[u[missing]], xy[v[missing]]], axis=1))
    nodes = gpd.GeoDataFrame(geometry=shapely.points(xy), crs=crs)
    metric = _metric_crs(nodes)
    lines = to_crs(gpd.GeoDataFrame(geometry=lines, crs=crs), metric, name="streets").geometry.to_numpy()
    xy_m = shapely.get_coordinates(to_crs(nodes, metric, name="streets").geometry.to_numpy())
    length = np.array([d.get("length", np.nan) for d in data], dtype=float)
    return _Network(metric, index, xy_m, u, v, np.where(np.isnan(length), shapely.length(lines), length), lines)


def _edges_network(edges: gpd.GeoDataFrame) -> _Network:
    require_crs(edges, name="streets")
    table = edges.reset_index() if {"u", "v"} <= set(edges.index.names) else edges
    if not {"u", "v"} <= set(table.columns) or table.empty:
        raise InputError(
            "the streets GeoDataFrame needs rows and 'u' and 'v' node columns (or index levels), as "
            "osmnx.graph_to_gdfs(G, nodes=False) gives"
        )
    metric = _metric_crs(table)
    lines = to_crs(table[[table.geometry.name]], metric, name="streets").geometry.to_numpy()
    ends = np.concatenate([table["u"].to_numpy(), table["v"].to_numpy()])
    points = np.concatenate([shapely.get_point(lines, 0), shapely.get_point(lines, -1)])
    index, first = np.unique(ends, return_index=True)
    index = pd.Index(index)
    length = table["length"].to_numpy(dtype=float) if "length" in table else np.full(len(table), np.nan)
    u, v = index.get_indexer(table["u"]), index.get_indexer(table["v"])
    xy = shapely.get_coordinates(points[first])
    return _Network(metric, index, xy, u, v, np.where(np.isnan(length), shapely.length(lines), length), lines)


@dataclass(frozen=True)
class _Search:
    """One multi-source Dijkstra on the reversed graph: for every node, its nearest source and the way there."""

    dist: np.ndarray  # metres from each node to its nearest source (inf: none within reach)
    pred: np.ndarray  # next node towards that source (_UNSEEN at a source or when unreached)
    origin: np.ndarray  # the source reached from each node, -1 if none
    keys: np.ndarray  # sorted ``src * size + dst`` of the kept (forward) edges
    edge_id: np.ndarray  # street edge of each key (-1: a facility link)


def _dijkstra(size: int, edges: Sequence[np.ndarray], sources: np.ndarray, limit_m: float) -> _Search:
    """Search from ``sources`` against the direction of ``edges`` = (src, dst, weight, street edge id)."""
    src, dst, weight, edge = edges
    order = np.lexsort((weight, dst, src))  # parallel edges: the shortest comes first and is kept
    key = src[order] * size + dst[order]
    first = np.r_[True, key[1:] != key[:-1]] & (src[order] != dst[order])
    keep = order[first]
    if not len(sources):
        return _Search(np.full(size, np.inf), np.full(size, _UNSEEN), np.full(size, -1), key[first], edge[keep])
    reverse = csr_matrix((weight[keep], (dst[keep], src[keep])), shape=(size, size))
    dist, pred, origin = dijkstra(
        reverse, directed=True, indices=sources, return_predecessors=True, min_only=True, limit=limit_m
    )
    return _Search(dist, pred, np.where(origin >= 0, origin, -1), key[first], edge[keep])


def _facility_search(
    net: _Network, dry: np.ndarray, target_node: np.ndarray, egress_m: np.ndarray, limit_m: float
) -> _Search:
    """Dry streets, with facility ``k`` as extra node ``n + k`` linked from its node by its egress leg."""
    n, k, edge = len(net.node_ids), len(target_node), np.flatnonzero(dry)
    targets = n + np.arange(k)
    edges = (
        np.concatenate([net.u[edge], target_node]),
        np.concatenate([net.v[edge], targets]),
        np.concatenate([net.length_m[edge], egress_m]),
        np.concatenate([edge, np.full(k, -1)]),
    )
    return _dijkstra(n + k, edges, targets, limit_m)


def _exit_search(net: _Network, flooded: np.ndarray, dry_node: np.ndarray) -> _Search:
    """Flooded streets only, from every node that has a dry street: the shortest way out of the water."""
    edge = np.flatnonzero(flooded)
    edges = (net.u[edge], net.v[edge], net.length_m[edge], edge)
    return _dijkstra(len(net.node_ids), edges, np.flatnonzero(dry_node), np.inf)


def _anchor_points(gdf: gpd.GeoDataFrame, crs: CRS, *, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Geometries and a point on each (its surface for polygons) in ``crs``; missing ones raise."""
    geoms = to_crs(gdf[[gdf.geometry.name]], crs, name=name).geometry.to_numpy()
    bad = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if bad.any():
        labels = list(gdf.index[bad][:5])
        raise GeometryError(
            f"{name}: {int(bad.sum())} rows have no geometry (index {labels}...); drop or fix them before routing"
        )
    return geoms, shapely.get_coordinates(shapely.point_on_surface(geoms))


def _snap(xy: np.ndarray, allowed: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest allowed node (index, -1 if none) and its straight distance in metres."""
    nodes = np.flatnonzero(allowed)
    if not len(nodes) or not len(points):
        return np.full(len(points), -1), np.full(len(points), np.nan)
    dist, pos = cKDTree(xy[nodes]).query(points)
    return nodes[pos], dist


@dataclass(frozen=True)
class _Nearest:
    """Per building (arrays in building order) the walk to the nearest facility, and what routes need."""

    node: np.ndarray  # snapped node
    exit: np.ndarray  # first node with a dry street (the node itself unless it starts in the water; -1: none)
    inside: np.ndarray
    access_m: np.ndarray
    network_m: np.ndarray
    egress_m: np.ndarray
    facility: np.ndarray  # position in the facilities frame, -1 if none reachable
    usable: np.ndarray  # facility position of each search target
    search: _Search
    way_out: _Search | None
    points: np.ndarray
    facility_points: np.ndarray

    @property
    def wet(self) -> np.ndarray:
        """Buildings whose node has only flooded streets."""
        return self.exit != self.node


def _facility_targets(
    net: _Network, facilities: gpd.GeoDataFrame, zones: np.ndarray, dry_node: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Usable facility positions, their snapped nodes, egress legs (m) and all facility points."""
    geoms, xy = _anchor_points(facilities, net.crs, name="facilities")
    usable = np.flatnonzero(~_touching(geoms, zones))
    if len(usable) < len(facilities):
        log.info(
            "%d of %d facilities lie in closing hazard zones: not used", len(facilities) - len(usable), len(facilities)
        )
    node, egress = _snap(net.xy, dry_node, xy[usable])
    ok = node >= 0
    return usable[ok], node[ok], egress[ok], xy


def _nearest(
    net: _Network, buildings: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame, cut: HazardCut | None, limit_m: float
) -> _Nearest:
    n = len(net.node_ids)
    zones = cut.closing(net.crs) if cut is not None else np.empty(0, dtype=object)
    flooded = _flooded(net.lines, zones, None if cut is None else cut.min_share)
    dry_node = np.zeros(n, dtype=bool)
    dry_node[np.concatenate([net.u[~flooded], net.v[~flooded]])] = True
    usable, f_node, f_egress, f_xy = _facility_targets(net, facilities, zones, dry_node)
    search = _facility_search(net, ~flooded, f_node, f_egress, limit_m)
    b_geoms, b_xy = _anchor_points(buildings, net.crs, name="buildings")
    node, access = _snap(net.xy, np.ones(n, dtype=bool), b_xy)
    exit_, way_out = node.copy(), None
    if (~dry_node[node]).any():  # all streets at the node flooded: leave the water by the shortest way
        way_out = _exit_search(net, flooded, dry_node)
        exit_ = np.where(dry_node[node], node, way_out.origin[node])
    wade = np.where(exit_ == node, 0.0, way_out.dist[node] if way_out is not None else 0.0)
    target = np.append(np.where(search.origin >= n, search.origin - n, -1), -1)[exit_]  # exit -1 reads the last -1
    egress = np.append(f_egress, np.nan)[target]  # target -1 reads the appended NaN
    network = np.where(target >= 0, wade + np.append(search.dist, np.inf)[exit_], np.nan) - egress
    facility = np.append(usable, -1)[target]
    inside = _touching(b_geoms, zones)
    return _Nearest(node, exit_, inside, access, network, egress, facility, usable, search, way_out, b_xy, f_xy)


def _ragged(offsets: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Flat positions of the blocks ``[offsets[i], offsets[i] + counts[i])`` one after another."""
    shift = np.repeat(offsets - np.cumsum(counts) + counts, counts)
    return shift + np.arange(int(counts.sum()))


def _paths(search: _Search, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(path number, node) of every node on the paths from ``starts`` to their target, in walking order."""
    owner, node = np.arange(len(starts)), starts
    owners, nodes = [owner], [node]
    while len(node):
        nxt = search.pred[node]
        keep = nxt != _UNSEEN
        owner, node = owner[keep], nxt[keep]
        owners.append(owner)
        nodes.append(node)
    owner_all, node_all = np.concatenate(owners), np.concatenate(nodes)
    order = np.argsort(owner_all, kind="stable")
    return owner_all[order], node_all[order]


def _street_vertices(net: _Network, search: _Search, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of each start's path in ``search`` (its node, then its edges' vertices), concatenated, and counts."""
    owner, node = _paths(search, starts)
    step = np.flatnonzero(owner[:-1] == owner[1:])
    pos = np.searchsorted(search.keys, node[step] * len(search.dist) + node[step + 1])
    edge = search.edge_id[pos]  # every predecessor step is a kept edge
    step, edge = step[edge >= 0], edge[edge >= 0]  # the facility link has no geometry
    ncoord = shapely.get_num_coordinates(net.lines)
    offset = np.r_[0, np.cumsum(ncoord)[:-1]]
    coords = shapely.get_coordinates(net.lines)[_ragged(offset[edge], ncoord[edge])]
    xy = np.concatenate([net.xy[starts], coords])
    who = np.concatenate([np.arange(len(starts)), np.repeat(owner[step], ncoord[edge])])
    order = np.argsort(who, kind="stable")
    return xy[order], np.bincount(who, minlength=len(starts))


def _walk_vertices(net: _Network, search: _Search, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(walker number, vertex) of every walker's path in ``search``; walkers sharing a start share its path."""
    unique, back = np.unique(starts, return_inverse=True)
    xy, counts = _street_vertices(net, search, unique)
    per = counts[back]
    return np.repeat(np.arange(len(starts)), per), xy[_ragged(np.r_[0, np.cumsum(counts)[:-1]][back], per)]


def _route_lines(net: _Network, found: _Nearest, which: np.ndarray) -> np.ndarray:
    """LineStrings building -> node -> (way out of the water) -> streets -> facility, metric CRS, for ``which``."""
    ids = np.arange(len(which))
    blocks = [(ids, found.points[which])]
    wet = found.wet[which]
    if wet.any() and found.way_out is not None:
        walker, xy = _walk_vertices(net, found.way_out, found.node[which][wet])
        blocks.append((ids[wet][walker], xy))
    blocks.append(_walk_vertices(net, found.search, found.exit[which]))
    blocks.append((ids, found.facility_points[found.facility[which]]))
    owner, xy = np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])
    order = np.argsort(owner, kind="stable")  # per building: the blocks in order, each in walking order
    owner, xy = owner[order], xy[order]
    return _without_repeats(xy, owner)


def _without_repeats(xy: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """LineStrings from vertices grouped by ``owner``, dropping repeated consecutive vertices (>= 2 kept)."""
    first = np.r_[True, owner[1:] != owner[:-1]]
    last = np.r_[owner[1:] != owner[:-1], True]
    same = ~first & np.r_[False, (xy[1:] == xy[:-1]).all(axis=1)]
    drop = same & ~last
    before_last = np.flatnonzero(same & last) - 1  # a repeated end point replaces the vertex before it
    drop[before_last[~first[before_last]]] = True
    return shapely.linestrings(xy[~drop], indices=owner[~drop])


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
    net = _network(streets)
    found = _nearest(net, buildings, shelters, _as_cut(hazard, min_rank), np.inf)
    out = _result_frame(buildings, shelters, net, found, speed_mps)
    out["reachable"] = out["walk_time_s"].le(np.inf if max_time_s is None else max_time_s).to_numpy()
    want = _want_routes(with_routes, buildings) & (found.facility >= 0)
    if not (isinstance(with_routes, bool | np.bool_) and not with_routes):
        routes = np.full(len(buildings), None, dtype=object)
        if want.any():
            routes[want] = _route_lines(net, found, np.flatnonzero(want))
        frame = gpd.GeoDataFrame(geometry=gpd.GeoSeries(routes, crs=net.crs))
        out["route"] = gpd.GeoSeries(
            to_crs(frame, buildings.crs, name="routes").geometry.to_numpy(), index=out.index, crs=buildings.crs
        )
    log.info(
        "nearest shelter: %d buildings, %d shelters, %d reachable", len(out), len(shelters), int(out["reachable"].sum())
    )
    return out


def _result_frame(
    buildings: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame, net: _Network, found: _Nearest, speed_mps: float
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
    net = _network(streets)
    found = _nearest(net, facilities.iloc[:0], facilities, _as_cut(hazard, min_rank), max_time_s * speed_mps)
    search, n, size = found.search, len(net.node_ids), len(found.search.dist)
    street = search.edge_id >= 0
    src, dst = np.divmod(search.keys[street], size)
    pair = np.minimum(src, dst) * size + np.maximum(src, dst)
    _, once = np.unique(pair, return_index=True)  # one of the two directions of a two-way street
    src, dst, edge = src[once], dst[once], search.edge_id[street][once]
    dist = search.dist[:n]
    good = np.isfinite(dist[src]) & np.isfinite(dist[dst])
    owner = np.where(dist[src] <= dist[dst], search.origin[src], search.origin[dst])[good] - n
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
    net = _network(streets)
    out = gpd.GeoDataFrame(index=buildings.index, geometry=buildings.geometry, crs=buildings.crs)
    for when, cut in (("before", None), ("during", _as_cut(hazard, min_rank))):
        found = _nearest(net, buildings, facilities, cut, np.inf)
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
