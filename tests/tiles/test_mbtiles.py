"""MBTiles 1.3 writer: schema, metadata, TMS rows, gzip'ed MVT, atomic replace, bad input."""

import gzip
import json
import sqlite3

import geopandas as gpd
import mapbox_vector_tile
import pytest
import shapely

from civicmap.errors import InputError, NotFoundError
from civicmap.tiles.grid import tile_bounds
from civicmap.tiles.mbtiles import gzip_tile, tms_row, write_mbtiles
from civicmap.tiles.vector import encode_mvt
from civicmap.types import TileXYZ

PNG_META = {"name": "test", "format": "png", "bounds": "39.2,-6.9,39.3,-6.8", "minzoom": "3", "maxzoom": "14"}
PBF_META = {"name": "test", "format": "pbf", "json": json.dumps({"vector_layers": [{"id": "pts", "fields": {}}]})}


def rows(path, sql):
    with sqlite3.connect(path) as con:
        return con.execute(sql).fetchall()


def test_schema_follows_the_spec(tmp_path):
    path = tmp_path / "t.mbtiles"
    assert write_mbtiles(path, [(TileXYZ(0, 0, 0), b"a")], metadata=PNG_META) == 1
    columns = {t: [c[1] for c in rows(path, f"PRAGMA table_info({t})")] for t in ("metadata", "tiles")}
    assert columns == {"metadata": ["name", "value"], "tiles": ["zoom_level", "tile_column", "tile_row", "tile_data"]}
    indexes = rows(path, "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tiles'")
    assert len(indexes) == 1 and "UNIQUE" in indexes[0][1] and "zoom_level, tile_column, tile_row" in indexes[0][1]
    assert dict(rows(path, "SELECT name, value FROM metadata")) == PNG_META


def test_tms_row_is_flipped_on_a_known_tile(tmp_path):
    # a z14 tile in Dar es Salaam, XYZ row 8499 (from the north), is TMS row 2^14 - 1 - 8499 = 7884
    tile = TileXYZ(14, 9977, 8499)
    north = tile_bounds(tile).north
    assert north < 0  # south of the equator: the XYZ row is in the lower half, the TMS row in the upper
    assert tms_row(tile) == 7884
    path = tmp_path / "t.mbtiles"
    write_mbtiles(path, [(tile, b"x"), (TileXYZ(1, 0, 0), b"nw"), (TileXYZ(1, 1, 1), b"se")], metadata=PNG_META)
    stored = sorted(rows(path, "SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles"))
    # z1: the north-west tile (y=0) is TMS row 1, the south-east (y=1) row 0
    assert stored == [(1, 0, 1, b"nw"), (1, 1, 0, b"se"), (14, 9977, 7884, b"x")]


def test_gzipped_mvt_decodes_with_mapbox_vector_tile(tmp_path):
    tile = TileXYZ(14, 9977, 8499)
    w, s, e, n = tile_bounds(tile)
    pts = gpd.GeoDataFrame(
        {"kind": ["well", "school"]},
        geometry=shapely.points([w + (e - w) * 0.25, w + (e - w) * 0.75], [s + (n - s) * 0.5] * 2),
        crs="EPSG:3857",
    )
    path = tmp_path / "v.mbtiles"
    write_mbtiles(path, [(tile, gzip_tile(encode_mvt({"pts": pts}, tile)))], metadata=PBF_META)
    (data,) = rows(path, "SELECT tile_data FROM tiles WHERE zoom_level = 14 AND tile_column = 9977 AND tile_row = 7884")
    assert data[0][:2] == b"\x1f\x8b"  # gzip magic
    decoded = mapbox_vector_tile.decode(gzip.decompress(data[0]))
    features = decoded["pts"]["features"]
    assert sorted(f["properties"]["kind"] for f in features) == ["school", "well"]
    # y-up tile coordinates (mapbox_vector_tile default): the well sits at a quarter of the 4096 extent
    xs = sorted(f["geometry"]["coordinates"][0] for f in features)
    assert xs == [1024, 3072]


def test_existing_file_is_replaced_only_when_the_new_one_is_complete(tmp_path):
    path = tmp_path / "t.mbtiles"
    write_mbtiles(path, [(TileXYZ(0, 0, 0), b"old")], metadata=PNG_META)

    def failing():
        yield TileXYZ(1, 0, 0), b"new"
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        write_mbtiles(path, failing(), metadata=PNG_META)
    assert rows(path, "SELECT tile_data FROM tiles") == [(b"old",)]
    assert [p.name for p in tmp_path.iterdir()] == ["t.mbtiles"]  # no temp file left behind


def test_many_tiles_are_streamed_in_batches(tmp_path):
    tiles = ((TileXYZ(12, x, y), bytes([x % 256])) for x in range(50) for y in range(50))
    assert write_mbtiles(tmp_path / "t.mbtiles", tiles, metadata=PNG_META) == 2500
    assert rows(tmp_path / "t.mbtiles", "SELECT COUNT(*), MIN(tile_row), MAX(tile_row) FROM tiles") == [
        (2500, 4095 - 49, 4095)
    ]


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"format": "png"}, "'name' is missing"),
        ({"name": "x", "format": "tiff"}, "format 'tiff' is not one of pbf, png"),
        ({"name": "x", "format": "pbf"}, "needs metadata 'json'"),
        ({"name": "x", "format": "png", "minzoom": 3}, "must be text"),
    ],
)
def test_bad_metadata_is_refused_with_the_reason(tmp_path, metadata, message):
    with pytest.raises(InputError, match=message):
        write_mbtiles(tmp_path / "t.mbtiles", [], metadata=metadata)
    assert not list(tmp_path.iterdir())


def test_bad_tiles_are_refused(tmp_path):
    path = tmp_path / "t.mbtiles"
    with pytest.raises(InputError, match="tile 3/1/2 is given twice"):
        write_mbtiles(path, [(TileXYZ(3, 1, 2), b"a"), (TileXYZ(3, 1, 2), b"b")], metadata=PNG_META)
    with pytest.raises(NotFoundError, match=r"outside 0\.\.7"):
        write_mbtiles(path, [(TileXYZ(3, 8, 0), b"a")], metadata=PNG_META)
    with pytest.raises(InputError, match="data is str, expected bytes"):
        write_mbtiles(path, [(TileXYZ(3, 1, 2), "a")], metadata=PNG_META)
    with pytest.raises(InputError, match="does not exist"):
        write_mbtiles(tmp_path / "nope" / "t.mbtiles", [], metadata=PNG_META)
    assert not path.exists()
