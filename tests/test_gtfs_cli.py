"""`civicmap gtfs` on real feeds and extracts, and the demo city's traces."""

import shutil

from typer.testing import CliRunner

from civicmap.cli import DEMO_PROJECT, app
from civicmap.layers.transit import check_gtfs, read_gtfs


def test_from_osm_then_check_duitama(realdata, tmp_path):
    out = tmp_path / "duitama.zip"
    result = CliRunner().invoke(app, ["gtfs", "from-osm", str(realdata / "osm" / "trufi_duitama_colombia.osm.pbf"),
                                      "--out", str(out), "--timezone", "America/Bogota"])  # fmt: skip
    assert result.exit_code == 0, result.output
    # the published Duitama feed has 52 trips and 1227 stops (one trip per complete route relation)
    assert "trips 52" in result.output and "stops 1227" in result.output
    feed, problems = read_gtfs(out)
    assert not [p for p in problems if p.severity == "error"]
    assert set(feed["agency"]["agency_timezone"]) == {"America/Bogota"}
    check = CliRunner().invoke(app, ["gtfs", "check", str(out)])
    assert check.exit_code == 0 and "0 errors" in check.output


def test_check_reports_the_accra_defect_and_fails(realdata):
    result = CliRunner().invoke(app, ["gtfs", "check", str(realdata / "gtfs" / "accra_trotro_trufi_osm_gtfs.zip")])
    assert result.exit_code == 1
    assert "563 trips reference a shape_id but shapes.txt does not exist" in result.output


def test_from_traces_of_the_demo_city(tmp_path):
    project = tmp_path / "demo"
    shutil.copytree(DEMO_PROJECT, project, ignore=shutil.ignore_patterns(".civicmap", "_mkondo", "*.py"))
    assert CliRunner().invoke(app, ["build", str(project), "-q"]).exit_code == 0
    out = tmp_path / "traces.zip"
    result = CliRunner().invoke(app, ["gtfs", "from-traces", str(project / "traces"), "--project", str(project),
                                      "--out", str(out), "--timezone", "Africa/Dar_es_Salaam"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "routes 3" in result.output  # three daladala lines, driven four times each
    assert not [p for p in check_gtfs(out) if p.severity == "error"]
