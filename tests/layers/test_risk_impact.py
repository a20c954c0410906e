"""Impact summaries, combined hazards and minimum needs."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely

from civicmap.errors import InputError, NotFoundError
from civicmap.layers.risk import (
    EXPOSURE_TYPES,
    FLOOD_PETABENCANA,
    FLOOD_WET_DRY,
    TSUNAMI,
    assign_aggregation,
    classify_hazard_polygons,
    combine_hazards,
    exposed_features,
    exposed_to_raster,
    impact_summary,
    minimum_needs,
    read_needs_profile,
)
from civicmap.types import Provenance

KEYS = ["use_caution", "low", "medium", "high", "affected", "not_affected", "not_exposed", "total"]


@pytest.fixture(scope="module")
def jakarta(realdata):
    return realdata / "hazard" / "jakarta"


@pytest.fixture(scope="module")
def impacted(jakarta):
    buildings = gpd.read_file(jakarta / "jakarta_building.gpkg")
    out = exposed_to_raster(buildings, jakarta / "jakarta_continuous_flood.tif", classification=FLOOD_PETABENCANA,
                            exposure_type_field="TYPE", type_mapping=EXPOSURE_TYPES)  # fmt: skip
    return assign_aggregation(out, gpd.read_file(jakarta / "district_osm_jakarta.geojson"), name_field="KAB_NAME")


def test_jakarta_summary_totals_and_tables(impacted):
    summary = impact_summary(impacted, classification=FLOOD_PETABENCANA)
    # max over touched cells (see test_risk_exposure): 44 not exposed, 3425 / 2293 / 1538 / 389;
    # the district clip drops 2 buildings (one of them in use_caution, one not exposed)
    assert summary.totals == {
        "use_caution": 3424, "low": 2293, "medium": 1538, "high": 389,
        "affected": 2293 + 1538 + 389, "not_affected": 3424, "not_exposed": 43, "total": 7687,
    }  # fmt: skip
    assert list(summary.totals) == KEYS
    for table in (summary.by_exposure_type, summary.by_aggregation):
        for key in KEYS:
            assert sum(row[key] for row in table.values()) == summary.totals[key]
        for row in table.values():
            assert list(row) == KEYS
            assert row["affected"] + row["not_affected"] + row["not_exposed"] == row["total"]
    # the two buildings outside every district are residential: education keeps all 377 + 17 buildings
    assert summary.by_exposure_type["education"]["total"] == 394
    assert summary.by_exposure_type["residential"]["total"] == 6120 - 2
    assert set(summary.by_aggregation) == {"JAKARTA BARAT", "JAKARTA PúSAT", "JAKARTA TíMUR", "JAKARTA UTARA"}


def test_to_dict_is_json_with_exactly_the_top_level_keys(impacted):
    prov = Provenance(source="jakarta_continuous_flood.tif", licence="GPL-3.0 test data")
    doc = impact_summary(impacted, classification=FLOOD_PETABENCANA, provenance=prov).to_dict()
    assert list(doc) == ["totals", "by_exposure_type", "by_aggregation", "population", "minimum_needs", "provenance"]
    text = json.dumps(doc)  # plain JSON types only
    assert json.loads(text)["totals"]["high"] == 389
    assert doc["provenance"]["source"] == "jakarta_continuous_flood.tif"
    assert doc["provenance"]["unit"] == "count"
    assert doc["provenance"]["classification"]["name"] == "flood_petabencana"
    assert any("outside the aggregation areas" in n for n in doc["provenance"]["notes"])
    assert doc["population"] is None and doc["minimum_needs"] == {}


def test_population_from_occupants_and_displacement(impacted):
    frame = impacted.assign(occupants=np.where(impacted["exposure_type"] == "residential", 5, 0))
    summary = impact_summary(frame, classification=FLOOD_PETABENCANA, population_field="occupants")
    people = frame.groupby("hazard_level")["occupants"].sum()
    # displaced = people x rate per class: low 1 %, medium 3 %, high 5 %
    expected = people[1] * 0.01 + people[2] * 0.03 + people[3] * 0.05
    assert summary.population.displaced == pytest.approx(expected)
    assert summary.population.affected == people[1] + people[2] + people[3]
    assert summary.population.total == frame["occupants"].sum()
    rice = summary.minimum_needs["rice"]
    assert rice == (int(np.ceil(np.ceil(expected) * 2.8 - 1e-9)), "kg", "weekly")


def test_roads_in_metres(jakarta):
    zones = classify_hazard_polygons(gpd.read_file(jakarta / "flood_multipart_polygons.shp"), field="FLOODPRONE",
                                     classification=FLOOD_WET_DRY, value_map={"yes": "wet", "no": "dry"})  # fmt: skip
    roads = exposed_features(gpd.read_file(jakarta / "roads_osm_4326.shp"), zones, classification=FLOOD_WET_DRY,
                             exposure_type_field="TYPE")  # fmt: skip
    summary = impact_summary(roads, classification=FLOOD_WET_DRY, size_field="length_m")
    t = summary.totals
    assert t["total"] == pytest.approx(roads["length_m"].sum())
    assert t["dry"] + t["wet"] + t["not_exposed"] == pytest.approx(t["total"])
    assert t["affected"] == pytest.approx(t["wet"]) and t["not_affected"] == pytest.approx(t["dry"])
    assert summary.to_dict()["provenance"]["unit"] == "m"


def test_empty_and_missing_columns():
    empty = gpd.GeoDataFrame(
        {"hazard_level": np.array([], dtype=np.int16), "exposed": [], "affected": [], "exposure_type": []},
        geometry=[], crs=32748,
    )  # fmt: skip
    summary = impact_summary(empty, classification=FLOOD_WET_DRY)
    assert summary.totals == {"dry": 0, "wet": 0, "affected": 0, "not_affected": 0, "not_exposed": 0, "total": 0}
    with pytest.raises(InputError, match="lacks columns"):
        impact_summary(empty.drop(columns="exposed"), classification=FLOOD_WET_DRY)


# ---- several hazards on one exposure ------------------------------------------------------------


def two_hazards():
    houses = gpd.GeoDataFrame(geometry=[shapely.box(x, 0, x + 1, 1) for x in (1, 11, 21, 31)], crs=32748)
    flood = gpd.GeoDataFrame({"hazard_class": ["dry", "wet"]},
                             geometry=[shapely.box(0, 0, 10, 10), shapely.box(10, 0, 30, 10)], crs=32748)  # fmt: skip
    tsunami = gpd.GeoDataFrame({"hazard_class": ["low", "high"]},
                               geometry=[shapely.box(0, 0, 20, 10), shapely.box(20, 0, 30, 10)], crs=32748)  # fmt: skip
    return (
        exposed_features(houses, flood, classification=FLOOD_WET_DRY),
        exposed_features(houses, tsunami, classification=TSUNAMI),
    )


def test_combine_max_severity():
    flood, tsunami = two_hazards()
    # severity: flood dry 1/2, wet 2/2; tsunami low 2/4, high 4/4
    # house 0: dry 0.5 vs low 0.5 -> tie, first (flood) wins; house 1: wet 1.0 vs low 0.5 -> flood
    # house 2: wet 1.0 vs high 1.0 -> flood; house 3: outside both
    out = combine_hazards(flood, tsunami, names=("flood", "tsunami"))
    assert out["severity"].tolist() == [0.5, 1.0, 1.0, 0.0]
    assert out["hazard_class"].tolist()[:3] == ["flood:dry", "flood:wet", "flood:wet"]
    assert out["affected"].tolist() == [False, True, True, False]
    assert out["exposed"].tolist() == [True, True, True, False]
    assert out["severity_tsunami"].tolist() == [0.5, 0.5, 1.0, 0.0]
    summary = impact_summary(out, classification=None)
    assert summary.totals == {"affected": 2, "not_affected": 1, "not_exposed": 1, "total": 4}


def test_combine_any_affected_and_errors():
    flood, tsunami = two_hazards()
    # tsunami "low" is not affected: OR-ing the flags changes nothing here but must equal the flood flags
    out = combine_hazards(tsunami, flood, rule="any_affected")
    assert out["affected"].tolist() == [False, True, True, False]
    with pytest.raises(InputError, match="rule"):
        combine_hazards(flood, tsunami, rule="sum")
    with pytest.raises(InputError, match="index differs"):
        combine_hazards(flood, tsunami.iloc[:2])


# ---- minimum needs ------------------------------------------------------------------------------


def test_bnpb_needs_for_1000_displaced():
    assert minimum_needs(1000, "BNPB") == {
        "rice": (2800, "kg", "weekly"),  # 1000 x 2.8 = 2800.0000000000005 in floats: not 2801
        "drinking_water": (17500, "l", "weekly"),
        "clean_water": (67000, "l", "weekly"),
        "family_kits": (200, "kit", "weekly"),
        "toilets": (50, "toilet", "once"),
    }


def test_sphere_profile_and_rounding_up():
    needs = minimum_needs(1000, "sphere")
    assert needs["water"] == (15000, "l", "daily")
    assert needs["toilets"] == (50, "toilet", "once")  # one per 20 people
    # 2.2 displaced -> 3 people -> 0.6 family kits -> 1; 0.15 toilets -> 1
    assert minimum_needs(2.2)["family_kits"] == (1, "kit", "weekly")
    assert minimum_needs(2.2)["toilets"] == (1, "toilet", "once")
    assert all(q == 0 for q, _, _ in minimum_needs(0).values())
    with pytest.raises(InputError, match="displaced"):
        minimum_needs(-1)


def test_profiles_cite_their_source_and_custom_files(tmp_path):
    assert "Perka BNPB no. 7" in read_needs_profile("BNPB").source
    assert "Sphere Handbook" in read_needs_profile("SPHERE").source
    good = tmp_path / "local.json"
    good.write_text(json.dumps({"name": "local", "source": "district plan 2024",
                                "needs": [{"key": "mats", "name": "Sleeping mats", "amount": 1, "unit": "mat",
                                           "frequency": "once"}]}))  # fmt: skip
    assert minimum_needs(3, read_needs_profile(good)) == {"mats": (3, "mat", "once")}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"needs": [{"key": "x", "name": "X", "amount": -1, "unit": "u", "frequency": "hourly"}]}))
    with pytest.raises(InputError) as err:
        read_needs_profile(bad)
    assert "amount -1" in str(err.value) and "'hourly'" in str(err.value) and "'source'" in str(err.value)
    with pytest.raises(NotFoundError):
        read_needs_profile(tmp_path / "missing.json")
