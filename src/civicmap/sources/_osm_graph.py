"""Street segments from highway ways, and osmnx-compatible graphs built from them.

The rules are osmnx's own, read from osmnx at run time or reproduced on arrays, so that
the two agree (tests compare every node, edge, key and attribute with osmnx's functions):

- which ways belong to a network type: the Overpass filter osmnx sends for it
  (``osmnx._overpass._get_network_filter``), evaluated here on the ways' tags with the
  same semantics as Overpass (``["k"]`` key present; ``["k"!~"re"]`` key absent or value
  not matching the unanchored regex);
- one-way handling (``oneway`` in yes/true/1/-1/reverse/T/F or ``junction=roundabout``,
  reversed for -1/reverse/T), with every edge two-way for the network types in
  ``osmnx.settings.bidirectional_network_types`` (walking);
- edge lengths with ``osmnx.distance.great_circle`` (metres), the largest weakly connected
  component, ``osmnx.simplify_graph`` (strict endpoints, merged attributes, path
  geometries, isolated rings removed) and ``osmnx.stats.count_streets_per_node`` for
  ``street_count``, all computed on numpy arrays.

Ways are split at every node into segments, in bulk with numpy. Python loops remain only
where networkx needs one dict per edge and where a simplified path is walked node by node
(osmnx's order of paths decides edge keys, so it is kept).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from itertools import chain, pairwise
from typing import TypeAlias

import geopandas as gpd
import networkx as nx
import numpy as np
import osmnx as ox
import pandas as pd
import shapely
from osmnx import _overpass

from civicmap.errors import InputError
from civicmap.sources._osm_frames import tag_table
from civicmap.sources._osm_scan import GRAPH_NODE_TAGS, GRAPH_WAY_TAGS

__all__ = ["NETWORK_TYPES", "build_street_graph", "street_frames"]

log = logging.getLogger(__name__)

CRS = "EPSG:4326"
NETWORK_TYPES = ("all", "all_public", "bike", "drive", "drive_service", "walk")
_ONEWAY_VALUES = frozenset({"yes", "true", "1", "-1", "reverse", "T", "F"})
_REVERSED_VALUES = frozenset({"-1", "reverse", "T"})
_Edge: TypeAlias = tuple[int, int, int, dict[str, object]]
_CLAUSE = re.compile(r'\["([^"]+)"(?:(!~|~|!=|=)"([^"]*)")?\]')


def street_frames(
    way_ids: Sequence[int],
    way_nodes: Sequence[Sequence[int]],
    way_tags: Sequence[tuple[str | None, ...]],
    way_wkb: Sequence[bytes],
    node_tags: dict[int, tuple[str | None, ...]],
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Nodes and two-point segments of every highway way (unfiltered, undirected, unsimplified).

    ``street_edges`` has one row per segment between consecutive nodes of a way (index
    ``osm_id`` of the way, so it repeats), columns ``u``, ``v``, ``osmid`` (way id, int),
    ``seq`` (segment number along the way) and the way's tags. ``street_nodes`` has one
    row per node used (index ``osm_id`` like ``"n6"``), ``osmid``, ``x`` (lon), ``y`` (lat).
    """
    lines = shapely.from_wkb(np.asarray(way_wkb, dtype=object))
    coords = shapely.get_coordinates(lines)
    lengths = np.fromiter((len(n) for n in way_nodes), dtype=np.int64, count=len(way_nodes))
    ids = np.fromiter(chain.from_iterable(way_nodes), dtype=np.int64, count=int(lengths.sum()))
    if len(ids) != len(coords):  # pragma: no cover - the scanner keeps them aligned
        raise RuntimeError(f"{len(ids)} way node ids but {len(coords)} coordinates")
    owner = np.repeat(np.arange(len(way_nodes)), lengths)
    start = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else lengths
    seg = (owner[:-1] == owner[1:]) & (ids[:-1] != ids[1:])
    first = np.flatnonzero(seg)
    u, v, seg_owner = ids[first], ids[first + 1], owner[first]
    edges = pd.DataFrame(tag_table(way_tags, GRAPH_WAY_TAGS)[seg_owner], columns=list(GRAPH_WAY_TAGS), dtype=object)
    way_id = np.asarray(way_ids, dtype=np.int64)[seg_owner]
    edges.insert(0, "seq", first - start[seg_owner] if len(first) else first)
    edges.insert(0, "osmid", way_id)
    edges.insert(0, "v", v)
    edges.insert(0, "u", u)
    edges.insert(0, "osm_id", [f"w{w}" for w in way_id.tolist()])
    edges.insert(1, "osm_type", "way")
    edges.index = pd.Index(edges["osm_id"], name="osm_id")
    geoms = shapely.linestrings(np.stack([coords[first], coords[first + 1]], axis=1)) if len(first) else []
    edge_frame = gpd.GeoDataFrame(edges, geometry=gpd.GeoSeries(geoms, index=edges.index, crs=CRS), crs=CRS)
    return _node_frame(ids, coords, node_tags), edge_frame


