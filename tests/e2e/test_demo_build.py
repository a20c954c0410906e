"""The demo city builds end to end, offline, with the counts its generator planted."""

import json
import shutil
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
from typer.testing import CliRunner

import civicmap
from civicmap.cli import DEMO_PROJECT, app
from civicmap.config import read_project_config
from civicmap.workspace import Workspace

EXPECTED = json.loads((DEMO_PROJECT / "expected.json").read_text())


@pytest.fixture(scope="module")
def built(demo_build):
    return demo_build


def test_demo_builds_every_layer_offline(built):
    ws, report = built
    assert not report.failed, report
    assert ws.crs.to_epsg() == 32737  # auto: UTM 37S for Dar es Salaam
    names = {r.layer for r in report.rows}
    assert {
        "buildings",
        "roads",
        "amenities",
        "dem",
        "orthophoto",
        "survey_building_survey",
        "traces_daladala",
    } <= names
    assert {r.crs for r in report.rows if r.kind != "table"} == {"EPSG:32737"}


def test_demo_osm_counts_match_the_generator(built):
    ws, report = built
    rows = {r.layer: r for r in report.rows}
    b = EXPECTED["osm"]["buildings"]
    # the bow-tie is repaired and kept; the two-node ring and the unclosed way cannot be buildings
    assert rows["buildings"].count == b["total"] - 2
    assert rows["buildings"].problems == 2
    assert "OSM objects skipped" in rows["buildings"].notes
    assert rows["transit_routes"].count == sum(len(r["route_relation_ids"]) for r in EXPECTED["osm"]["routes"].values())
    uses = ws.read_layer("amenities")["use"].value_counts().to_dict()
    assert uses["health"] == 4 and uses["education"] == 7 and uses["shelter"] >= 6


def test_demo_survey_keeps_good_rows_and_reports_bad_ones(built):
    ws, report = built
    survey = EXPECTED["survey"]
    row = next(r for r in report.rows if r.layer == "survey_building_survey")
    assert row.count == survey["good_distinct_submissions"] == 333
    assert row.problems == len(survey["bad_rows"]) == 5
    errors = ws.store.read_table("survey_building_survey_errors")
    assert set(errors["instance_id"]) == set(survey["bad_rows"].values())
    swapped = errors[errors["instance_id"] == survey["bad_rows"]["lat_lon_swapped"]]
    assert "swapped" in swapped["problem"].iloc[0]
    layer = ws.store.layer_info("survey_building_survey")
    assert {"respondent_name", "respondent_phone", "notes"} <= set(layer.meta["private_fields"])
    assert layer.provenance["details"]["duplicates"] == 2  # one repeated CSV row, one CSV+XML repeat


def test_demo_rasters_are_cogs_in_the_workspace_crs(built):
    ws, _ = built
    for name in ("dem", "orthophoto"):
        info = ws.store.layer_info(name)
        with rasterio.open(info.path) as src:
            assert src.crs.to_epsg() == 32737
            assert src.profile.get("tiled") and src.overviews(1)
    ortho = ws.store.layer_info("orthophoto")
    west, _, _, north = EXPECTED["orthophoto"]["bounds_utm"]
    assert ortho.bounds.west == pytest.approx(west, abs=1) and ortho.bounds.north == pytest.approx(north, abs=1)


def test_demo_layers_read_back_in_lon_lat(built):
    ws, _ = built
    gdf = ws.read_layer("buildings", crs="EPSG:4326")
    west, south, east, north = EXPECTED["bbox_lonlat"]
    x, y = gdf.geometry.representative_point().x, gdf.geometry.representative_point().y
    assert x.between(west, east).all() and y.between(south, north).all()


def test_traces_are_all_read(built):
    ws, _ = built
    pts = ws.read_layer("traces_daladala")
    assert pts["trace_id"].nunique() == EXPECTED["traces"]["files"]
    assert len(pts) == sum(EXPECTED["traces"]["points"].values())


def test_a_failing_source_is_reported_and_the_rest_built(tmp_path):
    project = tmp_path / "p"
    shutil.copytree(DEMO_PROJECT, project, ignore=shutil.ignore_patterns(".civicmap", "_mkondo", "*.py"))
    (project / "dem.tif").write_bytes(b"not a tiff")
    ws = Workspace(read_project_config(project))
    report = ws.build(progress=False)
    # the DEM fails, and so does the risk layer derived from it; everything else is built
    assert [r.layer for r in report.failed] == ["rasters[dem]", "risk"]
    assert "dem.tif" in report.failed[0].notes and "dem" in report.failed[1].notes
    assert "FAILED" in str(report)
    assert any(r.layer == "buildings" and r.count > 6000 for r in report.rows)
    result = CliRunner().invoke(app, ["build", str(project), "-q"])
    assert result.exit_code == 1 and "FAILED rasters[dem]" in result.output


