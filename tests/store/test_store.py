"""The store contract, run against every backend (``store`` fixture: GeoPackage and PostGIS)."""

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from civicmap.errors import InputError, NotFoundError
from civicmap.types import BBox, Provenance


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
    assert back["levels"].tolist()[:4] == [1, 2, 3, 1] and np.isnan(back["levels"].iloc[4])
    assert info.geometry_type == "Polygon" and info.updated_at.endswith("+00:00")


def test_values_of_every_common_type_round_trip(store):
    text = ["plain", "tab\there", "line\nbreak\r", "back\\slash \\N", "", None]
    frame = gpd.GeoDataFrame(
        {
            "text": pd.Series(text, dtype=object),
            "count": np.arange(6, dtype="int64") - 2,
            "share": [0.1, 1e-9, -2.5, np.nan, 1e300, 0.0],
            "flag": [True, False, True, True, False, True],
            "at": pd.to_datetime(["2026-01-02T03:04:05Z"] * 5 + [None], utc=True),
            "quote": ["'; DROP TABLE x; --", '"', "é ü ñ 中", "😀", "a,b", "x"],
        },
        geometry=[shapely.Point(39.2 + i / 1000, -6.8) for i in range(6)],
        crs=4326,
    )
    store.write_layer("mixed", frame)
    back = store.read_layer("mixed")
    assert back["text"].tolist()[:5] == text[:5] and pd.isna(back["text"].iloc[5])
    assert back["count"].tolist() == [-2, -1, 0, 1, 2, 3]
    assert back["share"].tolist()[:3] == [0.1, 1e-9, -2.5] and np.isnan(back["share"].iloc[3])
    assert back["share"].iloc[4] == 1e300
    assert back["flag"].tolist() == [True, False, True, True, False, True]
    assert back["at"].iloc[0] == pd.Timestamp("2026-01-02T03:04:05Z") and pd.isna(back["at"].iloc[5])
    assert back["quote"].tolist() == frame["quote"].tolist()
    assert list(back.columns) == [*frame.columns]
    assert back.crs.to_epsg() == 4326 and back.geometry.equals(frame.geometry)


def test_rewrite_bumps_version_and_replaces_rows(store, buildings):
    store.write_layer("buildings", buildings)
    info = store.write_layer("buildings", buildings.iloc[:2])
    assert info.version == 2 and info.feature_count == 2
    assert len(store.read_layer("buildings")) == 2
    assert store.write_layer("buildings", buildings).version == 3 and len(store.read_layer("buildings")) == 5


def test_bbox_read_is_spatially_filtered(store, buildings):
    store.write_layer("buildings", buildings)
    part = store.read_layer("buildings", bbox=BBox(500_000, 9_240_000, 500_035, 9_240_010))
    assert sorted(part.index) == ["w0", "w1"]
    assert store.read_layer("buildings", bbox=BBox(0, 0, 10, 10)).empty


def test_column_subset_keeps_the_index(store, buildings):
    store.write_layer("buildings", buildings)
    part = store.read_layer("buildings", columns=["levels"])
    assert list(part.columns) == ["levels", "geometry"] and part.index.tolist() == ["w0", "w1", "w2", "w3", "w4"]


def test_empty_layer_round_trips(store, buildings):
    info = store.write_layer("nothing", buildings.iloc[:0])
    assert info.feature_count == 0 and info.bounds is None and info.geometry_type is None
    back = store.read_layer("nothing")
    assert len(back) == 0 and back.crs.to_epsg() == 32737


def test_tables_round_trip(store):
    store.write_table(
        "survey_errors", pd.DataFrame({"row": ["7"], "field": ["storeys"], "problem": ["not an integer"]})
    )
    assert store.read_table("survey_errors").to_dict("records") == [
        {"row": "7", "field": "storeys", "problem": "not an integer"}
    ]


def test_table_and_layer_kinds_are_not_confused(store, buildings):
    store.write_layer("buildings", buildings)
    store.write_table("errors", pd.DataFrame({"row": [3]}))
    with pytest.raises(InputError, match="is a table, not a vector layer"):
        store.read_layer("errors")
    with pytest.raises(InputError, match="is a vector, not a table"):
        store.read_table("buildings")


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
    assert store.register_raster("dem").version == 2


def test_registering_a_missing_raster_fails(store):
    with pytest.raises(NotFoundError, match="raster 'dem': no file"):
        store.register_raster("dem")


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


def test_fresh_store_has_no_layers(store):
    assert store.layers() == []
    with pytest.raises(NotFoundError, match="none"):
        store.layer_info("buildings")