def _node_frame(ids: np.ndarray, coords: np.ndarray, node_tags: dict[int, tuple[str | None, ...]]) -> gpd.GeoDataFrame:
    unique, where = np.unique(ids, return_index=True)
    xy = coords[where] if len(where) else np.empty((0, 2))
    absent = (None,) * len(GRAPH_NODE_TAGS)
    rows = tag_table([node_tags.get(n, absent) for n in unique.tolist()], GRAPH_NODE_TAGS)
    tags = pd.DataFrame(rows, columns=list(GRAPH_NODE_TAGS), dtype=object)
    index = pd.Index([f"n{n}" for n in unique.tolist()], dtype=object, name="osm_id")
    frame = pd.DataFrame(
        {"osm_id": index, "osm_type": "node", "osmid": unique, "x": xy[:, 0], "y": xy[:, 1]}, index=index
    )
    frame = pd.concat([frame, tags.set_axis(index)], axis=1)
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(shapely.points(xy), index=index, crs=CRS), crs=CRS)


def network_mask(ways: pd.DataFrame, network: str) -> pd.Series:
    """Which ways (rows with tag columns) osmnx would download for ``network`` from Overpass."""
    if network not in NETWORK_TYPES:
        raise InputError(
            f"network {network!r} is not an osmnx network type; expected one of {', '.join(NETWORK_TYPES)}"
        )
    keep = pd.Series(True, index=ways.index)
    for key, op, pattern in _CLAUSE.findall(_overpass._get_network_filter(network)):
        values = ways[key] if key in ways else pd.Series(None, index=ways.index, dtype=object)
        present = values.notna()
        if not op:
            keep &= present
            continue
        matched = values.astype("string").str.contains(pattern, regex=op.endswith("~")) if op.endswith("~") else None
        hit = matched.fillna(False).astype(bool) if matched is not None else (values == pattern) & present
        keep &= ~hit if op.startswith("!") else hit
    return keep


def _directed_edges(edges: pd.DataFrame, bidirectional: bool) -> pd.DataFrame:
    """Forward and reverse edge rows in osmnx's insertion order, with ``oneway`` and ``reversed``."""
    oneway = edges["oneway"]
    one_way = pd.Series(False, index=edges.index)
    if not bidirectional:
        one_way = oneway.isin(_ONEWAY_VALUES) | (edges["junction"] == "roundabout")
    flip = one_way & oneway.isin(_REVERSED_VALUES)
    way_order = pd.factorize(edges["osmid"])[0]
    forward = edges.assign(
        oneway=one_way.to_numpy(),
        reversed=False,
        u=np.where(flip, edges["v"], edges["u"]),
        v=np.where(flip, edges["u"], edges["v"]),
        _way=way_order,
        _phase=0,
        _seq=np.where(flip, -edges["seq"], edges["seq"]),
    )
    back = edges.loc[~one_way.to_numpy()]
    backward = back.assign(
        oneway=False,
        reversed=True,
        u=back["v"],
        v=back["u"],
        _way=way_order[~one_way.to_numpy()],
        _phase=1,
        _seq=back["seq"],
    )
    both = pd.concat([forward, backward], ignore_index=True)
    return both.sort_values(["_way", "_phase", "_seq"], kind="stable")


