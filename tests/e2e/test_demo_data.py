"""The committed demo city (sample_data/demo) is deterministic and readable by independent tools."""

from __future__ import annotations

import csv
import itertools
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx
import numpy as np
import openpyxl
import pyogrio
import pytest
import rasterio
from pyxform.xls2xform import xls2xform_convert

DEMO = Path(__file__).resolve().parents[2] / "sample_data" / "demo"
TEXT_SUFFIXES = {".osm", ".csv", ".xml", ".gpx", ".toml", ".json"}


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((DEMO / "expected.json").read_text(encoding="utf-8"))


def _generated_files(root: Path) -> list[Path]:
    skip = {"README.md", "generate.py"}
    return sorted(
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file() and p.name not in skip and "_mkondo" not in p.parts and ".civicmap" not in p.parts
    )


def test_regeneration_is_byte_identical(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(DEMO / "generate.py"), "--out", str(tmp_path)], check=True, timeout=120)
    committed, fresh = _generated_files(DEMO), _generated_files(tmp_path)
    assert fresh == committed
    text = [p for p in committed if p.suffix in TEXT_SUFFIXES]
    assert len(text) == 1 + 1 + 1 + 1 + 40 + 12  # osm, csv, toml, expected.json, instances, gpx
    for rel in text:
        assert (tmp_path / rel).read_bytes() == (DEMO / rel).read_bytes(), f"{rel} differs after regeneration"
    xlsx = Path("forms/building_survey.xlsx")
    assert (tmp_path / xlsx).read_bytes() == (DEMO / xlsx).read_bytes()
    for name in ("dem.tif", "orthophoto.tif"):
        with rasterio.open(tmp_path / name) as a, rasterio.open(DEMO / name) as b:
            np.testing.assert_array_equal(a.read(), b.read())


def test_osm_buildings_as_gdal_reads_them(expected: dict) -> None:
    # GDAL's OSM driver puts closed building ways in `multipolygons`: the bow-tie and the
    # two-node "closed" way come through (as invalid polygons); the unclosed way does not
    # (it lands in `lines`). So GDAL sees total - 1 buildings, of which 2 are invalid.
    b = expected["osm"]["buildings"]
    bad = {k: str(v) for k, v in expected["osm"]["bad_geometry_way_ids"].items()}
    mp = pyogrio.read_dataframe(DEMO / "city.osm", layer="multipolygons")
    buildings = mp[mp["building"].notna()]
    assert len(buildings) == b["total"] - 1 == b["informal"] + b["planned"] + b["industrial"] + 2
    assert (~buildings.geometry.is_valid).sum() == 2
    assert set(buildings.loc[~buildings.geometry.is_valid, "osm_way_id"]) == {bad["bowtie"], bad["two_node_closed"]}
    lines = pyogrio.read_dataframe(DEMO / "city.osm", layer="lines")
    assert bad["unclosed"] in set(lines["osm_id"])
    assert 5000 <= b["total"] <= 7000
    assert b["informal"] > 3000 and b["planned"] > 2500


def test_osm_streets_form_one_routable_graph(expected: dict) -> None:
    root = ET.parse(DEMO / "city.osm").getroot()
    assert root.get("version") == "0.6" and root.get("generator") == "civicmap demo generator"
    graph = nx.Graph()
    ways = {}
    for way in root.iter("way"):
        refs = [nd.get("ref") for nd in way.iter("nd")]
        ways[way.get("id")] = refs
        if any(t.get("k") == "highway" for t in way.iter("tag")):
            nx.add_path(graph, refs)
    assert nx.number_connected_components(graph) == 1
    assert graph.number_of_nodes() > 500
    counts = {k: v for k, v in expected["osm"]["street_ways_by_highway"].items()}
    assert counts["primary"] >= 3 and counts["footway"] > 50 and counts["residential"] > 40
    routes = [
        r for r in root.iter("relation") if any(t.get("k") == "type" and t.get("v") == "route" for t in r.iter("tag"))
    ]
    assert len(routes) == 6
    for rel in routes:
        members = [m.get("ref") for m in rel.iter("member") if m.get("type") == "way"]
        for a, b in itertools.pairwise(members):  # consecutive route ways touch end to end
            assert {ways[a][0], ways[a][-1]} & {ways[b][0], ways[b][-1]}


def test_osm_amenities(expected: dict) -> None:
    tags = expected["osm"]["features_by_tag"]
    assert tags["amenity=hospital"] == 1 and tags["amenity=clinic"] == 3
    assert tags["amenity=school"] == 5 and tags["amenity=kindergarten"] == 2
    assert tags["emergency=assembly_point"] == 4 and tags["amenity=shelter"] == 2
    assert tags["man_made=water_well"] == 3 and tags["amenity=toilets"] == 8
    points = pyogrio.read_dataframe(DEMO / "city.osm", layer="points")
    assert (points["name"] == "Zahanati ya Bondeni").sum() == 1


