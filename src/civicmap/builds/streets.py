"""The street networks a workspace stored, back as osmnx graphs."""

from __future__ import annotations

import networkx as nx
import osmnx as ox

from civicmap.crs import WGS84
from civicmap.store import Store

__all__ = ["stored_street_graph"]


def stored_street_graph(store: Store, network: str = "walk") -> nx.MultiDiGraph:
    """The ``streets_<network>_nodes``/``_edges`` layers as an osmnx graph in EPSG:4326 (lengths in metres)."""
    nodes = store.read_layer(f"streets_{network}_nodes").to_crs(WGS84)
    edges = store.read_layer(f"streets_{network}_edges").to_crs(WGS84).set_index(["u", "v", "key"])
    nodes["x"], nodes["y"] = nodes.geometry.x, nodes.geometry.y
    return ox.graph_from_gdfs(nodes, edges)
