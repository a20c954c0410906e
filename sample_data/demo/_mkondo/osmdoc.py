"""A tiny in-memory OSM document (nodes, ways, relations) and its OSM XML 0.6 writer.

Node positions are kept in the local metric frame (see :mod:`frame`) and converted to
lon/lat (EPSG:4326, 7 decimals) only when written. Ids are positive and allocated in
creation order; nodes that end up referenced by nothing and carry no tags are not written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from .frame import SIZE_M, to_lonlat

__all__ = ["Member", "OsmDoc", "write_osm"]

Tags = dict[str, str]


@dataclass(frozen=True)
class Member:
    """A relation member: ``kind`` is ``node``, ``way`` or ``relation``."""

    kind: str
    ref: int
    role: str = ""


@dataclass
class OsmDoc:
    """Nodes (local metres), ways and relations with their tags, ids starting at 1."""

    xy: list[np.ndarray] = field(default_factory=list)
    node_tags: dict[int, Tags] = field(default_factory=dict)
    ways: dict[int, tuple[list[int], Tags]] = field(default_factory=dict)
    relations: dict[int, tuple[list[Member], Tags]] = field(default_factory=dict)
    _n_nodes: int = 0
    _cache: np.ndarray | None = None

    def add_nodes(self, xy: np.ndarray) -> np.ndarray:
        """Add nodes at local (x, y) metres (shape (N, 2)); return their new ids."""
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        ids = np.arange(self._n_nodes + 1, self._n_nodes + 1 + len(xy))
        self.xy.append(xy)
        self._n_nodes += len(xy)
        self._cache = None
        return ids

    def add_node(self, x: float, y: float, tags: Tags | None = None) -> int:
        """Add one node, optionally tagged; return its id."""
        node_id = int(self.add_nodes(np.array([[x, y]]))[0])
        if tags:
            self.node_tags[node_id] = dict(tags)
        return node_id

    def add_way(self, refs: list[int] | np.ndarray, tags: Tags) -> int:
        """Add a way through the node ids ``refs``; return its id."""
        way_id = len(self.ways) + 1
        self.ways[way_id] = ([int(r) for r in refs], dict(tags))
        return way_id

    def add_relation(self, members: list[Member], tags: Tags) -> int:
        """Add a relation; return its id."""
        rel_id = len(self.relations) + 1
        self.relations[rel_id] = (list(members), dict(tags))
        return rel_id

    def coords(self) -> np.ndarray:
        """All node positions, row ``id - 1`` for node ``id`` (local metres)."""
        if self._cache is None:
            self._cache = np.concatenate(self.xy) if self.xy else np.empty((0, 2))
        return self._cache

    def way_xy(self, way_id: int) -> np.ndarray:
        """Local (x, y) metres of a way's nodes, in order."""
        return self.coords()[np.asarray(self.ways[way_id][0]) - 1]


def _tags_xml(tags: Tags, indent: str) -> list[str]:
    return [f'{indent}<tag k="{escape(k)}" v="{escape(v, {chr(34): "&quot;"})}"/>' for k, v in tags.items()]


def _node_lines(doc: OsmDoc, lon: np.ndarray, lat: np.ndarray) -> list[str]:
    used = np.zeros(len(lon) + 1, dtype=bool)
    for refs, _ in doc.ways.values():
        used[refs] = True
    for members, _ in doc.relations.values():
        used[[m.ref for m in members if m.kind == "node"]] = True
    used[list(doc.node_tags)] = True
    lines = []
    for node_id in np.flatnonzero(used):
        position = f'lat="{lat[node_id - 1]:.7f}" lon="{lon[node_id - 1]:.7f}"'
        head = f'  <node id="{node_id}" version="1" visible="true" {position}'
        tags = doc.node_tags.get(int(node_id))
        if tags:
            lines += [head + ">", *_tags_xml(tags, "    "), "  </node>"]
        else:
            lines.append(head + "/>")
    return lines


def write_osm(doc: OsmDoc, path: Path) -> None:
    """Write ``doc`` as OSM XML 0.6 with a ``<bounds>`` of the city square (EPSG:4326, 7 decimals)."""
    lon, lat = to_lonlat(doc.coords())
    blon, blat = to_lonlat(np.array([[0.0, 0.0], [SIZE_M, SIZE_M], [0.0, SIZE_M], [SIZE_M, 0.0]]))
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<osm version="0.6" generator="civicmap demo generator">',
        f'  <bounds minlat="{blat.min():.7f}" minlon="{blon.min():.7f}" '
        f'maxlat="{blat.max():.7f}" maxlon="{blon.max():.7f}"/>',
    ]
    lines += _node_lines(doc, lon, lat)
    for way_id, (refs, tags) in doc.ways.items():
        lines.append(f'  <way id="{way_id}" version="1" visible="true">')
        lines += [f'    <nd ref="{r}"/>' for r in refs]
        lines += [*_tags_xml(tags, "    "), "  </way>"]
    for rel_id, (members, tags) in doc.relations.items():
        lines.append(f'  <relation id="{rel_id}" version="1" visible="true">')
        lines += [f'    <member type="{m.kind}" ref="{m.ref}" role="{escape(m.role)}"/>' for m in members]
        lines += [*_tags_xml(tags, "    "), "  </relation>"]
    lines.append("</osm>")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