def build_street_graph(
    nodes: gpd.GeoDataFrame, edges: gpd.GeoDataFrame, *, network: str, retain_all: bool, simplify: bool
) -> nx.MultiDiGraph:
    """An osmnx-compatible MultiDiGraph (EPSG:4326; edge ``length`` in metres) for ``network``.

    Topology, lengths and simplification are computed on arrays; networkx receives only
    the final nodes and edges, in the order (and with the keys) osmnx's own
    ``add_edge_lengths`` + ``simplify_graph`` would leave them.
    """
    ways = edges.drop_duplicates("osmid")
    good = ways.loc[network_mask(ways, network).to_numpy(), "osmid"]
    kept = edges.loc[edges["osmid"].isin(good).to_numpy()]
    directed = _directed_edges(kept, network in ox.settings.bidirectional_network_types)
    if not retain_all:
        directed = directed.loc[directed["u"].isin(_largest_component(directed)).to_numpy()]
    graph = nx.MultiDiGraph(crs=CRS, created_with="civicmap (osmnx-compatible)", network_type=network)
    if not len(directed):
        return graph
    u, v = directed["u"].to_numpy(), directed["v"].to_numpy()
    used = np.unique(np.concatenate([u, v]))
    node_rows = nodes.set_index("osmid").loc[used]
    xy = node_rows[["x", "y"]].to_numpy()
    ui, vi = np.searchsorted(used, u), np.searchsorted(used, v)
    lengths = ox.distance.great_circle(xy[ui, 1], xy[ui, 0], xy[vi, 1], xy[vi, 0])
    lengths[np.isnan(lengths)] = 0
    attrs = _edge_attrs(directed, lengths)
    edge_list = [(a, b, k, d) for a, b, k, d in zip(u.tolist(), v.tolist(), _edge_keys(u, v), attrs, strict=True)]
    keep_nodes = used
    if simplify:
        edge_list, keep_nodes = _simplified(edge_list, used, xy)
        graph.graph["simplified"] = True
    node_cols = [c for c in GRAPH_NODE_TAGS if c in node_rows]
    node_rows = node_rows.loc[keep_nodes]
    graph.add_nodes_from(_attr_dicts(node_rows.index, node_rows[["y", "x", *node_cols]]))
    graph.add_edges_from(edge_list)
    if simplify:
        graph.remove_nodes_from(_ring_nodes(graph))
    nx.set_node_attributes(graph, _street_counts(graph), name="street_count")
    log.info("street graph %r: %d nodes, %d edges", network, len(graph), len(graph.edges))
    return graph


def _edge_attrs(directed: pd.DataFrame, lengths: np.ndarray) -> list[dict[str, object]]:
    """Edge attribute dicts in osmnx's key order, ``length`` (numpy float64, as osmnx leaves it) last.

    Every attribute but ``length`` is the same for all edges of one way in one direction,
    so one dict is made per way and direction, and copied per edge.
    """
    edge_cols = [c for c in ox.settings.useful_tags_way if c in directed and c != "oneway"]
    group = pd.MultiIndex.from_arrays([directed["_way"].to_numpy(), directed["_phase"].to_numpy()])
    code, _ = pd.factorize(group)
    first = np.unique(code, return_index=True)[1]
    bases = _records(directed.iloc[first][["osmid", *edge_cols, "oneway", "reversed"]])
    return [{**bases[c], "length": length} for c, length in zip(code.tolist(), lengths, strict=True)]


