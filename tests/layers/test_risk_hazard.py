"""Hazard classes: the interval rule, validation, shipped defaults, polygon and raster classification."""

from __future__ import annotations

import dataclasses

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely

from civicmap.errors import CRSError, InputError, NotFoundError
from civicmap.layers.risk import (
    FLOOD_PETABENCANA,
    FLOOD_WET_DRY,
    GENERIC,
    TSUNAMI,
    HazardClass,
    HazardClassification,
    classify_hazard_polygons,
    classify_hazard_raster,
    hazard_grid_polygons,
)
from civicmap.layers.risk.hazard import raster_levels


@pytest.fixture(scope="module")
def jakarta(realdata):
    return realdata / "hazard" / "jakarta"


# ---- the interval rule: lower < x <= upper, first class closed at the bottom ------------------


def test_value_exactly_on_a_threshold_goes_to_the_less_severe_class():
    # PetaBencana: use_caution [0, 0.1], low (0.1, 0.7], medium (0.7, 1.5], high (1.5, inf)
    depths = [0.0, 0.1, 0.1000001, 0.7, 0.7000001, 1.5, 1.5000001, 50.0]
    assert FLOOD_PETABENCANA.classify(depths).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    # wet/dry: exactly 1 m is still dry (InaSAFE: wet is "more than 1 m")
    assert FLOOD_WET_DRY.classify([0.0, 1.0, 1.0001]).tolist() == [0, 0, 1]


def test_float32_values_are_compared_in_float32():
    # float32(0.7) is 0.69999999 < 0.7 in float64 but *equal* to the threshold in float32: class low
    values = np.array([0.1, 0.7, 1.5], dtype=np.float32)
    assert FLOOD_PETABENCANA.classify(values).tolist() == [0, 1, 2]


def test_not_classed_values_get_minus_one():
    values = np.array([-0.5, np.nan, -9999.0, 0.05], dtype=np.float64)
    assert FLOOD_PETABENCANA.classify(values, nodata=-9999.0).tolist() == [-1, -1, -1, 0]
    # generic classes stop at 4: above the last upper bound is not classed either
    assert GENERIC.classify([0, 2, 2.5, 4, 4.01]).tolist() == [0, 0, 1, 2, -1]


def test_classify_keeps_the_array_shape_and_integer_input():
    grid = np.array([[0, 1], [2, 3]], dtype=np.int32)
    assert GENERIC.classify(grid).tolist() == [[0, 0], [0, 1]]


def test_severity_is_rank_over_number_of_classes():
    assert FLOOD_PETABENCANA.severity([-1, 0, 3]).tolist() == [0.0, 0.25, 1.0]


# ---- validation ------------------------------------------------------------------------------


def test_thresholds_out_of_order_name_the_classes():
    with pytest.raises(InputError, match=r"'b'.*lower 2.0 must be less than upper 1.0"):
        HazardClassification.from_thresholds("x", [0, 2, 1, 3], ["a", "b", "c"], unit="m", affected=[0, 1, 1])


def test_gap_and_overlap_are_named_and_reported_together():
    classes = [
        HazardClass("dry", 0, 1, affected=False),
        HazardClass("wet", 1.5, 3, affected=True),
        HazardClass("deep", 2, 9, affected=True),
    ]
    with pytest.raises(InputError) as err:
        HazardClassification("bad", "m", tuple(classes))
    assert "gap between 'dry'" in str(err.value)
    assert "overlap or wrong order: 'wet'" in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"class_names": ["a", "a"]}, "repeated"),
        ({"class_names": ["total", "b"]}, "reserved"),
        ({"displacement_rates": [0.0, 1.5]}, r"displacement_rate 1.5 must lie in \[0, 1\]"),
        ({"colours": ["red", "#ffffff"]}, "colour 'red'"),
        ({"class_names": ["a"]}, "thresholds has 3 values, expected 2"),
    ],
)
def test_bad_classification_inputs(kwargs, message):
    args = {"class_names": ["a", "b"], "unit": "m", "affected": [False, True]} | kwargs
    if len(args["class_names"]) == 1:
        args["affected"] = [True]
    with pytest.raises(InputError, match=message):
        HazardClassification.from_thresholds("t", [0, 1, 2], **args)


