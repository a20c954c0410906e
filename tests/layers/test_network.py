"""Street network walks: a hand-checkable six-node graph, then networkx as an oracle on a random one."""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import osmnx as ox
import pytest
import shapely

from civicmap.errors import CRSError, InputError
from civicmap.layers.network import (
    NO_PREDECESSOR,
    StreetNetwork,
    nearest_walk,
    path_vertices,
    search_targets,
    snap_to_nodes,
    street_network,
)

UTM = "EPSG:32737"
X0, Y0 = 500_000.0, 9_200_000.0
#: node id -> (x, y) offset in metres
NODES = {1: (0, 0), 2: (100, 0), 3: (200, 0), 4: (300, 0), 5: (100, 100), 6: (200, 100)}
#: targets: T0 10 m south of node 1, T1 exactly on node 4
TARGETS = np.array([[X0, Y0 - 10], [X0 + 300, Y0]])


def six_nodes() -> nx.MultiDiGraph:
    """Hand-checkable graph (metres)::

        5 (100,100) --100-- 6 (200,100)
        | 110               | 100       plus one-way 4 -> 6 (150 m), one-way 1 -> 5 without length,
        1 --100-- 2 --100-- 3 --100-- 4   a longer parallel 2 -> 3 (250 m) and a self-loop at 4.

    Two-way edges unless said; node ``k`` sits at ``NODES[k]`` from (X0, Y0) in UTM 37S.
    """
    graph = nx.MultiDiGraph(crs=UTM)
    for node, (x, y) in NODES.items():
        graph.add_node(node, x=X0 + x, y=Y0 + y)
    for u, v, length in ((1, 2, 100), (2, 3, 100), (3, 4, 100), (2, 5, 110), (5, 6, 100), (6, 3, 100)):
        graph.add_edge(u, v, length=float(length))
        graph.add_edge(v, u, length=float(length))
    graph.add_edge(2, 3, length=250.0)
    graph.add_edge(4, 4, length=5.0)
    graph.add_edge(4, 6, length=150.0)
    graph.add_edge(1, 5)  # no length: measured as the straight 141.42 m
    return graph


def pos(net: StreetNetwork, *ids: int) -> np.ndarray:
    return net.node_ids.get_indexer(list(ids))


def at_nodes(net: StreetNetwork, values: np.ndarray) -> dict[int, float]:
    return {int(i): float(values[p]) for i, p in zip(NODES, pos(net, *NODES), strict=True)}


@pytest.fixture
def net() -> StreetNetwork:
    return street_network(six_nodes())


def test_network_arrays(net):
    assert net.n_nodes == 6 and len(net.u) == 16 and net.crs.to_epsg() == 32737
    assert net.xy[pos(net, 6)[0]] == pytest.approx([X0 + 200, Y0 + 100])
    unmeasured = np.flatnonzero((net.u == pos(net, 1)[0]) & (net.v == pos(net, 5)[0]))
    assert net.length_m[unmeasured] == pytest.approx([np.hypot(100, 100)])
    assert shapely.get_coordinates(net.lines[unmeasured[0]]).tolist() == [[X0, Y0], [X0 + 100, Y0 + 100]]


def test_edges_frame_gives_the_same_network(net):
    edges = ox.graph_to_gdfs(six_nodes(), nodes=False)  # u, v, key index levels, as the workspace stores them
    framed = street_network(edges.to_crs("EPSG:4326"), crs=UTM)
    assert sorted(framed.node_ids) == sorted(NODES) and sorted(framed.length_m) == pytest.approx(sorted(net.length_m))
    assert framed.xy[pos(framed, 6)[0]] == pytest.approx([X0 + 200, Y0 + 100], abs=1e-6)
    legs = np.array([10.0, 0.0])
    expected = at_nodes(net, search_targets(net, pos(net, 1, 4), target_leg_m=legs).distance_m)
    assert at_nodes(framed, search_targets(framed, pos(framed, 1, 4), target_leg_m=legs).distance_m) == expected