def _edge_keys(u: np.ndarray, v: np.ndarray) -> list[int]:
    """The keys networkx gives edges added in this order: 0, 1, ... per (u, v) pair."""
    _, pair = np.unique(_pair_codes(u, v), return_inverse=True)
    order = np.argsort(pair, kind="stable")
    ranked = pair[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    keys = np.empty(len(u), dtype=np.int64)
    keys[order] = np.arange(len(u)) - np.repeat(starts, np.diff(np.r_[starts, len(u)]))
    return keys.tolist()


def _pair_codes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One int64 per (a, b) pair of node ids, equal exactly when the pairs are equal."""
    _, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
    return codes[: len(a)] * np.int64(len(a) + len(b)) + codes[len(a) :]


def _endpoints(u: np.ndarray, v: np.ndarray, node_ids: np.ndarray) -> np.ndarray:
    """The strict endpoint rules of osmnx (``simplification._is_endpoint``), vectorised over all nodes.

    A node is an endpoint if it self-loops, lacks in- or out-edges, or does not have
    exactly two neighbours with 2 or 4 directed edges.
    """
    n = len(node_ids)
    ui, vi = np.searchsorted(node_ids, u), np.searchsorted(node_ids, v)
    out_deg, in_deg = np.bincount(ui, minlength=n), np.bincount(vi, minlength=n)
    loops = np.zeros(n, dtype=bool)
    loops[ui[ui == vi]] = True
    pairs = np.unique(np.concatenate([ui * n + vi, vi * n + ui]))
    neighbours = np.bincount(pairs // n, minlength=n)
    degree = out_deg + in_deg
    through = (neighbours == 2) & ((degree == 2) | (degree == 4))
    return loops | (out_deg == 0) | (in_deg == 0) | ~through


def _walk(succ: dict[int, list[int]], start: int, first: int, endpoints: set[int]) -> list[int]:
    """The node path from endpoint ``start`` through ``first`` to the next endpoint (osmnx's rules)."""
    path, seen = [start, first], {start, first}
    for step in succ.get(first, ()):
        if step not in seen:
            return _follow(succ, path, seen, step, endpoints)
    return path


def _follow(succ: dict[int, list[int]], path: list[int], seen: set[int], node: int, endpoints: set[int]) -> list[int]:
    """Extend ``path`` through ``node`` along the only way forward until an endpoint."""
    start = path[0]
    path.append(node)
    seen.add(node)
    while node not in endpoints:
        options = [n for n in succ.get(node, ()) if n not in seen]
        if len(options) != 1:
            if not options and start in succ.get(node, ()):
                return [*path, start]  # the end of a self-looping way
            log.warning("unexpected simplification pattern near node %s", node)
            return path
        node = options[0]
        path.append(node)
        seen.add(node)
    return path


def _merge(path: list[int], first_edge: dict[tuple[int, int], dict[str, object]]) -> dict[str, object]:
    """Attributes of the edge replacing ``path``, aggregated as ``osmnx.simplify_graph`` does.

    ``length`` is summed along the path; any other attribute keeps its single value, or
    becomes the list of its distinct values.
    """
    rows = [first_edge[pair] for pair in pairwise(path)]
    out: dict[str, object] = {}
    for key in dict.fromkeys(chain.from_iterable(rows)):
        values = [row[key] for row in rows if key in row]
        if key == "length":
            out[key] = sum(values)  # type: ignore[arg-type]
            continue
        distinct = set(values)
        out[key] = values[0] if len(distinct) == 1 else list(distinct)
    return out


def _paths(edge_list: list[_Edge], node_ids: np.ndarray) -> list[list[int]]:
    """Every path between endpoints, in ``osmnx.simplify_graph``'s order."""
    u = np.fromiter((e[0] for e in edge_list), dtype=np.int64, count=len(edge_list))
    v = np.fromiter((e[1] for e in edge_list), dtype=np.int64, count=len(edge_list))
    flags = _endpoints(u, v, node_ids)
    endpoints = {n for n, flag in zip(node_ids.tolist(), flags.tolist(), strict=True) if flag}
    succ: dict[int, list[int]] = {}
    for a, b, *_ in edge_list:
        following = succ.setdefault(a, [])
        if b not in following:
            following.append(b)
    return [_walk(succ, end, nxt, endpoints) for end in endpoints for nxt in succ.get(end, ()) if nxt not in endpoints]


def _simplified(edge_list: list[_Edge], node_ids: np.ndarray, xy: np.ndarray) -> tuple[list[_Edge], np.ndarray]:
    """``osmnx.simplify_graph`` on the edge list (before its ring removal): new edges and nodes kept."""
    paths = _paths(edge_list, node_ids)
    first_edge: dict[tuple[int, int], dict[str, object]] = {}
    count: dict[tuple[int, int], int] = {}
    for a, b, _, data in edge_list:
        first_edge.setdefault((a, b), data)
        count[a, b] = count.get((a, b), 0) + 1
    flat = np.fromiter(chain.from_iterable(paths), dtype=np.int64)
    owner = np.repeat(np.arange(len(paths)), [len(p) for p in paths])
    lines = shapely.linestrings(xy[np.searchsorted(node_ids, flat)], indices=owner) if len(paths) else []
    removed = {n for p in paths for n in p[1:-1]}
    added: list[_Edge] = []
    for path, line in zip(paths, lines, strict=True):
        data = _merge(path, first_edge)
        data["geometry"] = line
        pair = (path[0], path[-1])
        key = count.get(pair, 0)
        count[pair] = key + 1
        added.append((path[0], path[-1], key, data))
    kept = [e for e in edge_list if e[0] not in removed and e[1] not in removed]
    kept.sort(key=lambda e: e[0])  # G.copy() order: by node, then adjacency, then key (a stable sort keeps those)
    kept += [e for e in added if e[0] not in removed and e[1] not in removed]
    return kept, node_ids[~np.isin(node_ids, np.fromiter(removed, dtype=np.int64, count=len(removed)))]


def _ring_nodes(graph: nx.MultiDiGraph) -> set[int]:
    """Nodes of components without any endpoint (isolated rings), which osmnx removes."""
    node_ids = np.fromiter(graph.nodes, dtype=np.int64, count=len(graph))
    edges = list(graph.edges(keys=False))
    u = np.fromiter((e[0] for e in edges), dtype=np.int64, count=len(edges))
    v = np.fromiter((e[1] for e in edges), dtype=np.int64, count=len(edges))
    flags = dict(zip(node_ids.tolist(), _endpoints(u, v, node_ids).tolist(), strict=True))
    rings: set[int] = set()
    for component in nx.weakly_connected_components(graph):
        if not any(flags[n] for n in component):
            rings |= component
    return rings


def _largest_component(edges: pd.DataFrame) -> np.ndarray:
    """Node ids of the largest weakly connected component (as ``osmnx.truncate.largest_component``).

    Components are labelled with numpy (hooking and pointer jumping); among equally large
    ones, the first in networkx's order wins (the one whose first node appears first).
    """
    ends = np.column_stack([edges["u"].to_numpy(), edges["v"].to_numpy()]).ravel()
    if not len(ends):
        return ends
    ids, first, inverse = np.unique(ends, return_index=True, return_inverse=True)
    rank = np.empty(len(ids), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(ids))  # node codes in order of first appearance
    codes = rank[inverse].reshape(-1, 2)
    label = _component_labels(codes[:, 0], codes[:, 1], len(ids))
    winner = np.argmax(np.bincount(label, minlength=len(ids)))
    return ids[np.argsort(first)][label == winner]


def _component_labels(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """For every node 0..n-1, the smallest node number of its connected component."""
    label = np.arange(n)
    while True:
        la, lb = label[a], label[b]
        differ = la != lb
        if not differ.any():
            return label
        np.minimum.at(label, np.maximum(la, lb)[differ], np.minimum(la, lb)[differ])
        while True:
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped


def _street_counts(graph: nx.MultiDiGraph) -> dict[int, int]:
    """``osmnx.stats.count_streets_per_node``: undirected edges per node, vectorised.

    Each unordered pair of distinct nodes counts once per edge key used in either
    direction; a node with self-loops gets 2 for them, whatever their number.
    """
    node_ids = np.fromiter(graph.nodes, dtype=np.int64, count=len(graph))
    triples = np.array(list(graph.edges(keys=True)), dtype=np.int64).reshape(-1, 3)
    u, v, k = triples[:, 0], triples[:, 1], triples[:, 2]
    loops = u == v
    lo, hi = np.minimum(u, v)[~loops], np.maximum(u, v)[~loops]
    uniq = np.unique(np.column_stack([lo, hi, k[~loops]]), axis=0)
    counts = np.bincount(np.searchsorted(node_ids, uniq[:, :2].ravel()), minlength=len(node_ids))
    counts[np.searchsorted(node_ids, np.unique(u[loops]))] += 2
    return dict(zip(node_ids.tolist(), counts.tolist(), strict=True))


def _records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Row dicts without the tags a way does not have (osmnx leaves absent tags out)."""
    cols = list(frame.columns)
    values = [frame[c].astype(object).tolist() for c in cols]  # Python ints/floats/bools, as osmnx has them
    return [{k: v for k, v in zip(cols, row, strict=True) if v is not None} for row in zip(*values, strict=True)]


def _attr_dicts(index: pd.Index, frame: pd.DataFrame) -> list[tuple[int, dict[str, object]]]:
    return list(zip(index.tolist(), _records(frame), strict=True))