def test_shipped_defaults_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FLOOD_WET_DRY.classes[1].lower = 0.5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        FLOOD_WET_DRY.name = "other"  # type: ignore[misc]
    assert isinstance(FLOOD_WET_DRY.classes, tuple)


def test_shipped_defaults_carry_inasafe_figures():
    # inasafe/inasafe safe/definitions/hazard_classifications.py (thresholds, affected, displacement)
    assert [(c.name, c.lower, c.upper, c.affected, c.displacement_rate) for c in FLOOD_PETABENCANA.classes] == [
        ("use_caution", 0.0, 0.1, False, 0.0),
        ("low", 0.1, 0.7, True, 0.01),
        ("medium", 0.7, 1.5, True, 0.03),
        ("high", 1.5, np.inf, True, 0.05),
    ]
    assert FLOOD_WET_DRY.affected_flags.tolist() == [False, True]
    assert FLOOD_WET_DRY.displacement_rates.tolist() == [0.0, 0.01]
    assert [(c.name, c.affected, c.displacement_rate) for c in TSUNAMI.classes] == [
        ("dry", False, 0.0),
        ("low", False, 0.0),
        ("medium", True, 1.0),
        ("high", True, 1.0),
    ]
    assert [(c.lower, c.upper, c.affected) for c in GENERIC.classes] == [(0, 2, False), (2, 3, True), (3, 4, True)]
    assert FLOOD_PETABENCANA.to_dict()["classes"][-1]["upper"] is None  # JSON has no infinity


# ---- hazard polygons --------------------------------------------------------------------------


def test_multipart_floodprone_mixed_case_matches_without_case(jakarta):
    gdf = gpd.read_file(jakarta / "flood_multipart_polygons.shp")
    zones = classify_hazard_polygons(
        gdf, field="FLOODPRONE", classification=FLOOD_WET_DRY, value_map={"YES": "wet", "no": "dry"}
    )
    # FLOODPRONE: YES 10 + yes 9 = 19 wet, NO 8 + no 4 = 12 dry
    assert zones.zones["hazard_class"].value_counts().to_dict() == {"wet": 19, "dry": 12}
    assert dict(zones.unmapped) == {}
    assert zones.zones.index.equals(gdf.index)


def test_unmapped_values_are_reported_not_dropped(jakarta):
    gdf = gpd.read_file(jakarta / "flood_multipart_polygons.shp")
    zones = classify_hazard_polygons(
        gdf, field="FLOODPRONE", classification=FLOOD_WET_DRY, value_map={"YES": "wet", "NO": "dry"},
        case_sensitive=True,
    )  # fmt: skip
    assert dict(zones.unmapped) == {"yes": 9, "no": 4}
    assert len(zones.zones) == 31  # kept, unclassed
    assert zones.zones["hazard_class"].isna().sum() == 13
    assert len(zones.classified) == 18
    assert (zones.zones.loc[zones.zones["hazard_class"].isna(), "hazard_level"] == -1).all()


def test_field_with_class_names_needs_no_map_and_bad_maps_fail():
    square = shapely.box(0, 0, 1, 1)
    gdf = gpd.GeoDataFrame({"zone": [" Wet", "dry", "moist"]}, geometry=[square] * 3, crs=4326)
    zones = classify_hazard_polygons(gdf, field="zone", classification=FLOOD_WET_DRY)
    assert zones.zones["hazard_class"].tolist() == ["wet", "dry", None]
    assert dict(zones.unmapped) == {"moist": 1}
    with pytest.raises(InputError, match=r"\['soaked'\].*not classes"):
        classify_hazard_polygons(gdf, field="zone", classification=FLOOD_WET_DRY, value_map={"x": "soaked"})
    with pytest.raises(InputError, match="no field 'depth'"):
        classify_hazard_polygons(gdf, field="depth", classification=FLOOD_WET_DRY)


