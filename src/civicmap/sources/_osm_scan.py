"""Streaming pass over an OSM file with pyosmium: collect WKB and tags, never shapely objects.

Two passes, each streaming:

1. relations only (cheap): route / route_master relations, the multipolygon relations
   whose tags make them wanted areas (to count the ones osmium cannot assemble), and the
   ids of every relation osmium may turn into an area;
2. the main pass with node locations and osmium's area assembler: tagged nodes, all ways
   (untagged ones are few, and route relations may need them) and the areas of
   relations reach Python; everything else, including the areas osmium makes from closed
   ways (those are polygonised from their own line), is dropped in C++.

Tags are read by probing the declared keys (a C++ lookup each), which is much cheaper
than iterating an object's tags in Python; each layer keeps value tuples in its column
order. Geometries leave this module as WKB bytes (EPSG:4326, lon/lat degrees) in plain
lists; :mod:`civicmap.sources._osm_frames` turns them into GeoDataFrames in bulk.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import osmium
import osmium.filter
import osmium.geom
from tqdm.auto import tqdm

__all__ = ["RelationIndex", "Rows", "Scan", "UseRules", "scan_file"]

log = logging.getLogger(__name__)

#: tags kept per layer (a declared, small list; every other tag is dropped)
BUILDING_TAGS = (
    "building",
    "building:levels",
    "building:material",
    "height",
    "name",
    "amenity",
    "addr:street",
    "addr:housenumber",
)
ROAD_TAGS = ("highway", "name", "surface", "oneway", "bridge", "tunnel", "lanes", "maxspeed", "ref", "junction")
AMENITY_TAGS = ("amenity", "healthcare", "emergency", "social_facility", "man_made", "shelter_type", "name")
WATERWAY_TAGS = ("waterway", "natural", "water", "name", "intermittent")
LANDUSE_TAGS = ("landuse", "name", "residential", "informal")  # informal=yes: HOT tagging of informal areas
STOP_TAGS = ("name", "public_transport", "highway", "amenity", "railway", "bus", "route_ref", "ref", "shelter")
ROUTE_TAGS = (
    "route",
    "ref",
    "name",
    "from",
    "to",
    "network",
    "operator",
    "colour",
    "interval",
    "duration",
    "opening_hours",
)
#: tags of highway ways needed by the street graph (osmnx's useful tags + its filter keys)
GRAPH_WAY_TAGS = (
    "highway",
    "name",
    "oneway",
    "junction",
    "bridge",
    "tunnel",
    "lanes",
    "ref",
    "maxspeed",
    "service",
    "access",
    "area",
    "landuse",
    "width",
    "est_width",
    "motor_vehicle",
    "motorcar",
    "foot",
    "bicycle",
    "sidewalk",
    "sidewalk:both",
    "sidewalk:left",
    "sidewalk:right",
)
GRAPH_NODE_TAGS = ("highway", "junction", "railway", "ref")
WATERWAY_LINES = frozenset({"river", "stream", "canal", "drain", "ditch"})
WATER_AREAS = (("natural", "water"), ("waterway", "riverbank"))
STOP_RULES = (
    ("public_transport", frozenset({"platform", "stop_position"})),
    ("highway", frozenset({"bus_stop"})),
    ("amenity", frozenset({"bus_station"})),
    ("railway", frozenset({"tram_stop", "halt"})),
)
_AREA_AT = GRAPH_WAY_TAGS.index("area")  # highway ways tagged area=yes are not roads
_PROGRESS_EVERY = 20_000
_KEYSETS: dict[tuple[str, ...], frozenset[str]] = {
    keys: frozenset(keys)
    for keys in (
        BUILDING_TAGS,
        ROAD_TAGS,
        AMENITY_TAGS,
        WATERWAY_TAGS,
        LANDUSE_TAGS,
        STOP_TAGS,
        ROUTE_TAGS,
        GRAPH_WAY_TAGS,
        GRAPH_NODE_TAGS,
    )
}


@dataclass(frozen=True)
class UseRules:
    """Compiled ``use -> ("key=value" | "key=*", ...)`` rules: first matching use wins."""

    exact: Mapping[tuple[str, str], str]
    wildcard: Mapping[str, str]
    keys: tuple[str, ...]

    @classmethod
    def compile(cls, uses: Mapping[str, Iterable[str]]) -> UseRules:
        exact: dict[tuple[str, str], str] = {}
        wildcard: dict[str, str] = {}
        keys: list[str] = []
        for use, rules in uses.items():
            for rule in rules:
                key, _, value = str(rule).partition("=")
                if value == "*":
                    wildcard.setdefault(key, use)
                else:
                    exact.setdefault((key, value), use)
                if key not in keys:
                    keys.append(key)
        return cls(exact, wildcard, tuple(keys))

    def match(self, tags: Any) -> tuple[str, str] | None:
        """``(use, "key=value")`` for the first rule the tags satisfy, else None."""
        for key in self.keys:
            value = tags.get(key)
            if value is None:
                continue
            use = self.exact.get((key, value)) or self.wildcard.get(key)
            if use is not None:
                return use, f"{key}={value}"
        return None


@dataclass
class Rows:
    """One layer's features as collected: ids ("w12"), WKB, how to build the geometry, tags."""

    ids: list[str] = field(default_factory=list)
    wkb: list[bytes] = field(default_factory=list)
    shape: list[str] = field(default_factory=list)  # "point" | "line" | "ring" | "area"
    tags: list[Any] = field(default_factory=list)  # value tuples in the layer's column order (dicts for points)

    def add(self, osm_id: str, wkb: bytes, shape: str, tags: Any) -> None:
        self.ids.append(osm_id)
        self.wkb.append(wkb)
        self.shape.append(shape)
        self.tags.append(tags)


