"""Assemble the whole vector city (streets, water, land use, amenities, buildings, transit) in order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from .buildings import (
    Footprints,
    add_bad_geometries,
    commit_footprints,
    drop_conflicts,
    industrial_buildings,
    informal_buildings,
    planned_buildings,
)
from .features import Site, Water, add_amenities, add_landuse, add_water, civic_footprints, xv
from .network import Network, Street, build_network, commit_streets
from .osmdoc import OsmDoc
from .transit import Line, add_route_relations, add_transit

__all__ = ["ROAD_HALF_WIDTH_M", "City", "build_city"]

ROAD_HALF_WIDTH_M = {
    "primary": 9.0, "secondary": 7.5, "tertiary": 6.5, "residential": 5.0, "unclassified": 3.5,
    "service": 3.0, "track": 2.5, "footway": 1.2, "path": 1.0,
}  # fmt: skip
_BAD_SPOT_XV = (705.0, 118.0)


@dataclass
class City:
    """The generated city: its OSM document and the geometry the rasters and surveys are drawn from."""

    doc: OsmDoc
    network: Network
    streets: list[Street]
    street_way_ids: list[int]
    buildings: Footprints
    water: Water
    landuse: list[tuple[shapely.Polygon, str]]
    site: Site
    lines: list[Line]
    bad_geometry_ids: dict[str, int]


def _street_lines(doc: OsmDoc, streets: list[Street]) -> tuple[np.ndarray, np.ndarray]:
    xy = doc.coords()
    lines = np.array([shapely.LineString(xy[np.asarray(s.refs) - 1]) for s in streets], dtype=object)
    half = np.array([ROAD_HALF_WIDTH_M[s.tags["highway"]] for s in streets])
    return lines, half


def _obstacles(doc: OsmDoc, streets: list[Street], water: Water, site: Site, bad_spot: np.ndarray) -> np.ndarray:
    lines, half = _street_lines(doc, streets)
    roads = shapely.buffer(lines, half, cap_style="flat")
    waters = [water.river_area.buffer(6.0), water.stream.buffer(4.0), water.drain.buffer(3.0)]
    bad = shapely.box(*(bad_spot - 4.0), *(bad_spot + np.array([20.0, 19.0])))
    return np.concatenate([roads, np.array(waters + site.reserved + [bad], dtype=object)])


def build_city(rngs: dict[str, np.random.Generator]) -> City:
    """Build the vector city in the order the pieces depend on each other; every random draw is seeded."""
    doc = OsmDoc()
    net = build_network(doc, rngs["streets"])
    water = add_water(doc)
    landuse = add_landuse(doc)
    site = add_amenities(doc, net)
    lines, streets = add_transit(doc, net)
    way_ids = commit_streets(doc, streets)
    add_route_relations(doc, lines, streets, way_ids)
    bad_spot = np.array(xv(*_BAD_SPOT_XV))
    obstacles = _obstacles(doc, streets, water, site, bad_spot)
    houses = Footprints.concat(
        [
            planned_buildings(net.grid, rngs["buildings"]),
            informal_buildings(net.informal, rngs["buildings"]),
            industrial_buildings(rngs["buildings"]),
        ]
    )
    houses = drop_conflicts(houses, obstacles)
    civic = drop_conflicts(civic_footprints(site), obstacles[: len(streets)])
    buildings = commit_footprints(doc, Footprints.concat([houses, civic]))
    bad = add_bad_geometries(doc, bad_spot)
    return City(doc, net, streets, way_ids, buildings, water, landuse, site, lines, bad)
