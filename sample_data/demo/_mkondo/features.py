"""Water, land use and amenities of Mkondo, added straight to the OSM document.

Positions are local metres; many are given in valley coordinates ``(x, v)`` with ``v`` the
distance north of the river centreline (see :mod:`frame`). Each builder returns the shapely
geometries (local metres) that houses must keep clear of, so that the buildings can be
filtered afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely

from .buildings import Footprints
from .frame import GRID_ANGLE, RIVER_HALF_WIDTH_M, SIZE_M, ZONES, arterial_point, river_y
from .network import BLOCK_P_M, BLOCK_Q_M, Network, grid_to_local
from .osmdoc import OsmDoc

__all__ = ["Site", "Water", "add_amenities", "add_landuse", "add_water", "civic_footprints", "xv"]

_Q_OFFSET_M = 35.0


def xv(x: float, v: float) -> tuple[float, float]:
    """Valley coordinates (x, v) -> local (x, y) metres."""
    return float(x), float(river_y(x)) + float(v)


@dataclass
class Water:
    """Water geometries in local metres: the river polygon and centreline, the stream and the drain."""

    river_area: shapely.Polygon
    river_line: shapely.LineString
    stream: shapely.LineString
    drain: shapely.LineString


@dataclass
class Site:
    """What the amenities leave behind: clearances for houses, civic buildings, and point amenities."""

    reserved: list = field(default_factory=list)
    buildings: list[tuple[np.ndarray, dict[str, str], str]] = field(default_factory=list)
    points: list[tuple[str, tuple[float, float], dict[str, str]]] = field(default_factory=list)


def _band(x0: float, x1: float, v0: float, v1: float) -> np.ndarray:
    """Closed ring (local m) of the valley band x0..x1, v0..v1, edges following the river's meander."""
    x = np.linspace(x0, x1, max(2, int((x1 - x0) / 20.0) + 1))
    lower = np.stack([x, river_y(x) + v0], 1)
    upper = np.stack([x[::-1], river_y(x[::-1]) + v1], 1)
    return np.concatenate([lower, upper])


def _closed_way(doc: OsmDoc, ring: np.ndarray, tags: dict[str, str]) -> int:
    ids = doc.add_nodes(ring)
    return doc.add_way([*ids, ids[0]], tags)


def _waterway_to_river(doc: OsmDoc, xy: np.ndarray, river_ids: np.ndarray, river_xy: np.ndarray, tags: dict) -> None:
    """A waterway whose last node is the nearest node of the river centreline (they join, as in OSM)."""
    end = int(np.argmin(np.hypot(*(river_xy - xy[-1]).T)))
    ids = doc.add_nodes(xy[:-1])
    doc.add_way([*ids, river_ids[end]], tags)


def add_water(doc: OsmDoc) -> Water:
    """The river (centreline + water area), a tributary stream and a concrete drain."""
    x = np.arange(-20.0, SIZE_M + 21.0, 20.0)
    river_xy = np.stack([x, river_y(x)], 1)
    river_ids = doc.add_nodes(river_xy)
    doc.add_way(river_ids, {"waterway": "river", "name": "Mto Mkondo"})
    ring = _band(-20.0, SIZE_M + 20.0, -RIVER_HALF_WIDTH_M, RIVER_HALF_WIDTH_M)
    _closed_way(doc, ring, {"natural": "water", "water": "river", "name": "Mto Mkondo"})
    v = np.linspace(400.0, 0.0, 41)
    sx = 1640.0 + 60.0 * (1.0 - v / 400.0) + 12.0 * np.sin(v / 35.0)
    stream = np.stack([sx, river_y(sx) + v], 1)
    _waterway_to_river(doc, stream, river_ids, river_xy, {"waterway": "stream", "name": "Kijito cha Mwembeni"})
    dv = np.linspace(-215.0, 0.0, 12)
    drain = np.stack([np.full_like(dv, 620.0), river_y(620.0) + dv], 1)
    _waterway_to_river(doc, drain, river_ids, river_xy, {"waterway": "drain", "width": "2"})
    return Water(
        river_area=shapely.Polygon(ring),
        river_line=shapely.LineString(river_xy),
        stream=shapely.LineString(stream),
        drain=shapely.LineString(drain),
    )


