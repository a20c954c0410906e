"""`civicmap impact` end to end on InaSAFE's Jakarta layers (real data)."""

import json

import geopandas as gpd
import pyogrio
import pytest
from typer.testing import CliRunner

from civicmap.cli import app
from civicmap.errors import InputError
from civicmap.impact import classification_for, read_value_map

STATUS = ("affected", "not_affected", "not_exposed", "total")


@pytest.fixture(scope="module")
def jakarta(realdata):
    return realdata / "hazard" / "jakarta"


def run(*args):
    result = CliRunner().invoke(app, ["impact", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def test_raster_flood_on_buildings_with_districts(jakarta, tmp_path):
    run(
        "--hazard", jakarta / "jakarta_continuous_flood.tif",
        "--exposure", jakarta / "jakarta_building.gpkg",
        "--exposure-type-field", "TYPE",
        "--aggregation", jakarta / "district_osm_jakarta.geojson",
        "--stat", "centroid",
        "--out", tmp_path,
    )  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == {"totals", "by_exposure_type", "by_aggregation", "population", "minimum_needs", "provenance"}
    totals = summary["totals"]
    assert set(totals) == {"use_caution", "low", "medium", "high", *STATUS}
    # realdata README's independent count at representative points: 7689 buildings, of which nodata 71,
    # use_caution 3635, low 2348, medium 1343, high 292; 2 buildings fall outside all five districts
    # (the risk tests establish 7687 inside), so the district-clipped totals are at most those
    assert totals["total"] == 7687
    assert totals["use_caution"] + totals["low"] + totals["medium"] + totals["high"] + totals["not_exposed"] == 7687
    assert totals["affected"] == totals["low"] + totals["medium"] + totals["high"]
    assert 2348 - 2 <= totals["low"] <= 2348 and 292 - 2 <= totals["high"] <= 292
    assert "Residential" in summary["by_exposure_type"]
    assert sum(v["total"] for v in summary["by_exposure_type"].values()) == 7687
    assert len(summary["by_aggregation"]) <= 5 and sum(v["total"] for v in summary["by_aggregation"].values()) == 7687
    impact = pyogrio.read_dataframe(tmp_path / "impact.gpkg", layer="impact")
    assert len(impact) == 7687 and impact.crs.to_epsg() == 4326
    assert impact.geometry.representative_point().x.between(106.8, 107.0).all()  # lon first
    html = (tmp_path / "report.html").read_text()
    assert "<svg" in html and "http://" not in html and "https://" not in html


def test_polygon_hazard_with_value_map(jakarta, tmp_path):
    vmap = tmp_path / "map.json"
    vmap.write_text(json.dumps({"YES": "wet", "NO": "dry"}))
    result = run(
        "--hazard", jakarta / "flood_multipart_polygons.shp", "--hazard-field", "FLOODPRONE",
        "--value-map", vmap, "--exposure", jakarta / "buildings_osm_4326.shp", "--out", tmp_path / "out",
    )  # fmt: skip
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    # risk tests: 68 wet, 182 dry, 0 not exposed of 250 OSM buildings (checked against a plain sjoin there)
    assert summary["totals"]["wet"] == 68 and summary["totals"]["dry"] == 182
    assert summary["totals"]["not_exposed"] == 0 and summary["totals"]["total"] == 250
    assert "wet=68" in result.output
    zones = pyogrio.read_dataframe(tmp_path / "out" / "impact.gpkg", layer="hazard_zones")
    assert len(zones) == 31


def test_class_names_as_values_need_no_value_map(jakarta, tmp_path):
    hazard = gpd.read_file(jakarta / "flood_multipart_polygons.shp")
    hazard["level"] = hazard["FLOODPRONE"].str.lower().map({"yes": "high", "no": "low"})
    path = tmp_path / "zones.gpkg"
    hazard.to_file(path)
    run(
        "--hazard", path, "--hazard-field", "level", "--exposure", jakarta / "buildings_osm_4326.shp", "--out", tmp_path
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["totals"]["high"] == 68 and summary["totals"]["low"] == 182  # generic classification picked
    assert summary["totals"]["affected"] == 68


def test_roads_are_measured_in_metres_with_thresholds(jakarta, tmp_path):
    run(
        "--hazard", jakarta / "jakarta_continuous_flood.tif", "--thresholds", "0.5,1.5",
        "--class-names", "low,medium,high", "--exposure", jakarta / "roads_osm_4326.shp", "--out", tmp_path,
    )  # fmt: skip
    totals = json.loads((tmp_path / "summary.json").read_text())["totals"]
    roads = gpd.read_file(jakarta / "roads_osm_4326.shp")
    metres = roads.to_crs(roads.estimate_utm_crs()).length.sum()
    assert totals["total"] == pytest.approx(metres, rel=1e-3)
    assert totals["affected"] == pytest.approx(totals["medium"] + totals["high"])


def test_bad_inputs_give_clear_errors(jakarta, tmp_path):
    runner = CliRunner()
    no_field = runner.invoke(app, ["impact", "--hazard", str(jakarta / "floods.shp"), "--exposure",
                                   str(jakarta / "buildings_osm_4326.shp"), "--out", str(tmp_path)])  # fmt: skip
    assert no_field.exit_code == 1 and "needs --hazard-field" in no_field.output
    missing = runner.invoke(app, ["impact", "--hazard", str(tmp_path / "nope.tif"), "--exposure",
                                  str(jakarta / "buildings_osm_4326.shp"), "--out", str(tmp_path)])  # fmt: skip
    assert missing.exit_code == 1 and "error:" in missing.output
    with pytest.raises(InputError, match="ascending"):
        classification_for(thresholds=[1.5, 0.7])
    with pytest.raises(InputError, match="3 classes, but 2 class names"):
        classification_for(thresholds=[0.5, 1.5], class_names=["a", "b"])
    with pytest.raises(InputError, match="match no preset"):
        classification_for(values=["maybe", "perhaps"])
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="must map raw values"):
        read_value_map(tmp_path / "bad.json")
