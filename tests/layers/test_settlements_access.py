from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely

from civicmap.errors import InputError
from civicmap.layers.settlements import service_access, service_gaps, street_access, street_intersections

UTM = "EPSG:32737"
X0, Y0 = 530_000.0, 9_245_000.0


def buildings(xy: list[tuple[float, float]], size: float = 6.0) -> gpd.GeoDataFrame:
    geoms = [shapely.box(X0 + x, Y0 + y, X0 + x + size, Y0 + y + size) for x, y in xy]
    return gpd.GeoDataFrame(geometry=geoms, crs=UTM)


def lines(*coords: list[tuple[float, float]]) -> gpd.GeoDataFrame:
    geoms = [shapely.LineString([(X0 + x, Y0 + y) for x, y in c]) for c in coords]
    return gpd.GeoDataFrame(geometry=geoms, crs=UTM)


def test_block_three_buildings_deep() -> None:
    # a block closed by streets; rows of houses at 2 m, 14 m and 26 m from the southern street
    streets = lines([(-100, 0), (100, 0)], [(-100, 100), (100, 100)], [(-100, 0), (-100, 100)], [(100, 0), (100, 100)])
    rows = [(x, y) for y in (2, 14, 26) for x in (-20, -8, 4, 16)]
    out = street_access(buildings(rows), streets, frontage_m=5)
    assert out["block_depth"].tolist() == [1] * 4 + [2] * 4 + [3] * 4
    assert out["street_distance_m"].iloc[:4].tolist() == pytest.approx([2] * 4)
    assert out["street_distance_m"].iloc[8] == pytest.approx(26)
    assert out["block_id"].nunique() == 1 and out["street_reachable"].all()


def test_buildings_with_no_street() -> None:
    empty = lines()
    out = street_access(buildings([(0, 0), (20, 0)]), empty.iloc[:0])
    assert out["street_distance_m"].isna().all()
    assert not out["street_reachable"].any()
    # a street exists, but a separate block (closed by a ring road) has none at its front
    ring = [(200, 200), (400, 200), (400, 400), (200, 400), (200, 200)]
    far = street_access(buildings([(0, 2), (300, 300), (310, 300)]), lines([(-50, 0), (50, 0)], ring), frontage_m=5)
    assert far["block_depth"].iloc[0] == 1
    assert far["block_depth"].iloc[1:].isna().all() and not far["street_reachable"].iloc[1:].any()
    with pytest.raises(InputError, match="frontage_m"):
        street_access(buildings([(0, 0)]), empty, frontage_m=-1)


def test_street_intersections() -> None:
    plus = lines([(-50, 0), (50, 0)], [(0, -50), (0, 50)], [(100, 0), (200, 0)])
    points = street_intersections(plus)
    assert len(points) == 1
    assert (points.x.iloc[0], points.y.iloc[0]) == pytest.approx((X0, Y0))


def line_graph() -> nx.MultiDiGraph:
    """Nodes 1..4 every 100 m along y = 0 (metric CRS), walkable both ways."""
    graph = nx.MultiDiGraph(crs=UTM)
    for i in range(1, 5):
        graph.add_node(i, x=X0 + (i - 1) * 100, y=Y0)
    for i in range(1, 4):
        graph.add_edge(i, i + 1, length=100.0)
        graph.add_edge(i + 1, i, length=100.0)
    return graph


def test_service_access_is_a_network_distance() -> None:
    houses = buildings([(-3, 7), (197, -13)])  # centroids 10 m north of node 1, 10 m south of node 3
    water = gpd.GeoDataFrame(
        {"use": ["water", "health"]}, geometry=[shapely.Point(X0 + 300, Y0 + 5), shapely.Point(X0, Y0)], crs=UTM
    )
    stops = gpd.GeoDataFrame(geometry=[shapely.Point(X0 + 100, Y0)], crs=UTM)
    out = service_access(houses, line_graph(), water, transit_stops=stops)
    assert out["water_m"].tolist() == pytest.approx([10 + 300 + 5, 10 + 100 + 5])
    assert out["health_m"].tolist() == pytest.approx([10 + 1e-6, 10 + 200 + 1e-6])
    assert out["transit_m"].tolist() == pytest.approx([110, 110], abs=1e-5)
    assert out.attrs["missing_services"] == ["sanitation", "school", "shelter"]
    assert out["sanitation_m"].isna().all()  # missing, never zero


def test_empty_facility_layer_is_missing_not_zero() -> None:
    empty = gpd.GeoDataFrame({"use": []}, geometry=gpd.GeoSeries([], crs=UTM), crs=UTM)
    out = service_access(buildings([(0, 5)]), line_graph(), empty)
    assert out.filter(like="_m").drop(columns="network_snap_m").isna().all().all()
    gaps = service_gaps(out)
    assert gaps["missing"].all() and gaps["median_m"].isna().all()
    with pytest.raises(InputError, match="'use'"):
        service_access(buildings([(0, 5)]), line_graph(), empty.drop(columns="use"))


def test_service_gap_table() -> None:
    water = gpd.GeoDataFrame({"use": ["water"]}, geometry=[shapely.Point(X0, Y0)], crs=UTM)
    houses = buildings([(-3, -3), (297, -3)])  # at node 1 and node 4
    gaps = service_gaps(service_access(houses, line_graph(), water), gap_m={"water": 250})
    assert gaps.loc["water", "median_m"] == pytest.approx(150, abs=1e-3)
    assert gaps.loc["water", "share_beyond_gap"] == 0.5
    assert np.isnan(gaps.loc["health", "share_beyond_gap"])
