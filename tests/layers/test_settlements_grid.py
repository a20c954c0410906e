from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely import affinity

from civicmap.errors import InputError
from civicmap.layers.settlements import building_changes, informality_index, public_cells, settlement_grid
from civicmap.layers.settlements.index import INDEX_CLASSES, IndexClass, classify

UTM = "EPSG:32737"
X0, Y0 = 530_000.0, 9_245_000.0


def houses(xy: list[tuple[float, float]], size: float = 10.0, angle: float = 0.0) -> gpd.GeoDataFrame:
    geoms = [affinity.rotate(shapely.box(X0 + x, Y0 + y, X0 + x + size, Y0 + y + size), angle) for x, y in xy]
    return gpd.GeoDataFrame(
        {"area": [size * size] * len(xy), "orientation": [angle] * len(xy)}, geometry=geoms, crs=UTM
    )


def test_square_grid_counts_coverage_and_circular_spread() -> None:
    frame = houses([(5, 5), (30, 30), (60, 60), (150, 50)])
    frame["orientation"] = [10.0, 10.0, 40.0, 5.0]  # 10 and 40 are 30 degrees apart on the 90-degree circle
    grid = settlement_grid(frame, kind="square", cell_size_m=100)
    assert grid["building_count"].tolist() == [3, 1]
    assert grid["coverage_ratio"].tolist() == pytest.approx([300 / 10_000, 100 / 10_000])
    assert grid["area_median_m2"].iloc[0] == 100
    assert grid.loc[1, "orientation_circstd_deg"] == pytest.approx(0.0, abs=1e-6)
    assert 10 < grid.loc[0, "orientation_circstd_deg"] < 20
    assert not grid.attrs["cell_smaller_than_building"]


def test_cell_smaller_than_buildings_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        grid = settlement_grid(houses([(0, 0), (100, 0)], size=30), kind="square", cell_size_m=20)
    assert grid.attrs["cell_smaller_than_building"]
    assert "smaller than the median building" in caplog.text


def test_h3_cells_are_about_a_hectare_and_hold_every_building() -> None:
    rng = np.random.default_rng(1)
    frame = houses([tuple(p) for p in rng.uniform(0, 600, size=(300, 2))], size=5)
    grid = settlement_grid(frame)  # H3 res 10
    assert grid["building_count"].sum() == 300
    assert grid["cell_area_m2"].median() == pytest.approx(15_000, rel=0.15)
    assert grid["cell_id"].str.len().eq(15).all()
    coarse = settlement_grid(frame, resolution=9)
    assert len(coarse) < len(grid)
    with pytest.raises(InputError, match="resolution"):
        settlement_grid(frame, resolution=16)


def test_hazard_share_and_street_density() -> None:
    frame = houses([(5, 5), (55, 5), (5, 55), (55, 55)])
    zones = gpd.GeoDataFrame(
        {"affected": [True, False]},
        geometry=[shapely.box(X0, Y0, X0 + 50, Y0 + 100), shapely.box(X0 + 50, Y0, X0 + 100, Y0 + 100)],
        crs=UTM,
    )
    streets = gpd.GeoDataFrame(
        geometry=[
            shapely.LineString([(X0 - 10, Y0 + 50), (X0 + 110, Y0 + 50)]),
            shapely.LineString([(X0 + 50, Y0 - 10), (X0 + 50, Y0 + 110)]),
        ],
        crs=UTM,
    )
    grid = settlement_grid(frame, kind="square", cell_size_m=100, hazard=zones, streets=streets)
    assert grid.loc[0, "hazard_share"] == 0.5
    assert grid.loc[0, "street_km_per_km2"] == pytest.approx(0.2 / 0.01)
    assert grid.loc[0, "intersections_per_km2"] == pytest.approx(100)


def grid_of(values: list[float], counts: list[int]) -> gpd.GeoDataFrame:
    cells = [shapely.box(X0 + i * 100, Y0, X0 + (i + 1) * 100, Y0 + 100) for i in range(len(values))]
    return gpd.GeoDataFrame(
        {
            "cell_id": [str(i) for i in range(len(values))],
            "building_count": counts,
            "area_median_m2": values,
            "coverage_ratio": values[::-1],
        },
        geometry=cells,
        crs=UTM,
    )


def test_index_ranks_small_dense_cells_high_and_classes() -> None:
    grid = informality_index(grid_of([20.0, 40.0, 80.0, 160.0], [9, 9, 9, 3]))
    # small buildings and high coverage both point to cell 0
    assert grid["informality_index"].tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25])
    assert grid["informality_class"].tolist() == ["likely", "likely", "possible", "unlikely"]
    assert set(grid.attrs["components_used"]) == {"coverage", "small_buildings"}
    minmax = informality_index(grid_of([20.0, 40.0, 80.0, 160.0], [9, 9, 9, 3]), method="minmax")
    assert minmax["informality_index"].iloc[[0, -1]].tolist() == pytest.approx([1.0, 0.0])
    assert classify(grid["informality_index"].iloc[:0]).empty
    with pytest.raises(InputError, match="tile"):
        informality_index(grid, classes=(IndexClass("a", 0, 0.5), IndexClass("b", 0.6, 1)))
    assert INDEX_CLASSES[0].name == "unlikely"


def test_public_cells_suppress_small_cells() -> None:
    grid = informality_index(grid_of([20.0, 40.0, 80.0, 160.0], [9, 5, 4, 1]))
    assert public_cells(grid)["cell_id"].tolist() == ["0", "1"]
    blank = public_cells(grid, k=5, blank=True)
    assert blank["suppressed"].tolist() == [False, False, True, True]
    assert blank.loc[2, "informality_index"] is None and blank.loc[2, "building_count"] is None
    with pytest.raises(InputError, match="k=0"):
        public_cells(grid, k=0)


def test_building_changes_new_removed_changed_and_flags() -> None:
    before = houses([(0, 0), (50, 0), (100, 0)])
    after = houses([(0, 0), (50, 0), (200, 0), (300, 0)])
    after.loc[0, "geometry"] = shapely.box(X0, Y0, X0 + 10.2, Y0 + 10)  # re-digitised: IoU 0.98
    after.loc[1, "geometry"] = shapely.box(X0 + 50, Y0, X0 + 65, Y0 + 10)  # extended: IoU 0.67
    hazard = gpd.GeoDataFrame(
        {"affected": [True]}, geometry=[shapely.box(X0 + 190, Y0 - 5, X0 + 260, Y0 + 20)], crs=UTM
    )
    reserved = gpd.GeoDataFrame(geometry=[shapely.box(X0 + 40, Y0 - 5, X0 + 70, Y0 + 20)], crs=UTM)
    out = building_changes(before, after, hazard=hazard, reserved=reserved)
    kinds = out.set_index("change")
    assert sorted(out["change"]) == ["changed", "new", "new", "removed", "unchanged"]
    assert kinds.loc["unchanged", "iou"] == pytest.approx(100 / 102)
    assert kinds.loc["changed", "iou"] == pytest.approx(100 / 150)
    assert kinds.loc["removed", "before_id"] == 2
    assert out.loc[out["flagged"], "after_id"].tolist() == [1, 2]  # extension on reserve, new house in hazard
    assert not out.loc[out["after_id"] == 3, "flagged"].any()
    with pytest.raises(InputError, match="match_iou"):
        building_changes(before, after, match_iou=0.9, same_iou=0.5)