def test_lonlat_graph_is_computed_in_its_utm_zone():
    graph = nx.MultiDiGraph(crs="EPSG:4326")
    graph.add_node(1, x=36.8, y=-1.3)
    graph.add_node(2, x=36.8, y=-1.3 + 100 / 110_575)  # metres per degree of latitude there
    graph.add_edge(1, 2)  # no length: measured in UTM 37S
    net = street_network(graph)
    assert net.crs.to_epsg() == 32737
    assert net.length_m == pytest.approx([100.0], rel=2e-3)
    assert street_network(graph, crs=UTM).crs.to_epsg() == 32737


def test_snap_to_nodes(net):
    snap = snap_to_nodes(net, np.array([[X0 + 3, Y0 - 4], [X0 + 190, Y0 + 95]]))
    assert net.node_ids[snap.node].tolist() == [1, 6]
    assert snap.distance_m == pytest.approx([5.0, np.hypot(10, 5)])
    allowed = np.isin(net.node_ids, [4, 5])
    only = snap_to_nodes(net, np.array([[X0 + 3, Y0 - 4]]), allowed=allowed)
    assert net.node_ids[only.node].tolist() == [5] and only.distance_m == pytest.approx([np.hypot(97, 104)])
    none = snap_to_nodes(net, np.array([[X0, Y0]]), allowed=np.zeros(6, dtype=bool))
    assert none.node.tolist() == [-1] and np.isnan(none.distance_m).all()


def test_distances_and_targets_by_hand(net):
    search = search_targets(net, pos(net, 1, 4), target_leg_m=np.array([10.0, 0.0]))
    # 5 walks 5 -> 2 -> 1 (220 m): the one-way 1 -> 5 cannot be walked back; 6 -> 3 -> 4, not the one-way 4 -> 6
    assert at_nodes(net, search.distance_m) == pytest.approx({1: 10, 2: 110, 3: 100, 4: 0, 5: 220, 6: 200})
    assert at_nodes(net, search.target) == {1: 0, 2: 0, 3: 1, 4: 1, 5: 0, 6: 1}
    assert search.predecessor is None
    assert len(search.edges) == 14  # the longer parallel 2 -> 3 and the self-loop are not searched


def test_zero_legs_stay_zero_and_no_leg_means_on_the_node(net):
    search = search_targets(net, pos(net, 4))
    assert search.distance_m[pos(net, 4)[0]] == 0.0  # not padded to 1e-6 m
    assert at_nodes(net, search.distance_m)[3] == 100.0


def test_edge_mask_closes_streets(net):
    closed = np.isin(net.u, pos(net, 3, 4)) & np.isin(net.v, pos(net, 3, 4)) & (net.u != net.v)
    assert closed.sum() == 2
    search = search_targets(net, pos(net, 1, 4), target_leg_m=np.array([10.0, 0.0]), edge_mask=~closed)
    assert at_nodes(net, search.distance_m) == pytest.approx({1: 10, 2: 110, 3: 210, 4: 0, 5: 220, 6: 310})
    assert at_nodes(net, search.target) == {1: 0, 2: 0, 3: 0, 4: 1, 5: 0, 6: 0}
    everything = search_targets(net, pos(net, 1), edge_mask=np.zeros(len(net.u), dtype=bool))
    assert np.isinf(at_nodes(net, everything.distance_m)[2]) and at_nodes(net, everything.target)[2] == -1


def test_limit_and_unsnapped_targets(net):
    search = search_targets(net, np.array([pos(net, 1)[0], -1]), target_leg_m=np.array([10.0, np.nan]), limit_m=150)
    assert at_nodes(net, search.distance_m) == pytest.approx(
        {1: 10, 2: 110, 3: np.inf, 4: np.inf, 5: np.inf, 6: np.inf}
    )
    assert at_nodes(net, search.target) == {1: 0, 2: 0, 3: -1, 4: -1, 5: -1, 6: -1}
    empty = search_targets(net, np.empty(0, dtype=int), predecessors=True)
    assert np.isinf(empty.distance_m).all() and (empty.target == -1).all()


