import sqlite3

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from civicmap.errors import InputError, NotFoundError
from civicmap.store import GeoPackageStore, open_store
from civicmap.types import BBox, Provenance


@pytest.fixture
def store(tmp_path):
    return open_store(tmp_path / "ws" / "p.gpkg")


@pytest.fixture
def buildings():
    geoms = [shapely.box(500_000 + i * 20, 9_240_000, 500_010 + i * 20, 9_240_010) for i in range(5)]
    index = pd.Index([f"w{i}" for i in range(5)], name="osm_id")
    return gpd.GeoDataFrame(
        {"building": ["house"] * 5, "levels": [1, 2, 3, 1, None], "tags": [["a"], {"b": 1}, None, (), ["c"]]},
        geometry=geoms,
        index=index,
        crs=32737,
    )


def test_layer_round_trip_keeps_index_crs_and_values(store, buildings):
    info = store.write_layer(
        "buildings", buildings, provenance=Provenance("city.osm", "ODbL"), problems=("1 repaired",)
    )
    assert info.feature_count == 5 and info.version == 1 and info.crs == "EPSG:32737"
    assert info.problems == ("1 repaired",) and info.provenance["licence"] == "ODbL"
    assert info.bounds == BBox(500_000, 9_240_000, 500_090, 9_240_010)
    assert 38.9 < info.bounds_wgs84.west < 39.1 and -6.9 < info.bounds_wgs84.south < -6.8  # UTM 37S -> Dar es Salaam
    back = store.read_layer("buildings")
    assert list(back.index) == list(buildings.index) and back.index.name == "osm_id"
    assert back.crs.to_epsg() == 32737
    assert back.geometry.equals(buildings.geometry)
    assert back["tags"].tolist()[:2] == ['["a"]', '{"b": 1}']  # nested values stored as JSON text


def test_rewrite_bumps_version_and_replaces_rows(store, buildings):
    store.write_layer("buildings", buildings)
    info = store.write_layer("buildings", buildings.iloc[:2])
    assert info.version == 2 and info.feature_count == 2
    assert len(store.read_layer("buildings")) == 2


def test_bbox_read_is_spatially_filtered(store, buildings):
    store.write_layer("buildings", buildings)
    part = store.read_layer("buildings", bbox=BBox(500_000, 9_240_000, 500_035, 9_240_010))
    assert sorted(part.index) == ["w0", "w1"]


def test_file_is_a_valid_wal_geopackage_that_gdal_lists(store, buildings):
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


def test_tables_round_trip(store):
    store.write_table(
        "survey_errors", pd.DataFrame({"row": ["7"], "field": ["storeys"], "problem": ["not an integer"]})
    )
    assert store.read_table("survey_errors").to_dict("records") == [
        {"row": "7", "field": "storeys", "problem": "not an integer"}
    ]


def test_raster_registration(store):
    path = store.raster_path("dem")
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=4,
        height=3,
        count=1,
        dtype="float32",
        crs="EPSG:32737",
        transform=from_origin(500_000, 9_240_000, 5, 5),
    ) as dst:
        dst.write(np.ones((1, 3, 4), dtype="float32"))
    info = store.register_raster("dem", meta={"raster_kind": "dem"})
    assert info.kind == "raster" and info.path == path and info.feature_count == 12
    assert info.bounds == BBox(500_000, 9_239_985, 500_020, 9_240_000)
    assert info.meta["raster_kind"] == "dem" and info.meta["dtype"] == "float32"


def test_unknown_layer_lists_what_exists(store, buildings):
    store.write_layer("buildings", buildings)
    with pytest.raises(NotFoundError, match=r"no layer 'roads'.*layers: buildings"):
        store.read_layer("roads")
    assert store.layers()[0].name == "buildings"


@pytest.mark.parametrize("name", ["../etc/passwd", "Buildings", "a b", "x" * 64, "civicmap_layers", "1abc"])
def test_unsafe_layer_names_are_refused(store, buildings, name):
    with pytest.raises(InputError, match="layer name"):
        store.write_layer(name, buildings)


def test_layer_without_crs_is_refused(store):
    with pytest.raises(InputError, match="no CRS"):
        store.write_layer("pts", gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)]))


def test_empty_store_has_no_layers(tmp_path):
    assert GeoPackageStore(tmp_path / "none.gpkg").layers() == []


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("postgresql://u@h/db", "not available"),
        ("s3://b/x.gpkg", "unknown scheme"),
        ("x.sqlite", r"must end in \.gpkg"),
    ],
)
def test_open_store_rejects_what_it_cannot_open(url, needle):
    with pytest.raises(InputError, match=needle):
        open_store(url)