@dataclass
class RelationIndex:
    """What the relations-only pass found."""

    routes: list[tuple[int, dict[str, str], list[tuple[str, int, str]]]] = field(default_factory=list)
    route_master: dict[int, int] = field(default_factory=dict)
    member_ways: set[int] = field(default_factory=set)
    member_nodes: set[int] = field(default_factory=set)
    wanted_areas: set[int] = field(default_factory=set)
    area_relations: set[int] = field(default_factory=set)  # every relation osmium may assemble into an area


@dataclass
class Scan:
    """Everything the passes collected, ready for bulk conversion."""

    layers: dict[str, Rows]
    street_ids: list[int]
    street_nodes: list[list[int]]
    street_tags: list[tuple[str | None, ...]]
    street_wkb: list[bytes]
    node_tags: dict[int, tuple[str | None, ...]]
    relations: RelationIndex
    member_wkb: dict[int, bytes]
    member_nodes: dict[int, tuple[float, float]]
    assembled_areas: set[int]
    skipped: Counter[str]


def _pick(tags: Any, keys: tuple[str, ...]) -> dict[str, str]:
    """The declared tags of one object, as a dict (relations, few)."""
    wanted = _KEYSETS[keys]
    return {t.k: t.v for t in tags if t.k in wanted}


def _values(get: Any, keys: tuple[str, ...]) -> tuple[str | None, ...]:
    """The values of ``keys`` (None where absent): probing a few keys in C++ beats iterating the tags."""
    return tuple(map(get, keys))


def _scan_relations(path: Path, rules: UseRules) -> RelationIndex:
    index = RelationIndex()
    relations: Iterable[Any] = osmium.FileProcessor(str(path), osmium.osm.RELATION).with_filter(
        osmium.filter.KeyFilter("type")
    )
    for rel in relations:
        kind = rel.tags.get("type")
        if kind == "route":
            members = [(m.type, m.ref, m.role) for m in rel.members]
            index.routes.append((rel.id, _pick(rel.tags, ROUTE_TAGS), members))
            index.member_ways.update(ref for typ, ref, role in members if typ == "w" and not _is_stop_role(role))
            index.member_nodes.update(ref for typ, ref, role in members if typ == "n")
        elif kind == "route_master":
            for m in rel.members:
                if m.type == "r":
                    index.route_master.setdefault(m.ref, rel.id)
        elif kind == "multipolygon" and _wanted_area(rel.tags, rules):
            index.wanted_areas.add(rel.id)
        if kind in ("multipolygon", "boundary"):
            index.area_relations.add(rel.id)
    return index


def _is_stop_role(role: str) -> bool:
    return role.startswith(("stop", "platform"))


def _wanted_area(tags: Any, rules: UseRules) -> bool:
    if "building" in tags or "landuse" in tags:
        return True
    if any(tags.get(k) == v for k, v in WATER_AREAS):
        return True
    return rules.match(tags) is not None


def _line_wkb_partial(way: Any) -> tuple[bytes | None, list[int]]:
    """WKB and node ids of a way built from the nodes present in the file (some are missing)."""
    refs = [(n.ref, n.lon, n.lat) for n in way.nodes if n.location.valid()]
    if len(refs) < 2:
        return None, []
    flat = [c for _, lon, lat in refs for c in (lon, lat)]
    return struct.pack(f"<BII{len(flat)}d", 1, 2, len(refs), *flat), [r[0] for r in refs]