def test_predecessors_and_path_vertices(net):
    search = search_targets(net, pos(net, 1, 4), target_leg_m=np.array([10.0, 0.0]), predecessors=True)
    assert search.predecessor is not None and len(search.predecessor) == 6 + 2
    assert net.node_ids[search.predecessor[pos(net, 5)]].tolist() == [2]  # next node towards the target
    assert search.predecessor[pos(net, 1)[0]] == 6 + 0  # then the target's own vertex
    assert search.predecessor[6 + 0] == NO_PREDECESSOR
    owner, xy = path_vertices(net, search, pos(net, 5, 4, 5))
    assert owner.tolist() == [0] * 5 + [1] + [2] * 5
    walk = [[100, 100], [100, 100], [100, 0], [100, 0], [0, 0]]  # the node, then edges 5 -> 2 and 2 -> 1
    assert (xy - [X0, Y0]).tolist() == [*walk, [300, 0], *walk]
    with pytest.raises(InputError, match="predecessors=True"):
        path_vertices(net, search_targets(net, pos(net, 1)), pos(net, 5))


def test_path_vertices_follow_edge_geometry():
    graph = six_nodes()
    bend = shapely.LineString([(X0 + 100, Y0), (X0 + 50, Y0 - 20), (X0, Y0)])
    for key in graph[2][1]:
        graph[2][1][key]["geometry"] = bend
    net = street_network(graph)
    search = search_targets(net, pos(net, 1), predecessors=True)
    _, xy = path_vertices(net, search, pos(net, 2))
    assert (xy - [X0, Y0]).tolist() == [[100, 0], [100, 0], [50, -20], [0, 0]]


def test_nearest_walk_counts_both_snap_legs(net):
    origins = np.array([[X0 + 100, Y0 + 108], [X0 + 205, Y0], [X0 + 300, Y0 + 2]])
    walk = nearest_walk(net, origins, TARGETS)
    assert net.node_ids[walk.node].tolist() == [5, 3, 4]
    assert walk.target.tolist() == [0, 1, 1]
    assert walk.access_m == pytest.approx([8, 5, 2])
    assert walk.network_m == pytest.approx([210, 100, 0])
    assert walk.egress_m == pytest.approx([10, 0, 0])
    assert walk.distance_m == pytest.approx([228, 105, 2])
    assert walk.distance_m == pytest.approx(walk.access_m + walk.network_m + walk.egress_m)


def test_nearest_walk_with_allowed_target_nodes_and_no_reach(net):
    allowed = ~np.isin(net.node_ids, [1])  # T0 must snap to node 2 instead (100.5 m leg)
    walk = nearest_walk(net, np.array([[X0, Y0]]), TARGETS[:1], target_nodes=allowed)
    assert walk.egress_m == pytest.approx([np.hypot(100, 10)])
    assert walk.distance_m == pytest.approx([100 + np.hypot(100, 10)])
    far = nearest_walk(net, np.array([[X0, Y0]]), TARGETS[1:], limit_m=50)
    assert np.isinf(far.distance_m).all() and far.target.tolist() == [-1] and np.isnan(far.network_m).all()
    none = nearest_walk(net, np.array([[X0, Y0]]), np.empty((0, 2)))
    assert np.isinf(none.distance_m).all()