def add_landuse(doc: OsmDoc) -> list[tuple[shapely.Polygon, str]]:
    """Land-use polygons; returns (polygon in local m, kind) for the orthophoto."""
    x = np.linspace(0.0, SIZE_M, 111)
    north_edge = np.stack([x, river_y(x) + ZONES["planned_north"] - 15.0], 1)
    south_edge = np.stack([x, river_y(x) + ZONES["planned_south"] + 10.0], 1)
    north = np.concatenate([north_edge, [[SIZE_M, SIZE_M], [0.0, SIZE_M]]])
    south = np.concatenate([[[0.0, 0.0], [SIZE_M, 0.0]], south_edge[::-1]])
    (ix0, ix1), (iv0, iv1) = ZONES["informal_x"], ZONES["informal"]
    (dx0, dx1), (dv0, dv1) = ZONES["industrial_x"], ZONES["industrial"]
    (px0, px1), (pv0, pv1) = ZONES["park_x"], ZONES["park"]
    hw = RIVER_HALF_WIDTH_M
    polys = [
        (north, {"landuse": "residential", "name": "Mkondo Kilimani"}, "planned"),
        (south, {"landuse": "residential", "name": "Mkondo Kusini"}, "planned"),
        (_band(ix0, ix1, iv0, iv1), {"landuse": "residential", "informal": "yes", "name": "Bondeni"}, "informal"),
        (_band(*ZONES["farmland_x"], iv0, iv1), {"landuse": "farmland", "crop": "vegetables"}, "farmland"),
        (_band(dx0, dx1, dv0, dv1), {"landuse": "industrial", "name": "Viwanda vya Mkondo"}, "industrial"),
        (_band(0.0, SIZE_M, hw + 2.0, iv0), {"landuse": "grass"}, "grass"),
        (_band(0.0, px0, dv1, -hw - 2.0), {"landuse": "grass"}, "grass"),
        (_band(px1, SIZE_M, dv1, -hw - 2.0), {"landuse": "grass"}, "grass"),
        (_band(px0, px1, pv0, pv1), {"leisure": "park", "name": "Bustani ya Mto Mkondo"}, "park"),
    ]
    for ring, tags, _ in polys:
        _closed_way(doc, ring, tags)
    return [(shapely.Polygon(ring), kind) for ring, _, kind in polys]


