from pathlib import Path

import pytest

from civicmap.config import read_project_config
from civicmap.errors import ConfigError, NotFoundError


def write(folder: Path, text: str) -> Path:
    (folder / "civicmap.toml").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "city.osm").write_text("<osm/>")
    (tmp_path / "dem.tif").write_bytes(b"")
    (tmp_path / "forms").mkdir()
    (tmp_path / "forms" / "f.xlsx").write_bytes(b"")
    (tmp_path / "subs.csv").write_text("a\n")
    return tmp_path


GOOD = """
[project]
name = "Test city"
[area]
bbox = [39.23, -6.825, 39.25, -6.805]
[osm]
path = "city.osm"
[[rasters]]
name = "dem"
path = "dem.tif"
kind = "dem"
[[surveys]]
name = "buildings"
form = "forms/f.xlsx"
submissions = "subs.csv"
"""


def test_good_project_resolves_paths_and_defaults(project):
    cfg = read_project_config(write(project, GOOD))
    assert cfg.name == "Test city"
    assert cfg.crs is None  # automatic
    assert cfg.area.bbox is not None and cfg.area.bbox.west == 39.23
    assert cfg.osm is not None and cfg.osm.path == project / "city.osm"
    assert "OpenStreetMap contributors" in cfg.osm.licence
    assert cfg.rasters[0].kind == "dem"
    assert cfg.surveys[0].submissions == (project / "subs.csv",)
    assert cfg.store_url == str(project / ".civicmap" / "test_city.gpkg")


def test_every_problem_is_listed_with_its_key_path(project):
    bad = """
[project]
name = "x"
crs = "EPSG:999999"
[area]
bbox = [39.25, -6.825, 39.23, -6.805]
[[rasters]]
name = "DEM!"
path = "missing.tif"
kind = "lidar"
[extra]
a = 1
"""
    with pytest.raises(ConfigError) as err:
        read_project_config(write(project, bad))
    text = str(err.value)
    assert "5 problem(s)" in text or "6 problem(s)" in text
    for needle in [
        "extra: unknown table",
        "crs: 'EPSG:999999' is not a CRS",
        "area.bbox: bbox",
        "rasters[0].name: 'DEM!' must be lower-case",
        "rasters[0].path: file 'missing.tif' not found",
        "rasters[0].kind: 'lidar' is not one of",
    ]:
        assert needle in text


def test_missing_area_and_name(project):
    with pytest.raises(ConfigError, match=r"project.name: missing[\s\S]*area: missing; add a \[area\] table"):
        read_project_config(write(project, "[project]\n"))


def test_duplicate_source_names_are_refused(project):
    text = GOOD + '\n[[traces]]\nname = "dem"\npath = "subs.csv"\n'
    with pytest.raises(ConfigError, match="'dem' is used by more than one source"):
        read_project_config(write(project, text))


def test_not_toml(project):
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_project_config(write(project, "[project\nname="))


def test_no_project_file(tmp_path):
    with pytest.raises(NotFoundError, match=r"no project file .*civicmap.toml"):
        read_project_config(tmp_path)


def test_area_file_and_bbox_are_exclusive(project):
    text = GOOD.replace(
        "bbox = [39.23, -6.825, 39.25, -6.805]", 'bbox = [39.23, -6.825, 39.25, -6.805]\nfile = "a.geojson"'
    )
    with pytest.raises(ConfigError, match="give exactly one of bbox"):
        read_project_config(write(project, text))


def test_osm_path_must_be_an_osm_file(project):
    (project / "city.txt").write_text("")
    with pytest.raises(ConfigError, match=r"osm.path: 'city.txt' is not .osm"):
        read_project_config(write(project, GOOD.replace('path = "city.osm"', 'path = "city.txt"')))