class _MainPass:
    """Dispatches each object reaching Python to the layers it belongs to."""

    def __init__(self, relations: RelationIndex, rules: UseRules) -> None:
        self.rel = relations
        self.rules = rules
        self.factory = osmium.geom.WKBFactory()
        self.layers = {
            name: Rows() for name in ("buildings", "roads", "amenities", "waterways", "landuse", "points", "stops")
        }
        self.street_ids: list[int] = []
        self.street_nodes: list[list[int]] = []
        self.street_tags: list[tuple[str | None, ...]] = []
        self.street_wkb: list[bytes] = []
        self.node_tags: dict[int, tuple[str | None, ...]] = {}
        #: the keys every way is classified by, probed once per object
        self.probe_keys = tuple(
            dict.fromkeys(("highway", "building", "landuse", "waterway", *(k for k, _ in WATER_AREAS), *rules.keys))
        )
        self.member_wkb: dict[int, bytes] = {}
        self.assembled: set[int] = set()
        self.skipped: Counter[str] = Counter()

    def node(self, node: Any) -> None:
        osm_id = f"n{node.id}"
        tags = {t.k: t.v for t in node.tags}  # every tag is kept for ``points``
        get = tags.get
        wkb = bytes.fromhex(self.factory.create_point(node))
        self.layers["points"].add(osm_id, wkb, "point", tags)
        match = self.rules.match(tags)
        if match is not None:
            self.layers["amenities"].add(osm_id, wkb, "point", (*_values(get, AMENITY_TAGS), *match))
        if any(get(k) in values for k, values in STOP_RULES):
            self.layers["stops"].add(osm_id, wkb, "point", _values(get, STOP_TAGS))
        graph_tags = _values(get, GRAPH_NODE_TAGS)
        if any(v is not None for v in graph_tags):
            self.node_tags[node.id] = graph_tags

    def way(self, way: Any) -> None:
        get = way.tags.get
        probe = {k: get(k) for k in self.probe_keys}
        match = self.rules.match(probe)
        is_street = probe["highway"] is not None
        is_line = probe["waterway"] in WATERWAY_LINES
        is_area = _area_tags(probe, match)
        way_id = way.id
        is_member = way_id in self.rel.member_ways
        if not (is_street or is_line or is_area):
            if not is_member:
                return
            if len(way.tags) == 0:
                self._member_only(way)
                return
        wkb, node_ids = self._line(way, with_ids=is_street)
        if wkb is None:
            return
        osm_id = f"w{way_id}"
        if is_member:
            self.member_wkb[way_id] = wkb
        if is_street:
            self._street(way_id, node_ids, wkb, get)
        if is_line:
            self.layers["waterways"].add(osm_id, wkb, "line", _values(get, WATERWAY_TAGS))
        if is_area and way.is_closed():
            self._area(osm_id, wkb, "ring", get, probe, match)
        elif is_area:
            self.skipped["area_ways_not_closed"] += 1

    def area(self, area: Any) -> None:
        if area.from_way():
            return  # closed ways are polygonised from their own line, so that bad rings are counted
        get = area.tags.get
        probe = {k: get(k) for k in self.probe_keys}
        match = self.rules.match(probe)
        if not _area_tags(probe, match):
            return
        rel_id = area.orig_id()
        self.assembled.add(rel_id)
        try:
            wkb = bytes.fromhex(self.factory.create_multipolygon(area))
        except RuntimeError:
            self.skipped["multipolygons_invalid"] += 1
            return
        self._area(f"r{rel_id}", wkb, "area", get, probe, match)

    def _member_only(self, way: Any) -> None:
        """An untagged member way of a route relation: its line, without counting any problem."""
        try:
            self.member_wkb[way.id] = bytes.fromhex(self.factory.create_linestring(way))
        except (osmium.InvalidLocationError, RuntimeError):
            wkb, _ = _line_wkb_partial(way)
            if wkb is not None:
                self.member_wkb[way.id] = wkb

    def _line(self, way: Any, *, with_ids: bool) -> tuple[bytes | None, list[int]]:
        try:
            wkb = bytes.fromhex(self.factory.create_linestring(way, use_nodes=osmium.geom.ALL))
        except osmium.InvalidLocationError:
            partial, node_ids = _line_wkb_partial(way)
            self.skipped["ways_with_missing_nodes"] += 1
            if partial is None:
                self.skipped["ways_dropped_missing_nodes"] += 1
            return partial, node_ids
        except RuntimeError:
            self.skipped["ways_without_nodes" if len(way.nodes) == 0 else "ways_too_short"] += 1
            return None, []
        return wkb, ([n.ref for n in way.nodes] if with_ids else [])

    def _street(self, way_id: int, node_ids: list[int], wkb: bytes, get: Any) -> None:
        graph_tags = _values(get, GRAPH_WAY_TAGS)
        self.street_ids.append(way_id)
        self.street_nodes.append(node_ids)
        self.street_tags.append(graph_tags)
        self.street_wkb.append(wkb)
        if graph_tags[_AREA_AT] != "yes":
            self.layers["roads"].add(f"w{way_id}", wkb, "line", _values(get, ROAD_TAGS))

    def _area(
        self, osm_id: str, wkb: bytes, shape: str, get: Any, probe: dict[str, str | None], match: tuple[str, str] | None
    ) -> None:
        building = probe["building"]
        if building is not None and building != "no":
            self.layers["buildings"].add(osm_id, wkb, shape, _values(get, BUILDING_TAGS))
        if probe["landuse"] is not None:
            self.layers["landuse"].add(osm_id, wkb, shape, _values(get, LANDUSE_TAGS))
        if _is_water(probe):
            self.layers["waterways"].add(osm_id, wkb, shape, _values(get, WATERWAY_TAGS))
        if match is not None:
            self.layers["amenities"].add(osm_id, wkb, shape, (*_values(get, AMENITY_TAGS), *match))