def test_rasters_co_registered_and_plausible(expected: dict) -> None:
    with rasterio.open(DEMO / "dem.tif") as dem:
        assert dem.crs.to_epsg() == 32737 and dem.res == (5.0, 5.0) and dem.nodata == -9999.0
        z = dem.read(1, masked=True)
        assert int(z.mask.sum()) == expected["dem"]["nodata_pixels"] > 0
        assert 0.0 < float(z.min()) < 3.0 and 30.0 < float(z.max()) < 40.0
        # along one north-south column: the river channel is the low point, the planned grid is high
        across_valley = [v[0] for v in dem.sample([(527000.0, n) for n in np.arange(9246100.0, 9246700.0, 5.0)])]
        planned = next(dem.sample([(527000.0, 9247600.0)]))[0]
        assert min(across_valley) < 3.0
        assert planned > 8.0
        dem_bounds = dem.bounds
    with rasterio.open(DEMO / "orthophoto.tif") as ortho:
        assert ortho.crs.to_epsg() == 32737 and ortho.count == 3 and ortho.dtypes[0] == "uint8"
        assert ortho.res == (0.5, 0.5)
        b = ortho.bounds
        assert dem_bounds.left < b.left < b.right < dem_bounds.right
        assert dem_bounds.bottom < b.bottom < b.top < dem_bounds.top
        assert 40 < ortho.read(1).mean() < 220
    assert expected["dem"]["informal_buildings_wet_at_stage_plus_2_5m"] > 0.5
    assert expected["dem"]["planned_buildings_wet_at_stage_plus_2_5m"] == 0.0


def test_form_converts_with_pyxform(tmp_path: Path) -> None:
    warnings = xls2xform_convert(
        xlsform_path=str(DEMO / "forms" / "building_survey.xlsx"), xform_path=str(tmp_path / "f.xml")
    )
    assert warnings == []
    xform = (tmp_path / "f.xml").read_text(encoding="utf-8")
    assert '<building_survey id="building_survey" version="2026110101">' in xform
    sheet = openpyxl.load_workbook(DEMO / "forms" / "building_survey.xlsx")["survey"]
    header = [c.value for c in sheet[1]]
    private = [r[1] for r in sheet.iter_rows(min_row=2, values_only=True) if r[header.index("private")] == "yes"]
    assert private == ["respondent_name", "respondent_phone", "notes"]


def test_submissions(expected: dict) -> None:
    s = expected["survey"]
    with (DEMO / "surveys" / "building_survey.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == s["csv_rows"] == 300
    ids = [r["meta-instanceID"] for r in rows]
    assert len(set(ids)) == 299 and ids.count(s["duplicate_row_in_csv"]) == 2
    by_id = {r["meta-instanceID"]: r for r in rows}
    assert by_id[s["bad_rows"]["storeys_not_integer"]]["storeys"] == "two"
    assert by_id[s["bad_rows"]["no_location"]]["building-Latitude"] == ""
    assert float(by_id[s["bad_rows"]["lat_lon_swapped"]]["building-Latitude"]) > 39.0
    instances = sorted((DEMO / "surveys" / "instances").glob("*.xml"))
    assert len(instances) == s["xml_instances"] == 40
    dup = DEMO / "surveys" / "instances" / (s["duplicate_across_csv_and_xml"].replace(":", "_") + ".xml")
    root = ET.parse(dup).getroot()
    lat, lon, *_ = root.findtext("building").split()
    row = by_id[s["duplicate_across_csv_and_xml"]]
    assert (lat, lon) == (row["building-Latitude"], row["building-Longitude"])  # latitude first in XML
    assert root.get("version") == "2026110101" and root.findtext("meta/instanceID") == row["meta-instanceID"]


def test_traces_and_size(expected: dict) -> None:
    gpx = sorted((DEMO / "traces").glob("route_*_run*.gpx"))
    assert len(gpx) == expected["traces"]["files"] == 12
    ns = {"g": "http://www.topografix.com/GPX/1/1"}
    pts = ET.parse(DEMO / "traces" / "route_D1_run1.gpx").getroot().findall(".//g:trkpt", ns)
    assert len(pts) == expected["traces"]["points"]["route_D1_run1.gpx"]
    assert pts[0].findtext("g:time", namespaces=ns).endswith("Z")
    total = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file() and ".civicmap" not in p.parts)
    assert total < 10_000_000


def test_readme_lists_the_planted_inputs(expected: dict) -> None:
    readme = (DEMO / "README.md").read_text(encoding="utf-8")
    assert "FICTIONAL" in readme
    for way_id in expected["osm"]["bad_geometry_way_ids"].values():
        assert f"w{way_id}" in readme
    for iid in [*expected["survey"]["bad_rows"].values(), expected["survey"]["duplicate_row_in_csv"]]:
        assert iid in readme
