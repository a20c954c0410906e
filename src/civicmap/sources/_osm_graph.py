"""Street segments from highway ways, and osmnx-compatible graphs built from them.

The rules are osmnx's own, read from osmnx at run time so that the two agree:

- which ways belong to a network type: the Overpass filter osmnx sends for it
  (``osmnx._overpass._get_network_filter``), evaluated here on the ways' tags with the
  same semantics as Overpass (``["k"]`` key present; ``["k"!~"re"]`` key absent or value
  not matching the unanchored regex);
- one-way handling (``oneway`` in yes/true/1/-1/reverse/T/F or ``junction=roundabout``,
  reversed for -1/reverse/T), with every edge two-way for the network types in
  ``osmnx.settings.bidirectional_network_types`` (walking);
- ``osmnx.distance.add_edge_lengths`` (great-circle metres), the largest weakly connected component,
  ``osmnx.simplify_graph`` and ``osmnx.stats.count_streets_per_node`` for ``street_count``.

Ways are split at every node into segments, in bulk with numpy; only handing the edges
to networkx is a Python loop (networkx needs one dict per edge).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from itertools import chain

import geopandas as gpd
import networkx as nx
import numpy as np
import osmnx as ox
import pandas as pd
import shapely
from osmnx import _overpass

from civicmap.errors import InputError
from civicmap.sources._osm_scan import GRAPH_NODE_TAGS, GRAPH_WAY_TAGS

__all__ = ["NETWORK_TYPES", "build_street_graph", "street_frames"]

log = logging.getLogger(__name__)

CRS = "EPSG:4326"
NETWORK_TYPES = ("all", "all_public", "bike", "drive", "drive_service", "walk")
_ONEWAY_VALUES = frozenset({"yes", "true", "1", "-1", "reverse", "T", "F"})
_REVERSED_VALUES = frozenset({"-1", "reverse", "T"})
_CLAUSE = re.compile(r'\["([^"]+)"(?:(!~|~|!=|=)"([^"]*)")?\]')


def street_frames(
    way_ids: Sequence[int],
    way_nodes: Sequence[Sequence[int]],
    way_tags: Sequence[dict[str, str]],
    way_wkb: Sequence[str],
    node_tags: dict[int, dict[str, str]],
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
    tags = pd.DataFrame.from_records(list(way_tags), columns=list(GRAPH_WAY_TAGS)).astype(object)
    tags = tags.where(tags.notna(), None)
    edges = tags.iloc[seg_owner].reset_index(drop=True)
    way_id = np.asarray(way_ids, dtype=np.int64)[seg_owner]
    edges.insert(0, "seq", first - start[seg_owner] if len(first) else first)
    edges.insert(0, "osmid", way_id)
    edges.insert(0, "v", v)
    edges.insert(0, "u", u)
    edges.insert(0, "osm_id", [f"w{w}" for w in way_id])
    edges.insert(1, "osm_type", "way")
    edges.index = pd.Index(edges["osm_id"], name="osm_id")
    geoms = shapely.linestrings(np.stack([coords[first], coords[first + 1]], axis=1)) if len(first) else []
    edge_frame = gpd.GeoDataFrame(edges, geometry=gpd.GeoSeries(geoms, index=edges.index, crs=CRS), crs=CRS)
    return _node_frame(ids, coords, node_tags), edge_frame


def _node_frame(ids: np.ndarray, coords: np.ndarray, node_tags: dict[int, dict[str, str]]) -> gpd.GeoDataFrame:
    unique, where = np.unique(ids, return_index=True)
    xy = coords[where] if len(where) else np.empty((0, 2))
    tags = pd.DataFrame.from_records([node_tags.get(int(n), {}) for n in unique], columns=list(GRAPH_NODE_TAGS))
    tags = tags.astype(object).where(tags.notna(), None)
    index = pd.Index([f"n{n}" for n in unique], dtype=object, name="osm_id")
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
    """An osmnx-compatible MultiDiGraph (EPSG:4326; edge ``length`` in metres) for ``network``."""
    ways = edges.drop_duplicates("osmid")
    good = ways.loc[network_mask(ways, network).to_numpy(), "osmid"]
    kept = edges.loc[edges["osmid"].isin(good).to_numpy()]
    directed = _directed_edges(kept, network in ox.settings.bidirectional_network_types)
    if not retain_all:
        directed = directed.loc[directed["u"].isin(_largest_component(directed)).to_numpy()]
    graph = nx.MultiDiGraph(crs=CRS, created_with="civicmap (osmnx-compatible)", network_type=network)
    used = np.unique(np.concatenate([directed["u"].to_numpy(), directed["v"].to_numpy()]))
    node_rows = nodes.set_index("osmid").loc[used]
    node_cols = [c for c in GRAPH_NODE_TAGS if c in node_rows]
    graph.add_nodes_from(_attr_dicts(node_rows.index, node_rows[["y", "x", *node_cols]]))
    edge_cols = [c for c in ox.settings.useful_tags_way if c in directed and c != "oneway"]
    attrs = directed[["osmid", *edge_cols, "oneway", "reversed"]]
    graph.add_edges_from(zip(directed["u"].tolist(), directed["v"].tolist(), _records(attrs), strict=True))
    if len(graph.edges):
        graph = ox.distance.add_edge_lengths(graph)
        if simplify:
            graph = ox.simplify_graph(graph)
    nx.set_node_attributes(graph, ox.stats.count_streets_per_node(graph), name="street_count")
    log.info("street graph %r: %d nodes, %d edges", network, len(graph), len(graph.edges))
    return graph


def _largest_component(edges: pd.DataFrame) -> set[int]:
    """Nodes of the largest weakly connected component (as ``osmnx.truncate.largest_component``).

    Found on a bare undirected graph before the attributed one is built, which spares
    osmnx's copy of the whole graph.
    """
    bare = nx.Graph()
    bare.add_edges_from(zip(edges["u"].tolist(), edges["v"].tolist(), strict=True))
    return max(nx.connected_components(bare), key=len) if len(bare) else set()


def _records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Row dicts without the tags a way does not have (osmnx leaves absent tags out)."""
    cols = list(frame.columns)
    rows = frame.astype(object).itertuples(index=False)  # Python ints/floats/bools, as osmnx has them
    return [{k: v for k, v in zip(cols, row, strict=True) if v is not None} for row in rows]


def _attr_dicts(index: pd.Index, frame: pd.DataFrame) -> list[tuple[int, dict[str, object]]]:
    return list(zip(index.tolist(), _records(frame), strict=True))