def _area_tags(probe: Mapping[str, str | None], match: tuple[str, str] | None) -> bool:
    """Whether an object with these probed values (and amenity ``match``) is a wanted area, as :func:`_wanted_area`."""
    return probe["building"] is not None or probe["landuse"] is not None or match is not None or _is_water(probe)


def _is_water(probe: Mapping[str, str | None]) -> bool:
    """Tagged as one of :data:`WATER_AREAS`."""
    for key, value in WATER_AREAS:  # noqa: SIM110 - a plain loop is cheaper than any() with a generator here
        if probe[key] == value:
            return True
    return False


def _run_main(path: Path, main: _MainPass, *, progress: bool) -> osmium.index.LocationTable | None:
    # Areas osmium makes from closed ways are dropped in C++: only relation areas (id 2 * id + 1) pass.
    relation_areas = osmium.filter.IdFilter([2 * rel_id + 1 for rel_id in main.rel.area_relations])
    relation_areas.enable_for(osmium.osm.AREA)
    # Untagged ways do reach Python (they are few): route relations may need them.
    tagged = osmium.filter.EmptyTagFilter()
    tagged.enable_for(osmium.osm.NODE | osmium.osm.AREA)
    processor = (
        osmium.FileProcessor(str(path))
        .with_locations()
        .with_areas()
        .with_filter(osmium.filter.EntityFilter(osmium.osm.NODE | osmium.osm.WAY | osmium.osm.AREA))
        .with_filter(tagged)
        .with_filter(relation_areas)
    )
    dispatch = {"n": main.node, "w": main.way, "a": main.area}
    count = 0
    with tqdm(desc=f"reading {path.name}", unit=" objects", disable=not progress) as bar:
        for count, obj in enumerate(processor, start=1):
            dispatch[obj.type_str()](obj)
            if count % _PROGRESS_EVERY == 0:
                bar.update(_PROGRESS_EVERY)
        bar.update(count % _PROGRESS_EVERY)
    return processor.node_location_storage


def _member_node_locations(locations: Any, node_ids: set[int]) -> dict[int, tuple[float, float]]:
    out: dict[int, tuple[float, float]] = {}
    if locations is None:
        return out
    for node_id in node_ids:
        try:
            loc = locations.get(node_id)
        except (KeyError, RuntimeError, TypeError, OverflowError):
            continue
        if loc.valid():
            out[node_id] = (loc.lon, loc.lat)
    return out


def scan_file(path: Path, rules: UseRules, *, progress: bool = False) -> Scan:
    """Run the passes over ``path``; raises RuntimeError (from osmium) on unreadable input."""
    relations = _scan_relations(path, rules)
    main = _MainPass(relations, rules)
    locations = _run_main(path, main, progress=progress)
    member_nodes = _member_node_locations(locations, relations.member_nodes)
    main.skipped["multipolygons_not_assembled"] = len(relations.wanted_areas - main.assembled)
    return Scan(
        layers=main.layers,
        street_ids=main.street_ids,
        street_nodes=main.street_nodes,
        street_tags=main.street_tags,
        street_wkb=main.street_wkb,
        node_tags=main.node_tags,
        relations=relations,
        member_wkb=main.member_wkb,
        member_nodes=member_nodes,
        assembled_areas=main.assembled,
        skipped=main.skipped,
    )
