"""Three daladala (minibus) lines mapped in the PTv2 scheme, routed over the existing streets.

Each line is a ``type=route_master`` over two ``type=route`` relations (one per direction)
whose members are the ordered stops (stop position on the street + platform beside it, on
the left, as Tanzania drives on the left) followed by the ordered ways. Streets are split
where a route enters or leaves them, so that every route way is used end to end.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import networkx as nx
import numpy as np

from .network import Network, Street
from .osmdoc import Member, OsmDoc

__all__ = ["Direction", "Line", "add_route_relations", "add_transit", "line_waypoints", "split_streets"]

_COST = {"primary": 1.0, "secondary": 1.05, "tertiary": 1.15, "unclassified": 1.3, "residential": 1.6, "service": 2.5}
_STOP_NAMES = [
    "Viwandani", "Mtoni", "Sokoni", "Bondeni", "Shuleni", "Zahanati",
    "Msikitini", "Mwembeni", "Kilimani", "Kanisani", "Mnazini", "Uwanjani", "Hospitali",
    "Posta", "Mbuyuni", "Kwa Mama Asha", "Mkuyuni", "Bustanini", "Relini", "Mlimani", "Kisimani",
    "Mchangani", "Kwa Mzee Juma", "Mnarani", "Kibandani", "Kwa Fundi", "Tangini", "Mwisho wa Lami", "Kona",
]  # fmt: skip
_NETWORK = "Mkondo daladala"
_SCHEDULE = {"D1": {"interval": "00:10", "duration": "00:20"}, "D2": {"interval": "15"}, "D3": {}}


@dataclass
class Direction:
    """One direction of a line: the street path (node ids, local xy m) and its stops."""

    nodes: list[int]
    xy: np.ndarray
    stop_index: list[int]  # indices into ``nodes``
    stop_names: list[str]
    relation_id: int = 0


@dataclass
class Line:
    """A daladala line: ref, terminal names and its two directions."""

    ref: str
    origin: str
    destination: str
    directions: list[Direction]


def line_waypoints(net: Network, xy: np.ndarray) -> dict[str, tuple[str, str, list[int]]]:
    """For each line ref: (origin name, destination name, node ids the path must visit in order)."""
    streets = net.streets

    def street(**tags: str) -> list[Street]:
        return [s for s in streets if all(s.tags.get(k) == v for k, v in tags.items())]

    arterial = street(highway="primary")
    south_end, north_end = arterial[0].refs[0], arterial[-1].refs[-1]
    spine = street(name="Mtaa wa Bondeni Kati")
    spine_west = min((n for s in spine for n in s.refs), key=lambda n: xy[n - 1, 0])
    secondary = street(name="Barabara ya Kilimani")
    viwanda = street(name="Barabara ya Viwanda")[0]
    bondeni = street(name="Mtaa wa Bondeni")
    art_nodes = {n for s in arterial for n in s.refs}
    sec_junction = next(n for s in secondary for n in s.refs if n in art_nodes)
    bondeni_junction = next(n for s in bondeni for n in s.refs if n in art_nodes)
    viwanda_junction = next(n for n in viwanda.refs if n in art_nodes)
    return {
        "D1": ("Stendi ya Kusini", "Stendi ya Kilimani", [south_end, north_end]),
        "D2": ("Bondeni Magharibi", "Mashariki", [spine_west, sec_junction, secondary[-1].refs[-1]]),
        "D3": ("Viwanda Magharibi", "Bondeni Juu",
               [viwanda.refs[0], viwanda_junction, bondeni_junction, bondeni[0].refs[0]]),
    }  # fmt: skip


def _graph(streets: list[Street], xy: np.ndarray) -> nx.Graph:
    g = nx.Graph()
    for s in streets:
        cost = _COST.get(s.tags["highway"])
        if cost is None:
            continue
        refs = np.asarray(s.refs)
        seg = np.hypot(*(xy[refs[1:] - 1] - xy[refs[:-1] - 1]).T)
        g.add_weighted_edges_from(zip(refs[:-1].tolist(), refs[1:].tolist(), (seg * cost).tolist(), strict=True))
    return g


def _path(g: nx.Graph, waypoints: list[int]) -> list[int]:
    nodes = [waypoints[0]]
    for a, b in itertools.pairwise(waypoints):
        nodes += nx.shortest_path(g, a, b, weight="weight")[1:]
    return nodes


def split_streets(streets: list[Street], paths: list[list[int]]) -> list[Street]:
    """Split streets at every node where a path starts, ends, enters or leaves them."""
    edge_street = {}
    for k, s in enumerate(streets):
        for a, b in zip(s.refs[:-1], s.refs[1:], strict=True):
            edge_street[frozenset((a, b))] = k
    cuts: set[int] = set()
    for path in paths:
        ks = [edge_street[frozenset(e)] for e in itertools.pairwise(path)]
        cuts |= {path[0], path[-1]}
        cuts |= {path[i + 1] for i in range(len(ks) - 1) if ks[i] != ks[i + 1]}
    out = []
    for s in streets:
        start = 0
        for i in range(1, len(s.refs) - 1):
            if s.refs[i] in cuts:
                out.append(Street(s.refs[start : i + 1], dict(s.tags)))
                start = i
        out.append(Street(s.refs[start:], dict(s.tags)))
    return out


def _pick_stops(xy: np.ndarray, banned: set[int], nodes: list[int], spacing_m: float = 380.0) -> list[int]:
    dist = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
    stops, last = [0], 0.0
    for i in range(1, len(nodes) - 1):
        if dist[i] - last >= spacing_m and nodes[i] not in banned and dist[-1] - dist[i] > 150.0:
            stops.append(i)
            last = dist[i]
    return [*stops, len(nodes) - 1]


def _platform(doc: OsmDoc, d: Direction, i: int, name: str, cache: dict) -> int:
    """Platform node 7 m to the left of the direction of travel at path index ``i`` (shared if equal)."""
    a, b = d.xy[max(i - 1, 0)], d.xy[min(i + 1, len(d.xy) - 1)]
    t = (b - a) / np.hypot(*(b - a))
    pos = d.xy[i] + 7.0 * np.array([-t[1], t[0]])
    key = (d.nodes[i], round(float(pos[0])), round(float(pos[1])))
    if key not in cache:
        tags = {"public_transport": "platform", "highway": "bus_stop", "bus": "yes", "name": name}
        cache[key] = doc.add_node(float(pos[0]), float(pos[1]), tags)
    return cache[key]


def _route_relation(doc: OsmDoc, line: Line, d: Direction, way_ids: list[int], platforms: dict) -> int:
    members = []
    for i, name in zip(d.stop_index, d.stop_names, strict=True):
        node = d.nodes[i]
        doc.node_tags[node] = {"public_transport": "stop_position", "bus": "yes", "name": name}
        members += [Member("node", node, "stop"), Member("node", _platform(doc, d, i, name, platforms), "platform")]
    members += [Member("way", w) for w in way_ids]
    origin, dest = (line.origin, line.destination) if d is line.directions[0] else (line.destination, line.origin)
    tags = {
        "type": "route", "route": "bus", "ref": line.ref, "name": f"Daladala {line.ref}: {origin} => {dest}",
        "from": origin, "to": dest, "network": _NETWORK, "operator": "Mkondo Daladala Owners Association",
        "public_transport:version": "2",
    }  # fmt: skip
    if d is line.directions[0]:
        tags |= _SCHEDULE[line.ref]
    return doc.add_relation(members, tags)


def _route_ways(d: Direction, streets: list[Street], way_ids: list[int]) -> list[int]:
    edge_way = {}
    for s, w in zip(streets, way_ids, strict=True):
        for a, b in zip(s.refs[:-1], s.refs[1:], strict=True):
            edge_way[frozenset((a, b))] = w
    out: list[int] = []
    for e in zip(d.nodes[:-1], d.nodes[1:], strict=True):
        w = edge_way[frozenset(e)]
        if not out or out[-1] != w:
            out.append(w)
    return out


def add_transit(doc: OsmDoc, net: Network) -> tuple[list[Line], list[Street]]:
    """Route the three lines and split the streets for them; return the lines and the split streets.

    The caller commits the returned streets as ways, then calls :func:`add_route_relations`.
    """
    xy = doc.coords()
    g = _graph(net.streets, xy)
    bridges = {n for s in net.streets if s.tags.get("bridge") for n in s.refs}
    names = iter(_STOP_NAMES)
    stop_name: dict[int, str] = {}
    lines = []
    for ref, (origin, dest, waypoints) in line_waypoints(net, xy).items():
        nodes = _path(g, waypoints)
        stops = _pick_stops(xy[np.asarray(nodes) - 1], bridges, nodes)
        stop_name.setdefault(nodes[0], origin)
        stop_name.setdefault(nodes[-1], dest)
        for i in stops:
            stop_name.setdefault(nodes[i], next(names))
        fwd = Direction(nodes, xy[np.asarray(nodes) - 1], stops, [stop_name[nodes[i]] for i in stops])
        back_nodes = nodes[::-1]
        back_stops = [len(nodes) - 1 - i for i in stops[::-1]]
        back = Direction(back_nodes, fwd.xy[::-1].copy(), back_stops, fwd.stop_names[::-1])
        lines.append(Line(ref, origin, dest, [fwd, back]))
    streets = split_streets(net.streets, [d.nodes for line in lines for d in line.directions])
    return lines, streets


def add_route_relations(doc: OsmDoc, lines: list[Line], streets: list[Street], way_ids: list[int]) -> None:
    """Add the route and route_master relations once the split streets are committed as ways."""
    platforms: dict = {}
    for line in lines:
        for d in line.directions:
            d.relation_id = _route_relation(doc, line, d, _route_ways(d, streets, way_ids), platforms)
    for line in lines:
        members = [Member("relation", d.relation_id) for d in line.directions]
        tags = {"type": "route_master", "route_master": "bus", "ref": line.ref, "network": _NETWORK,
                "name": f"Daladala {line.ref}: {line.origin} - {line.destination}"}  # fmt: skip
        doc.add_relation(members, tags)
