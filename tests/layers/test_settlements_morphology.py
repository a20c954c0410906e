from __future__ import annotations

import logging

import geopandas as gpd
import momepy
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely import affinity

from civicmap.errors import CRSError, GeometryError
from civicmap.layers.settlements import building_morphology
from civicmap.layers.settlements.morphology import MORPHOLOGY_COLUMNS, building_graphs

UTM = "EPSG:32737"
X0, Y0 = 530_000.0, 9_245_000.0


def frame(geoms: list[shapely.Geometry], crs: str = UTM) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"name": [f"b{i}" for i in range(len(geoms))]}, geometry=geoms, crs=crs)


def square(x: float, y: float, size: float = 10.0) -> shapely.Polygon:
    return shapely.box(X0 + x, Y0 + y, X0 + x + size, Y0 + y + size)


def test_square_and_rotated_rectangle_shape() -> None:
    rect = affinity.rotate(shapely.box(X0 + 100, Y0, X0 + 120, Y0 + 10), 30, origin="centroid")
    out = building_morphology(frame([square(0, 0), rect, square(0, 50), square(60, 60)]))
    assert list(out.columns[-len(MORPHOLOGY_COLUMNS) :]) == list(MORPHOLOGY_COLUMNS)
    assert out.loc[0, "area"] == pytest.approx(100)
    assert out.loc[0, "perimeter"] == pytest.approx(40)
    assert out.loc[0, "elongation"] == pytest.approx(1.0)
    assert out.loc[0, "orientation"] == pytest.approx(0.0, abs=1e-6)
    assert out.loc[1, "elongation"] == pytest.approx(0.5)
    assert out.loc[1, "orientation"] == pytest.approx(30.0, abs=0.01)
    assert out.loc[0, "shared_walls"] == 0
    assert out.loc[0, "courtyards"] == 0


def test_two_touching_squares_share_a_wall() -> None:
    out = building_morphology(frame([square(0, 0), square(10, 0), square(100, 100, 6)]))
    assert out.loc[0, "shared_walls"] == pytest.approx(10)
    assert out.loc[1, "shared_walls"] == pytest.approx(10)
    assert out.loc[2, "shared_walls"] == 0
    assert out.loc[0, "neighbour_distance"] == pytest.approx((0 + np.hypot(90, 90)) / 2)
    # complete neighbourhood of 3 (plus self): 2 structures among 3 buildings
    assert out.loc[0, "adjacency"] == pytest.approx(2 / 3)


def test_courtyards_of_one_building_and_of_a_ring_of_buildings() -> None:
    hole = shapely.Polygon(
        shapely.box(X0, Y0, X0 + 30, Y0 + 30).exterior.coords,
        [shapely.box(X0 + 10, Y0 + 10, X0 + 20, Y0 + 20).exterior.coords],
    )
    ring = [
        square(100, 100, 30).difference(square(110, 110, 10)).intersection(b)
        for b in (
            shapely.box(X0 + 100, Y0 + 100, X0 + 115, Y0 + 130),
            shapely.box(X0 + 115, Y0 + 100, X0 + 130, Y0 + 130),
        )
    ]
    out = building_morphology(frame([hole, *ring, square(300, 300)]))
    assert out["courtyards"].tolist() == [1, 1, 1, 0]
    assert out.loc[1, "shared_walls"] == pytest.approx(20)  # the two halves touch along x = 115 outside the hole


def test_geographic_input_is_computed_in_local_utm(caplog: pytest.LogCaptureFixture) -> None:
    metric = frame([square(0, 0), square(10, 0), square(40, 5, 8), square(5, 40, 12)])
    with caplog.at_level(logging.INFO, logger="civicmap.layers.settlements"):
        out = building_morphology(metric.to_crs(4326))
    assert out.crs.to_epsg() == 32737
    assert "local UTM zone" in caplog.text
    np.testing.assert_allclose(out["area"], [100, 100, 64, 144], rtol=1e-6)
    np.testing.assert_allclose(out["shared_walls"], [10, 10, 0, 0], atol=1e-3)


def test_invalid_and_overlapping_footprints_are_cleaned_and_reported() -> None:
    bowtie = shapely.Polygon([(X0, Y0), (X0 + 10, Y0 + 10), (X0 + 10, Y0), (X0, Y0 + 10)])
    out = building_morphology(frame([bowtie, square(50, 50), square(55, 50), None, shapely.Polygon()]))
    report = out.attrs["cleaning"]
    assert report["repaired"] == 1 and report["dropped_null"] == 1 and report["dropped_empty_or_invalid"] == 1
    assert report["overlapping"] == 2
    assert list(out.index) == [0, 1, 2]
    assert out.loc[0, "area"] == pytest.approx(50)


def test_bad_input() -> None:
    with pytest.raises(CRSError, match="no CRS"):
        building_morphology(gpd.GeoDataFrame(geometry=[square(0, 0)]))
    with pytest.raises(GeometryError, match="usable polygon"):
        building_morphology(frame([shapely.LineString([(X0, Y0), (X0 + 1, Y0)])]))


def test_momepy_parity_on_kathmandu(realdata) -> None:
    raw = gpd.read_file(realdata / "settlements" / "kathmandu" / "fmtm_kathmandu_extract.geojson")
    buildings = raw.loc[raw.geom_type == "Polygon"].to_crs(32645)
    out = building_morphology(buildings)
    assert len(out) == 667
    geoms = out[[out.geometry.name]]
    contiguity, near = building_graphs(geoms.geometry)
    orientation = momepy.orientation(geoms)
    expected = pd.DataFrame(
        {
            "elongation": momepy.elongation(geoms),
            "orientation": orientation,
            "alignment": momepy.alignment(orientation, near),
            "neighbour_distance": momepy.neighbor_distance(geoms, near),
            "shared_walls": momepy.shared_walls(geoms),
            "adjacency": momepy.building_adjacency(contiguity, near),
            "courtyards": momepy.courtyards(geoms, contiguity),
        }
    )
    for column in expected:
        np.testing.assert_allclose(out[column], expected[column].reindex(out.index), rtol=1e-9, err_msg=column)
    assert out["area"].median() == pytest.approx(76, abs=2)  # README: median 76 m²
    # OSM footprints digitised side by side rarely touch exactly: momepy's strict walls see none
    assert (out["shared_walls"] > 0).mean() == 0
    fuzzy = building_morphology(buildings, wall_tolerance_m=0.2)
    np.testing.assert_allclose(fuzzy["shared_walls"], momepy.shared_walls(geoms, strict=False, tolerance=0.2))
    assert 0.15 < (fuzzy["shared_walls"] > 0).mean() < 0.3  # measured 0.202: some joined houses