def _rect(centre: tuple[float, float], w: float, d: float, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    sgn = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [w / 2, d / 2]
    return np.asarray(centre) + sgn @ np.array([[c, s], [-s, c]])


def _block_near(net: Network, target: tuple[float, float]) -> tuple[float, float]:
    """Grid-frame corner (p, q) of the complete planned block nearest to a local point."""
    ids, g = net.grid.ids, net.grid
    full = (ids[:-1, :-1] >= 0) & (ids[1:, :-1] >= 0) & (ids[:-1, 1:] >= 0) & (ids[1:, 1:] >= 0)
    jr, ic = np.nonzero(full)
    p = (ic + g.i0) * BLOCK_P_M
    q = (jr + g.j0) * BLOCK_Q_M + _Q_OFFSET_M
    centre = grid_to_local(p + BLOCK_P_M / 2, q + BLOCK_Q_M / 2)
    k = int(np.argmin(np.hypot(*(centre - target).T)))
    return float(p[k]), float(q[k])


def _block_rect(p: float, q: float, inset: float) -> np.ndarray:
    pp = np.array([p + inset, p + BLOCK_P_M - inset, p + BLOCK_P_M - inset, p + inset])
    qq = np.array([q + inset, q + inset, q + BLOCK_Q_M - inset, q + BLOCK_Q_M - inset])
    return grid_to_local(pp, qq)


def _civic_in_block(doc: OsmDoc, net: Network, site: Site, target: tuple, spec: dict) -> None:
    """A compound on a whole planned block (optional) with one civic building inside."""
    p, q = _block_near(net, target)
    site.reserved.append(shapely.Polygon(_block_rect(p, q, 4.0)))
    if spec.get("compound"):
        _closed_way(doc, _block_rect(p, q, 6.0), spec["compound"])
    centre = grid_to_local(p + BLOCK_P_M / 2, q + BLOCK_Q_M / 2)
    ring = _rect((float(centre[0]), float(centre[1])), spec["w"], spec["d"], GRID_ANGLE)
    site.buildings.append((ring, spec["building"], "planned"))


def _civic_sites(doc: OsmDoc, net: Network, site: Site) -> None:
    schools = [((600, 1500), "Shule ya Msingi Mkondo"), ((1700, 1800), "Shule ya Sekondari Kilimani"),
               ((400, 250), "Shule ya Msingi Kusini"), ((1900, 1500), "Shule ya Msingi Mashariki")]  # fmt: skip
    for target, name in schools:
        level = "2;3" if "Sekondari" in name else "1"
        compound = {"amenity": "school", "name": name, "isced:level": level}
        spec = {"compound": compound, "w": 50.0, "d": 12.0, "building": {"building": "school"}}
        _civic_in_block(doc, net, site, target, spec)
    hospital = {"building": "hospital", "amenity": "hospital", "healthcare": "hospital",
                "name": "Hospitali ya Mkondo", "beds": "120", "emergency": "yes"}  # fmt: skip
    _civic_in_block(
        doc,
        net,
        site,
        tuple(arterial_point(700.0) + np.array([190.0, 0.0])),
        {"w": 80.0, "d": 38.0, "building": hospital},
    )
    church = {"building": "church", "amenity": "place_of_worship", "religion": "christian",
              "denomination": "lutheran", "name": "Kanisa la Kilimani"}  # fmt: skip
    _civic_in_block(doc, net, site, (1000, 1700), {"w": 30.0, "d": 16.0, "building": church})


def _informal_sites(doc: OsmDoc, site: Site) -> None:
    art_x = float(arterial_point(0.0)[0])
    school = _rect(xv(900, 250), 45.0, 32.0, 0.1)
    _closed_way(doc, school, {"amenity": "school", "name": "Shule ya Msingi Bondeni", "isced:level": "1"})
    site.reserved.append(shapely.Polygon(school).buffer(2.0))
    site.buildings.append((_rect(xv(900, 250), 30.0, 9.0, 0.1), {"building": "school"}, "informal"))
    market = _rect(xv(art_x + 55.0, 205.0), 62.0, 38.0, 0.12)
    _closed_way(
        doc, market, {"amenity": "marketplace", "name": "Soko la Bondeni", "opening_hours": "Mo-Su 06:00-19:00"}
    )
    site.reserved.append(shapely.Polygon(market).buffer(2.0))
    centre = {"building": "yes", "amenity": "community_centre", "name": "Ukumbi wa Jamii Bondeni"}
    mosque = {"building": "mosque", "amenity": "place_of_worship", "religion": "muslim", "name": "Msikiti wa Bondeni"}
    civic = [(xv(1500, 368), 24.0, 14.0, centre), (xv(art_x - 160.0, 300), 18.0, 18.0, mosque)]
    for centre, w, d, tags in civic:
        ring = _rect(centre, w, d, 0.12)
        site.reserved.append(shapely.Polygon(ring).buffer(3.0))
        site.buildings.append((ring, tags, "informal"))


_POINTS = {
    "clinic": [
        ((800, 700), "Zahanati ya Kilimani"),
        ((1700, -300), "Zahanati ya Kusini"),
        ((1160, 370), "Zahanati ya Bondeni"),
    ],
    "kindergarten": [((1400, 900), "Chekechea Tumaini"), ((700, 365), "Chekechea Bondeni")],
    "shelter": [((1300, 1100), "Kituo cha Hifadhi Kilimani"), ((500, 900), "Kituo cha Hifadhi Magharibi")],
    "assembly": [
        ((300, 1150), "Eneo la Mkutano 1"),
        ((1000, 700), "Eneo la Mkutano 2"),
        ((1800, 800), "Eneo la Mkutano 3"),
        ((900, -420), "Eneo la Mkutano 4"),
    ],
    "tap": [
        (300, 500),
        (700, 600),
        (1100, 800),
        (1500, 520),
        (1900, 650),
        (900, 1000),
        (300, -300),
        (900, -350),
        (1700, -420),
        (620, 370),
        (1300, 215),
        (2000, 370),
        (1000, 180),
    ],
    "well": [(640, 300), (1950, 150), (600, -250)],
    "toilets": [(1330, 190), (800, 250), (1650, 120), (1000, 330), (1500, -100), (1190, -300), (1800, 700), (660, 360)],
    "worship": [
        ((650, 150), "muslim", "Msikiti wa Mtoni"),
        ((1500, -350), "muslim", "Msikiti wa Kusini"),
        ((1200, 1000), "christian", "Kanisa Katoliki Mt. Yosefu"),
    ],
}
_TAP_STYLES = [
    {"amenity": "drinking_water", "man_made": "water_tap"},
    {"man_made": "water_tap", "drinking_water": "yes"},
    {"amenity": "drinking_water"},
]
_NAMED = {
    "clinic": {"amenity": "clinic", "healthcare": "clinic"},
    "kindergarten": {"amenity": "kindergarten"},
    "shelter": {"amenity": "shelter", "shelter_type": "basic_hut", "emergency": "yes"},
    "assembly": {"emergency": "assembly_point"},
}


def _point_tags(kind: str, k: int, extra: tuple) -> dict[str, str]:
    """OSM tags of the k-th point amenity of a kind (water taps tagged in three styles seen in OSM)."""
    if kind in _NAMED:
        return _NAMED[kind] | {"name": extra[0]}
    if kind == "tap":
        return _TAP_STYLES[0 if k < 8 else 1 if k < 11 else 2] | ({"fee": "yes"} if k % 3 == 0 else {})
    if kind == "well":
        return {"man_made": "water_well", "pump": "manual", "drinking_water": "yes" if k else "no"}
    if kind == "toilets":
        return {"amenity": "toilets", "access": "yes", "fee": "yes" if k % 2 else "no"}
    return {"amenity": "place_of_worship", "religion": extra[0], "name": extra[1]}


def add_amenities(doc: OsmDoc, net: Network) -> Site:
    """Civic sites (compounds + buildings) and point amenities (positions in valley coordinates)."""
    site = Site()
    _civic_sites(doc, net, site)
    _informal_sites(doc, site)
    for kind, entries in _POINTS.items():
        for k, entry in enumerate(entries):
            if isinstance(entry[0], tuple):
                (x, v), extra = entry[0], entry[1:]
            else:
                (x, v), extra = entry, ()
            y = float(river_y(x)) + v
            tags = _point_tags(kind, k, extra)
            doc.add_node(float(x), float(y), tags)
            site.points.append((kind, (float(x), float(y)), tags))
            site.reserved.append(shapely.Point(x, y).buffer(3.0))
    return site


def civic_footprints(site: Site) -> Footprints:
    """The civic buildings as :class:`Footprints` (so they are committed like all other buildings)."""
    xy = np.concatenate([ring for ring, _, _ in site.buildings])
    rings = [np.arange(4 * k, 4 * k + 4) for k in range(len(site.buildings))]
    tags = [tags for _, tags, _ in site.buildings]
    zone = [zone for _, _, zone in site.buildings]
    return Footprints(xy, rings, tags, zone, ["concrete"] * len(rings))
