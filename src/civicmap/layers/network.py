"""Walking distance on the street network from many points to the nearest of a set of targets.

The one place in civicmap that walks street networks: the evacuation layers
(:mod:`civicmap.layers.risk.evacuation`: shelters, health access, service areas), settlement
service access (:mod:`civicmap.layers.settlements.access`) and transit stop coverage
(:mod:`civicmap.layers.transit.coverage`) all build on it.

Units and CRS
-------------
Lengths and distances are metres (``*_m``). Everything runs in the metric CRS of the
:class:`StreetNetwork` (``network.crs``): the ``crs`` given to :func:`street_network`, else the
streets' own CRS when it is projected in metres, else the UTM zone of their bounds
(:func:`civicmap.crs.metric_crs`). Coordinates given to
:func:`snap_to_nodes` and :func:`nearest_walk` are ``(m, 2)`` arrays **in that CRS**:
reproject first with :func:`civicmap.crs.to_crs`. Geometries come back in it too.

Method
------
1. :func:`street_network` turns an osmnx MultiDiGraph (node ``x``/``y`` in its graph ``crs``)
   or an edges GeoDataFrame with ``u``/``v`` columns or index levels (as
   ``osmnx.graph_to_gdfs(G, nodes=False)`` gives and the workspace stores in layer
   ``streets_walk_edges``) into arrays: nodes ``0..n-1`` with metric ``xy`` and directed edges
   ``u -> v`` with ``length_m`` and a metric line each.
2. :func:`snap_to_nodes`: the nearest node of each point (``scipy.spatial.cKDTree``), optionally
   among allowed nodes only, and the straight *snap leg* to it.
3. :func:`search_targets`: target ``k`` becomes an extra vertex ``n + k``, joined from its node by
   its leg. One :func:`scipy.sparse.csgraph.dijkstra` run with ``min_only=True`` on the
   reversed graph, from every target at once, gives for every node the distance to its nearest
   target, which target that is and, when asked, the next node towards it (read routes with
   :func:`path_vertices`).
4. :func:`nearest_walk` composes them for points: ``distance_m = access_m + network_m +
   egress_m`` (origin -> its node, along the streets, target node -> target).

Choices, where the three former copies differed (defaults first)
----------------------------------------------------------------
* **Direction**: the walk goes *from* each origin *to* the target (reversed graph), so one-way
  edges are respected as a walker meets them. Settlement access and transit coverage used to
  search outward from the facilities; on walking graphs, which osmnx makes two-way, this is
  the same number.
* **Snap legs**: both count (all three callers counted them). ``search_targets(...,
  target_leg_m=None)`` treats targets as sitting on their nodes (evacuation's way out of the
  water starts at nodes, not points).
* **Parallel edges** keep the shortest (all three did; scipy alone would add them up);
  self-loops are dropped.
* **Edges without ``length``** are measured as the planar length of their geometry (else of the
  straight node-to-node segment) in the metric CRS. Settlement access measured the straight
  segment; transit coverage dropped such edges, silently losing streets.
* **Zero-length legs and edges stay 0 m**: scipy's Dijkstra treats explicit zeros stored in a
  CSR matrix as edges. Settlement access padded them to 1e-6 m and transit to 1e-9 m because
  they added sparse matrices, which drops zeros.
* **Closed edges**: ``edge_mask`` (True = walkable; evacuation passes the edges a hazard does
  not flood). **Reach**: ``limit_m`` (target leg included) stops the search early; nodes
  beyond it are unreached (transit's maximum walk, evacuation's service areas).
* **Unreached** nodes and origins get distance ``inf`` and target ``-1``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from functools import cached_property
from typing import NamedTuple, TypeAlias

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from civicmap.crs import is_metric, metric_crs, parse_crs, require_crs, to_crs
from civicmap.errors import CRSError, InputError

__all__ = [
    "NO_PREDECESSOR",
    "NearestWalk",
    "Snap",
    "StreetNetwork",
    "Streets",
    "TargetSearch",
    "nearest_walk",
    "path_vertices",
    "search_targets",
    "snap_to_nodes",
    "street_network",
]

log = logging.getLogger(__name__)

#: Predecessor value of a target vertex and of unreached nodes (scipy's own marker).
NO_PREDECESSOR = -9999

#: What :func:`street_network` accepts: an osmnx-style MultiDiGraph or its edges GeoDataFrame.
Streets: TypeAlias = nx.MultiDiGraph | gpd.GeoDataFrame


@dataclass(frozen=True, eq=False)
class StreetNetwork:
    """A street network as arrays in the metric CRS ``crs``: nodes ``0..n-1``, directed edges ``u -> v``.

    ``node_ids``: the original node ids (osmnx ids) at positions ``0..n-1``; ``xy``: ``(n, 2)``
    node coordinates (metres); ``u``, ``v``: node positions of each edge; ``length_m``: edge
    lengths (metres); ``source_lines``: edge geometries as given (None where a graph edge has
    none) in ``source_crs``. Use :attr:`lines` for them in ``crs``: they are reprojected on
    first use only, as distances alone do not need them.
    """

    crs: CRS
    node_ids: pd.Index
    xy: np.ndarray
    u: np.ndarray
    v: np.ndarray
    length_m: np.ndarray
    source_lines: np.ndarray
    source_crs: CRS

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.node_ids)

    @cached_property
    def lines(self) -> np.ndarray:
        """Edge LineStrings in ``crs``, drawn from ``u`` to ``v`` (straight where the graph has no geometry)."""
        lines = self.source_lines.copy()
        missing = shapely.is_missing(lines)
        if not self.source_crs.equals(self.crs):
            frame = gpd.GeoDataFrame(geometry=gpd.GeoSeries(lines[~missing], crs=self.source_crs))
            lines[~missing] = to_crs(frame, self.crs, name="streets").geometry.to_numpy()
        lines[missing] = shapely.linestrings(np.stack([self.xy[self.u[missing]], self.xy[self.v[missing]]], axis=1))
        return lines

    @cached_property
    def kdtree(self) -> cKDTree:
        """KD-tree of all node positions (built once, on first use)."""
        return cKDTree(self.xy)


class Snap(NamedTuple):
    """Nearest node of each point (position, ``-1`` if none) and the straight leg to it (metres, NaN if none)."""

    node: np.ndarray
    distance_m: np.ndarray


def street_network(streets: Streets, *, crs: CRS | str | int | None = None) -> StreetNetwork:
    """The street network as arrays in a metric CRS (see the module docstring).

    ``streets``: an osmnx-style MultiDiGraph (graph attribute ``crs``, node ``x``/``y``, edge
    ``length`` in metres and optional ``geometry``) or an edges GeoDataFrame in any CRS with
    ``u``/``v`` node columns (or index levels) and optional ``length`` (metres). ``crs``: the
    metric CRS to compute in (e.g. the workspace's); by default the streets' own if metric,
    else their local UTM zone. Edge ``length`` is used as given; missing lengths are measured.
    """
    metric = None if crs is None else parse_crs(crs, what="network crs")
    if metric is not None and not is_metric(metric):
        raise CRSError(f"network crs {metric.to_string()} is not projected in metres; give e.g. the local UTM zone")
    if isinstance(streets, nx.Graph):
        return _from_graph(streets, metric)
    if isinstance(streets, gpd.GeoDataFrame):
        return _from_edges(streets, metric)
    raise InputError(
        f"streets must be an osmnx-style networkx.MultiDiGraph or an edges GeoDataFrame; got {type(streets).__name__}"
    )


def _from_graph(graph: nx.MultiDiGraph, metric: CRS | None) -> StreetNetwork:
    if graph.graph.get("crs") is None:
        raise CRSError("the street graph has no 'crs' graph attribute; set graph.graph['crs'] (osmnx graphs have one)")
    if next(iter(graph.edges), None) is None:
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
    nodes = gpd.GeoDataFrame(geometry=shapely.points(xy), crs=crs)
    metric = metric or metric_crs(nodes, name="streets")
    xy_m = shapely.get_coordinates(to_crs(nodes, metric, name="streets").geometry.to_numpy())
    length = np.array([d.get("length", np.nan) for d in data], dtype=float)
    network = StreetNetwork(metric, index, xy_m, u, v, length, lines, crs)
    if np.isnan(length).any():  # measure the edges without a length, in metres
        lines_m = network.lines
        network = replace(network, length_m=_measured(length, lines_m), source_lines=lines_m, source_crs=metric)
    return network


def _from_edges(edges: gpd.GeoDataFrame, metric: CRS | None) -> StreetNetwork:
    require_crs(edges, name="streets")
    table = edges.reset_index() if {"u", "v"} <= set(edges.index.names) else edges
    if not {"u", "v"} <= set(table.columns) or table.empty:
        raise InputError(
            "the streets GeoDataFrame needs rows and 'u' and 'v' node columns (or index levels), as "
            "osmnx.graph_to_gdfs(G, nodes=False) gives"
        )
    metric = metric or metric_crs(table, name="streets")
    lines = to_crs(table[[table.geometry.name]], metric, name="streets").geometry.to_numpy()
    ends = np.concatenate([table["u"].to_numpy(), table["v"].to_numpy()])
    points = np.concatenate([shapely.get_point(lines, 0), shapely.get_point(lines, -1)])
    ids, first = np.unique(ends, return_index=True)
    index = pd.Index(ids)
    length = table["length"].to_numpy(dtype=float) if "length" in table else np.full(len(table), np.nan)
    u, v = index.get_indexer(table["u"]), index.get_indexer(table["v"])
    xy = shapely.get_coordinates(points[first])
    return StreetNetwork(metric, index, xy, u, v, _measured(length, lines), lines, metric)


def _measured(length: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Given lengths (m), with the planar length of the line where one is missing."""
    return np.where(np.isnan(length), shapely.length(lines), length)


def snap_to_nodes(network: StreetNetwork, xy: np.ndarray, *, allowed: np.ndarray | None = None) -> Snap:
    """Nearest node of each point and the straight distance to it (metres).

    ``xy``: ``(m, 2)`` coordinates in ``network.crs``. ``allowed``: boolean per node; only
    those nodes are candidates (e.g. nodes that still have an open street). Where no node is
    allowed the node is ``-1`` and the distance NaN.
    """
    points = np.asarray(xy, dtype=float).reshape(-1, 2)
    if allowed is None:
        if not len(points):
            return Snap(np.empty(0, dtype=np.intp), np.empty(0))
        dist, node = network.kdtree.query(points)
        return Snap(np.asarray(node, dtype=np.intp), np.asarray(dist, dtype=float))
    nodes = np.flatnonzero(allowed)
    if not len(nodes) or not len(points):
        return Snap(np.full(len(points), -1, dtype=np.intp), np.full(len(points), np.nan))
    dist, pos = cKDTree(network.xy[nodes]).query(points)
    return Snap(nodes[pos], np.asarray(dist, dtype=float))


@dataclass(frozen=True, eq=False)
class TargetSearch:
    """For every node of a network, the walk to its nearest target (result of :func:`search_targets`).

    ``distance_m``: ``(n,)`` metres from each node to its nearest target, the target leg
    included (``inf``: not reached). ``target``: ``(n,)`` position of that target (``-1``).
    ``predecessor``: ``(n + k,)`` the next vertex towards the target (``n + j`` is target
    ``j``'s own vertex; :data:`NO_PREDECESSOR` at targets and unreached nodes), or None when
    not asked. ``edges``: the street edges searched: one per directed node pair (the
    shortest), open ones only, sorted by ``(u, v)``.
    """

    distance_m: np.ndarray
    target: np.ndarray
    predecessor: np.ndarray | None
    edges: np.ndarray


def search_targets(
    network: StreetNetwork,
    target_node: np.ndarray,
    *,
    target_leg_m: np.ndarray | None = None,
    edge_mask: np.ndarray | None = None,
    limit_m: float = np.inf,
    predecessors: bool = False,
) -> TargetSearch:
    """One multi-source Dijkstra: for every node, the distance (m) to the nearest target and which one.

    ``target_node``: node position of each target (``-1``: never reached, e.g. no node to snap
    to). ``target_leg_m``: metres from that node to each target (its snap leg); None: targets
    sit on their nodes. ``edge_mask``: boolean per edge, True = walkable (default all).
    ``limit_m``: stop at this distance (target leg included). ``predecessors``: keep the next
    node towards the target, for :func:`path_vertices`. See the module docstring.
    """
    n, targets = network.n_nodes, np.asarray(target_node, dtype=np.intp)
    k = len(targets)
    legs = np.zeros(k) if target_leg_m is None else np.asarray(target_leg_m, dtype=float)
    if legs.shape != (k,) or (k and (targets.max() >= n or targets.min() < -1)):
        raise InputError(f"target_node ({k} values in -1..{n - 1}) and target_leg_m ({legs.shape}) must match")
    if not (legs[targets >= 0] >= 0).all():  # also catches NaN
        raise InputError(
            "target_leg_m must be metres >= 0 for every target with a node (NaN only where the node is -1)"
        )
    edges = _open_edges(network, edge_mask)
    if not k:
        pred = np.full(n, NO_PREDECESSOR) if predecessors else None
        return TargetSearch(np.full(n, np.inf), np.full(n, -1), pred, edges)
    link = np.flatnonzero(targets >= 0)
    rows = np.concatenate([network.v[edges], n + link])  # reversed: walking u -> v is searched from v
    cols = np.concatenate([network.u[edges], targets[link]])
    weight = np.concatenate([network.length_m[edges], legs[link]])
    reverse = csr_matrix((weight, (rows, cols)), shape=(n + k, n + k))
    dist, pred, origin = dijkstra(  # scipy gives the sources (origin) only with the predecessors
        reverse, directed=True, indices=n + np.arange(k), return_predecessors=True, min_only=True, limit=limit_m
    )
    target = np.where(origin[:n] >= n, origin[:n] - n, -1)
    return TargetSearch(dist[:n], target, pred if predecessors else None, edges)


def _open_edges(network: StreetNetwork, edge_mask: np.ndarray | None) -> np.ndarray:
    """Open edges, the shortest of each directed node pair, no self-loops, sorted by (u, v)."""
    if edge_mask is None:
        edge = np.arange(len(network.u))
    else:
        mask = np.asarray(edge_mask)
        if mask.shape != network.u.shape or mask.dtype != bool:
            raise InputError(
                f"edge_mask must be one boolean per edge ({len(network.u)}); got {mask.dtype} {mask.shape}"
            )
        edge = np.flatnonzero(mask)
    u, v = network.u[edge], network.v[edge]
    order = np.lexsort((network.length_m[edge], v, u))  # parallel edges: the shortest comes first and is kept
    key = u[order] * network.n_nodes + v[order]
    first = np.r_[True, key[1:] != key[:-1]] & (u[order] != v[order])
    return edge[order[first]]


@dataclass(frozen=True, eq=False)
class NearestWalk:
    """Per origin (arrays in origin order): the walk to its nearest target (result of :func:`nearest_walk`).

    ``node``: snapped node; ``target``: position of the nearest reached target (``-1``: none);
    ``access_m`` (origin -> node), ``network_m`` (along the streets), ``egress_m`` (target node
    -> target) and ``distance_m`` (their sum; ``inf`` when no target is reached), all metres.
    ``search``: the node-level :class:`TargetSearch`; ``target_snap``: the targets' :class:`Snap`.
    """

    node: np.ndarray
    target: np.ndarray
    access_m: np.ndarray
    network_m: np.ndarray
    egress_m: np.ndarray
    distance_m: np.ndarray
    search: TargetSearch
    target_snap: Snap


def nearest_walk(
    network: StreetNetwork,
    origin_xy: np.ndarray,
    target_xy: np.ndarray,
    *,
    target_nodes: np.ndarray | None = None,
    edge_mask: np.ndarray | None = None,
    limit_m: float = np.inf,
    predecessors: bool = False,
) -> NearestWalk:
    """Walking distance (m) from every origin point to its nearest target point, snap legs at both ends included.

    ``origin_xy``, ``target_xy``: ``(m, 2)`` and ``(k, 2)`` coordinates in ``network.crs``.
    Origins snap to their nearest node; targets to their nearest node among ``target_nodes``
    (boolean per node; default all). ``edge_mask``, ``limit_m``, ``predecessors``: as in
    :func:`search_targets`. An origin whose walk exceeds ``limit_m`` only through its own
    access leg still counts as reached: compare ``distance_m`` with the limit if that matters.
    """
    origins = snap_to_nodes(network, origin_xy)
    snap = snap_to_nodes(network, target_xy, allowed=target_nodes)
    search = search_targets(
        network,
        snap.node,
        target_leg_m=snap.distance_m,
        edge_mask=edge_mask,
        limit_m=limit_m,
        predecessors=predecessors,
    )
    node_m, target = search.distance_m[origins.node], search.target[origins.node]
    egress = np.append(snap.distance_m, np.nan)[target]  # target -1 reads the appended NaN
    reached = target >= 0
    return NearestWalk(
        node=origins.node,
        target=target,
        access_m=origins.distance_m,
        network_m=np.where(reached, node_m - egress, np.nan),
        egress_m=egress,
        distance_m=np.where(reached, origins.distance_m + node_m, np.inf),
        search=search,
        target_snap=snap,
    )


def path_vertices(
    network: StreetNetwork, search: TargetSearch, start_node: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the walk from each start node to its target: ``(owner, xy)``, grouped by owner, in walking order.

    ``owner[i]`` is the position in ``start_node`` the vertex ``xy[i]`` (metres, ``network.crs``)
    belongs to: the start node itself, then every vertex of the street edges followed (the
    target leg is not drawn). ``search`` must come from ``search_targets(..., predecessors=True)``.
    Starts that share a node share its path; the predecessor walks run in lock-step for all.
    """
    if search.predecessor is None:
        raise InputError("path_vertices needs a search run with predecessors=True")
    starts = np.asarray(start_node, dtype=np.intp)
    unique, back = np.unique(starts, return_inverse=True)
    xy, counts = _street_vertices(network, search, unique)
    per = counts[back]
    offsets = np.r_[0, np.cumsum(counts)[:-1]][back]
    return np.repeat(np.arange(len(starts)), per), xy[_ragged(offsets, per)]


def _ragged(offsets: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Flat positions of the blocks ``[offsets[i], offsets[i] + counts[i])`` one after another."""
    shift = np.repeat(offsets - np.cumsum(counts) + counts, counts)
    return shift + np.arange(int(counts.sum()))


def _paths(pred: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(path number, vertex) of every vertex on the paths from ``starts`` to their target, in walking order."""
    owner, node = np.arange(len(starts)), starts
    owners, nodes = [owner], [node]
    while len(node):
        nxt = pred[node]
        keep = nxt != NO_PREDECESSOR
        owner, node = owner[keep], nxt[keep]
        owners.append(owner)
        nodes.append(node)
    owner_all, node_all = np.concatenate(owners), np.concatenate(nodes)
    order = np.argsort(owner_all, kind="stable")
    return owner_all[order], node_all[order]


def _street_vertices(network: StreetNetwork, search: TargetSearch, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of each start's path (its node, then its edges' vertices), concatenated, and their counts."""
    assert search.predecessor is not None
    n = network.n_nodes
    owner, node = _paths(search.predecessor, starts)
    step = np.flatnonzero((owner[:-1] == owner[1:]) & (node[1:] < n))  # the step onto a target vertex is its leg
    keys = network.u[search.edges] * n + network.v[search.edges]  # sorted: edges are sorted by (u, v)
    edge = search.edges[np.searchsorted(keys, node[step] * n + node[step + 1])]
    ncoord = shapely.get_num_coordinates(network.lines)
    offset = np.r_[0, np.cumsum(ncoord)[:-1]]
    coords = shapely.get_coordinates(network.lines)[_ragged(offset[edge], ncoord[edge])]
    xy = np.concatenate([network.xy[starts], coords])
    who = np.concatenate([np.arange(len(starts)), np.repeat(owner[step], ncoord[edge])])
    order = np.argsort(who, kind="stable")
    return xy[order], np.bincount(who, minlength=len(starts))