def test_bad_input_is_named(net):
    with pytest.raises(InputError, match="MultiDiGraph"):
        street_network(np.zeros(3))  # type: ignore[arg-type]
    with pytest.raises(CRSError, match="'crs'"):
        street_network(nx.MultiDiGraph())
    with pytest.raises(CRSError, match="metres"):
        street_network(six_nodes(), crs="EPSG:4326")
    with pytest.raises(InputError, match="no edges"):
        street_network(nx.MultiDiGraph(crs=UTM))
    with pytest.raises(InputError, match="'u' and 'v'"):
        street_network(gpd.GeoDataFrame(geometry=[shapely.LineString([(0, 0), (1, 1)])], crs=UTM))
    with pytest.raises(InputError, match="edge_mask"):
        search_targets(net, pos(net, 1), edge_mask=np.ones(3, dtype=bool))
    with pytest.raises(InputError, match="target_leg_m"):
        search_targets(net, pos(net, 1), target_leg_m=np.ones(2))
    with pytest.raises(InputError, match=">= 0"):
        search_targets(net, pos(net, 1), target_leg_m=np.array([np.nan]))


def random_graph(seed: int) -> tuple[nx.MultiDiGraph, np.ndarray]:
    """A jittered 12 x 12 grid with random lengths, one-way streets, parallel edges; and 8 target points."""
    rng = np.random.default_rng(seed)
    graph = nx.MultiDiGraph(crs=UTM)
    n = 12
    for i in range(n):
        for j in range(n):
            graph.add_node(n * i + j, x=X0 + 80 * i + rng.uniform(-20, 20), y=Y0 + 80 * j + rng.uniform(-20, 20))
    for i in range(n):
        for j in range(n):
            for di, dj in ((1, 0), (0, 1)):
                if i + di < n and j + dj < n and rng.random() > 0.1:
                    u, v = n * i + j, n * (i + di) + j + dj
                    graph.add_edge(u, v, length=float(rng.uniform(50, 150)))
                    if rng.random() > 0.25:  # a quarter are one-way
                        graph.add_edge(v, u, length=float(rng.uniform(50, 150)))
                    if rng.random() < 0.1:
                        graph.add_edge(u, v, length=float(rng.uniform(20, 200)))
    targets = np.column_stack([X0 + rng.uniform(0, 880, 8), Y0 + rng.uniform(0, 880, 8)])
    return graph, targets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_networkx_multi_source_dijkstra(seed):
    graph, targets = random_graph(seed)
    ids = np.array(list(graph.nodes))
    coords = np.array([(graph.nodes[i]["x"], graph.nodes[i]["y"]) for i in ids])
    gap = np.hypot(*(targets[:, None, :] - coords[None, :, :]).transpose(2, 0, 1))  # brute-force snapping
    nearest, legs = ids[gap.argmin(axis=1)], gap.min(axis=1)
    oracle = graph.reverse(copy=True)  # networkx walks from the targets against the edges' direction
    for k, (node, leg) in enumerate(zip(nearest, legs, strict=True)):
        oracle.add_edge(("target", k), int(node), length=float(leg))
    expected = nx.multi_source_dijkstra_path_length(oracle, {("target", k) for k in range(8)}, weight="length")
    per_target = [nx.single_source_dijkstra_path_length(oracle, ("target", k), weight="length") for k in range(8)]

    net = street_network(graph)
    walk = nearest_walk(net, coords, targets, predecessors=True)
    search = walk.search
    want = np.array([expected.get(i, np.inf) for i in net.node_ids])
    assert np.isfinite(want).sum() > 100
    assert search.distance_m == pytest.approx(want, rel=1e-12)
    assert walk.distance_m == pytest.approx(want[pos(net, *ids)], rel=1e-12)  # origins on nodes: no access leg
    reached = np.flatnonzero(np.isfinite(want))
    chosen = [per_target[search.target[p]].get(net.node_ids[p]) for p in reached]
    assert chosen == pytest.approx(want[reached], rel=1e-12)  # the target named is one at that distance
    pred = search.predecessor
    assert pred is not None
    step = [graph[net.node_ids[p]][net.node_ids[pred[p]]] for p in reached if pred[p] < net.n_nodes]
    onward = [p for p in reached if pred[p] < net.n_nodes]
    shortest = np.array([min(e["length"] for e in s.values()) for s in step])
    assert want[onward] == pytest.approx(shortest + want[pred[onward]], rel=1e-12)
