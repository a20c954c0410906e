"""What only the GeoPackage backend promises (the shared contract is in test_store.py)."""

import sqlite3

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely

from civicmap.errors import InputError
from civicmap.store import GeoPackageStore, open_store


@pytest.fixture
def store(tmp_path):
    return open_store(tmp_path / "ws" / "p.gpkg")


def test_file_is_a_valid_wal_geopackage_that_gdal_lists(store):
    buildings = gpd.GeoDataFrame({"building": ["house"]}, geometry=[shapely.box(0, 0, 1, 1)], crs=32737)
    store.write_layer("buildings", buildings)
    store.write_table("errors", pd.DataFrame({"row": [3], "problem": ["bad"]}))
    con = sqlite3.connect(store.path)
    assert con.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47  # "GPKG"
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    registered = {r[0]: r[1] for r in con.execute("SELECT table_name, data_type FROM gpkg_contents")}
    assert registered == {"buildings": "features", "errors": "attributes", "civicmap_layers": "attributes"}
    assert set(pyogrio.list_layers(store.path)[:, 0]) == {"buildings", "errors", "civicmap_layers"}


def test_empty_store_has_no_layers(tmp_path):
    assert GeoPackageStore(tmp_path / "none.gpkg").layers() == []


def test_open_store_gives_a_geopackage_for_paths_and_file_urls(tmp_path):
    assert isinstance(open_store(tmp_path / "a.gpkg"), GeoPackageStore)
    assert open_store(f"file://{tmp_path}/b.gpkg").path == tmp_path / "b.gpkg"


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("s3://b/x.gpkg", "unknown scheme"),
        ("x.sqlite", r"must end in \.gpkg"),
    ],
)
def test_open_store_rejects_what_it_cannot_open(url, needle):
    with pytest.raises(InputError, match=needle):
        open_store(url)