def test_bow_tie_hazard_polygon_is_repaired_and_no_crs_fails():
    bow_tie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2), (0, 0)])
    gdf = gpd.GeoDataFrame({"z": ["wet"]}, geometry=[bow_tie], crs=4326)
    zones = classify_hazard_polygons(gdf, field="z", classification=FLOOD_WET_DRY)
    assert zones.geometry.repaired == 1
    assert zones.zones.geometry.iloc[0].is_valid
    assert zones.zones.geometry.iloc[0].area == pytest.approx(2.0)  # two triangles of 1
    with pytest.raises(CRSError, match="no CRS"):
        classify_hazard_polygons(gdf.set_crs(None, allow_override=True), field="z", classification=FLOOD_WET_DRY)


# ---- hazard rasters ---------------------------------------------------------------------------


def test_continuous_20x20_grid_counts_match_numpy(jakarta):
    path = jakarta / "continuous_flood_20_20.asc"
    grid = classify_hazard_raster(path, classification=FLOOD_PETABENCANA)
    with rasterio.open(path) as ds:
        v = ds.read(1)
    # direct computation of the rule, in float32 like the data: each depth 0.0..1.9 occurs 20 times
    t = np.float32
    expected = [
        int(((v >= 0) & (v <= t(0.1))).sum()),  # 0.0, 0.1 -> 40
        int(((v > t(0.1)) & (v <= t(0.7))).sum()),  # 0.2..0.7 -> 120
        int(((v > t(0.7)) & (v <= t(1.5))).sum()),  # 0.8..1.5 -> 160
        int((v > t(1.5)).sum()),  # 1.6..1.9 -> 80
    ]
    assert expected == [40, 120, 160, 80]
    assert np.bincount(grid.levels.ravel(), minlength=4).tolist() == expected
    # the [lower, upper) rule would give [20, 120, 160, 100]: the 20 cells at 0.1 and the 20 at 1.5 move up
    assert np.bincount(FLOOD_WET_DRY.classify(v).ravel()).tolist() == [220, 180]  # dry 0.0..1.0, wet 1.1..1.9


def test_classified_20x20_grid_with_code_map(jakarta):
    path = jakarta / "classified_flood_20_20.asc"
    grid = classify_hazard_raster(path, classification=GENERIC, code_map={1: "low", 2: "medium", 3: "high"})
    with rasterio.open(path) as ds:
        codes = ds.read(1).astype(int)
    assert np.bincount(grid.levels.ravel()).tolist() == np.bincount(codes.ravel())[1:].tolist() == [133, 134, 133]
    polygons = hazard_grid_polygons(grid)
    cell_area = 0.002 * 0.002
    # planar area in square degrees, on purpose: it must equal cell count x cell area
    by_class = polygons.assign(a=shapely.area(polygons.geometry.values)).groupby("hazard_class")["a"].sum()
    assert by_class["medium"] == pytest.approx(134 * cell_area)


def test_code_map_unknown_codes_and_nodata_are_not_classed():
    values = np.array([1, 2, 7, -9999, 2.5], dtype=np.float32)
    levels = raster_levels(values, classification=GENERIC, nodata=-9999, code_map={1: "low", 2: "high"})
    assert levels.tolist() == [0, 2, -1, -1, -1]
    with pytest.raises(InputError, match="'extreme' is not a class"):
        raster_levels(values, classification=GENERIC, nodata=None, code_map={1: "extreme"})


def test_missing_raster_is_not_found(tmp_path):
    with pytest.raises(NotFoundError):
        classify_hazard_raster(tmp_path / "nope.tif", classification=GENERIC)
