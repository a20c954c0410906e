"""Coverage: walking distances on a known graph, the demo city's SDG 11.2.1-style share, route stats."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest

from civicmap.layers.transit import (
    euclidean_catchment,
    feed_stops,
    gtfs_from_osm,
    read_gtfs,
    route_stats,
    stop_coverage,
    walk_distance_m,
)
from civicmap.sources.osm import read_osm

DEMO = Path(__file__).resolve().parents[2] / "sample_data" / "demo"
DEG_M = 111_195.0  # metres per degree of latitude on the WGS 84 mean sphere


def _line_graph() -> nx.MultiDiGraph:
    """Four nodes 200 m apart along a meridian near the equator, walkable both ways."""
    g = nx.MultiDiGraph(crs="EPSG:4326")
    for i in range(4):
        g.add_node(i, x=36.8, y=i * 200 / DEG_M)
    for i in range(3):
        g.add_edge(i, i + 1, length=200.0)
        g.add_edge(i + 1, i, length=200.0)
    return g


def test_walk_distance_is_network_distance_plus_snapping() -> None:
    stops = gpd.GeoSeries.from_xy([36.8], [0.0], crs="EPSG:4326")
    points = gpd.GeoSeries.from_xy(
        [36.8, 36.8 + 10 / DEG_M, 36.8], [400 / DEG_M, 600 / DEG_M, 200 / DEG_M], crs="EPSG:4326"
    )
    dist = walk_distance_m(points, stops, _line_graph(), max_walk_m=500)
    assert dist[0] == pytest.approx(400, abs=1.0)
    assert np.isinf(dist[1])  # 600 m + 10 m > 500 m
    assert dist[2] == pytest.approx(200, abs=1.0)


def test_euclidean_catchment_area() -> None:
    stops = gpd.GeoDataFrame(geometry=gpd.points_from_xy([36.8, 36.8], [-1.29, -1.29 + 2000 / DEG_M]), crs="EPSG:4326")
    area = euclidean_catchment(stops, radius_m=500)["area_km2"].iloc[0]
    assert area == pytest.approx(2 * math.pi * 0.25, rel=0.01)  # two disjoint discs


def test_demo_coverage_and_route_stats() -> None:
    osm = read_osm(DEMO / "city.osm")
    feed = gtfs_from_osm(osm)
    cover = stop_coverage(osm.buildings, feed_stops(feed), osm.street_graph("walk"), max_walk_m=500)
    assert len(cover.buildings) == len(osm.buildings)
    assert cover.share_buildings == pytest.approx(0.687, abs=0.01)  # measured 68.7 %
    finite = cover.buildings["walk_to_stop_m"][cover.buildings["covered"]]
    assert finite.max() <= 500 and len(cover.uncovered) > 0
    assert not cover.buildings.loc[cover.buildings.within(cover.uncovered.union_all()), "covered"].any()
    stats = route_stats(feed)
    assert stats.loc["r7", "headway_min"] == 10 and stats.loc["r7", "span_h"] == 16
    assert stats.loc["r8", "speed_kmh"] == pytest.approx(20, abs=0.1)  # default speed, no duration tag
    assert 1.5 < stats.loc["r7", "length_km"] < 3


def test_route_stats_length_agrees_with_gtfs_kit_on_cairns(realdata: Path) -> None:
    import pandas as pd

    feed, _ = read_gtfs(realdata / "gtfs" / "gtfskit_cairns_gtfs.zip")
    ours = route_stats(feed)
    expected = pd.read_csv(realdata / "gtfs" / "gtfskit_cairns_trip_stats.csv", dtype={"route_id": str})
    longest = expected.groupby("route_id")["distance"].max()  # gtfs_kit: km from shapes
    joined = ours.join(longest.rename("gk_km"), how="inner")
    assert len(joined) == 22
    assert np.allclose(joined["length_km"], joined["gk_km"], rtol=0.01)