def test_builds_of_one_project_take_turns(tmp_path):
    """Another process building the project (a service worker after an approval) makes a build wait."""
    import fcntl
    import threading

    project = tmp_path / "p"
    shutil.copytree(DEMO_PROJECT, project, ignore=shutil.ignore_patterns(".civicmap", "_mkondo", "*.py"))
    ws = Workspace(read_project_config(project))
    (project / ".civicmap").mkdir()
    done = threading.Event()
    with (project / ".civicmap" / "build.lock").open("a") as other:
        fcntl.flock(other, fcntl.LOCK_EX)  # as another process would hold it
        survey = ["surveys[building_survey]"]
        worker = threading.Thread(target=lambda: (ws.build(progress=False, only=survey), done.set()))
        worker.start()
        assert not done.wait(1.0)  # waiting for the lock
    worker.join(60)
    assert done.is_set() and ws.store.layer_info("survey_building_survey").feature_count > 0


def test_cli_version_info_and_errors(tmp_path: Path, built):
    runner = CliRunner()
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"civicmap {civicmap.__version__}"
    missing = runner.invoke(app, ["build", str(tmp_path)])
    assert missing.exit_code == 1 and "no project file" in missing.output
    info = runner.invoke(app, ["info", str(DEMO_PROJECT)])
    assert info.exit_code == 0 and "EPSG:32737" in info.output and "raster dem (dem)" in info.output


def test_demo_risk_layers(built):
    ws, report = built
    names = {r.layer for r in report.rows}
    assert {"flood_depth", "hazard_zones", "risk_buildings", "evacuation_routes", "risk_summary"} <= names
    buildings = ws.read_layer("risk_buildings")
    assert len(buildings) == EXPECTED["osm"]["buildings"]["total"] - 2
    assert buildings["vulnerability"].between(0, 1).all() and buildings["surveyed"].sum() == 333
    assert {"vulnerability", "risk_class", "shelter_walk_time_s", "health_loses_access"} <= set(buildings.columns)
    affected = buildings[buildings["affected"]]
    assert 2000 < len(affected) < 4500
    routes = ws.read_layer("evacuation_routes")
    assert len(routes) == len(affected)
    doc = json.loads(ws.store.read_table("risk_summary")["document"].iloc[0])
    totals = doc["buildings"]["totals"]
    assert totals["total"] == len(buildings) and totals["affected"] == len(affected)
    assert doc["buildings"]["population"]["displaced"] > 0 and doc["buildings"]["minimum_needs"]["rice"]["quantity"] > 0
    assert doc["health_access"]["buildings_losing_access"] >= 0
    assert doc["evacuation"]["buildings"] == len(buildings)
    # the flood (4 m above the bed = 2.5 m above normal river level) wets the valley, not the planned grid:
    # affected buildings are the smaller, crowded, more vulnerable ones
    assert affected["vulnerability"].mean() > buildings.loc[~buildings["affected"], "vulnerability"].mean()


def test_demo_transit_feeds_and_coverage(built):
    ws, _ = built
    doc = json.loads(ws.store.read_table("transit_summary")["document"].iloc[0])
    osm, traces = doc["feeds"]["osm"], doc["feeds"]["traces_daladala"]
    # three daladala lines, two directions each, from the OSM relations and from the GPS runs
    assert osm["counts"]["routes"] == traces["counts"]["routes"] == 3
    assert osm["counts"]["trips"] == traces["counts"]["trips"] == 6
    assert osm["problems"] == [] and traces["problems"] == []
    assert 0.5 < doc["coverage"]["share_buildings"] < 0.9
    uncovered = ws.read_layer("transit_uncovered")
    assert len(uncovered) == doc["coverage"]["uncovered_cells"] > 0
    assert uncovered.geometry.notna().all() and (uncovered.area == 100 * 100).all()  # 100 m cells, every one drawn


def test_demo_settlement_layers(built):
    ws, _ = built
    public = ws.read_layer("settlement_cells")
    private = ws.store.layer_info("settlement_cells_private")
    assert public["building_count"].min() >= 5  # k-anonymity: small cells are never public
    assert private.meta["public"] is False and ws.store.layer_info("settlement_buildings").meta["public"] is False
    assert private.feature_count > len(public)
    assert set(public["informality_class"]) == {"likely", "possible", "unlikely"}
    assert public["hazard_share"].between(0, 1).all() and public["hazard_share"].max() > 0.5  # the flooded valley
    gaps = ws.store.read_table("service_gaps")
    assert {"water", "sanitation", "health", "school", "shelter", "transit"} <= set(gaps.index)


def test_settlements_cli_on_an_osm_file(tmp_path):
    result = CliRunner().invoke(app, ["settlements", str(DEMO_PROJECT / "city.osm"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    cells = gpd.read_file(tmp_path / "cells.gpkg")
    assert cells.crs.to_epsg() == 4326 and cells["building_count"].min() >= 5
    assert (tmp_path / "service_gaps.csv").read_text().startswith("service,missing")
