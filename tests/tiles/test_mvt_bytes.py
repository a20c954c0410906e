"""encode_mvt output bytes are pinned: an optimisation must not change a single byte.

The sha256 digests below were computed with the encoder before its per-tile fixed costs were
removed; a deterministic synthetic frame (polygons, lines, points, a collection, nulls; float,
int, negative int, bool, string, list and missing properties; integer and string indexes) is
encoded on fixed tiles with several option sets.
"""

import hashlib

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import pandas as pd
import pytest
import shapely

from civicmap.errors import InputError
from civicmap.tiles.vector import MVTSource, encode_mvt
from civicmap.types import TileXYZ

CENTRE_M = (4_098_900.0, -143_600.0)  # EPSG:3857, Nairobi


def synthetic(n: int = 3000, seed: int = 7) -> gpd.GeoDataFrame:
    """Mixed geometries and property types over ~2 x 2 km, EPSG:3857, deterministic."""
    rng = np.random.default_rng(seed)
    cx = CENTRE_M[0] + rng.uniform(-1000, 1000, n)
    cy = CENTRE_M[1] + rng.uniform(-1000, 1000, n)
    size = rng.uniform(2, 60, n)
    boxes = shapely.box(cx, cy, cx + size, cy + 0.7 * size)
    circles = shapely.buffer(shapely.points(cx, cy), size, quad_segs=4)
    lines = shapely.linestrings(
        np.stack([np.stack([cx, cx + size, cx + 2 * size], 1), np.stack([cy, cy + size, cy - size], 1)], 2)
    )
    kind = np.arange(n) % 5
    geoms = np.where(kind == 0, boxes, np.where(kind == 1, circles, np.where(kind == 2, lines, boxes)))
    geoms[kind == 4] = shapely.points(cx[kind == 4], cy[kind == 4])
    geoms[5] = None
    geoms[10] = shapely.GeometryCollection([shapely.Point(cx[10], cy[10]), boxes[10]])
    height = np.round(rng.uniform(3, 40, n), 1)
    height[::17] = np.nan
    props = {
        "height_m": height,
        "levels": rng.integers(-3, 12, n),
        "flag": rng.integers(0, 2, n).astype(bool),
        "kind": pd.Series(rng.choice(["house", "shop", "école", ""], n), dtype=object),
        "tags": [["a", i % 3] if i % 11 == 0 else None for i in range(n)],
    }
    gdf = gpd.GeoDataFrame(props, geometry=geoms, crs=3857)
    gdf.sindex  # noqa: B018 - as the service holds it
    return gdf


CASES = [
    # (tile, index kind, encode_mvt options, sha256 of the output computed with the old encoder)
    (TileXYZ(14, 9867, 8250), "int", {}, "36df6dc187d55259c79bd973ee19d069abad6b22e5f43c27a60c3de361917f85"),
    (
        TileXYZ(15, 19735, 16501),
        "int",
        {"properties": {"l": ["height_m", "kind"]}},
        "065973606f10751f92b025e041ee02f9913c5921d0b3ee70d74e623a4b28d0fb",
    ),
    (TileXYZ(16, 39470, 33002), "str", {}, "6d4ffa666f2217432d622a6f584485ec3716f4b167979d795d15086861cad9f4"),
    (
        TileXYZ(17, 78941, 66005),
        "int",
        {"simplify": False, "buffer": 0},
        "5cb080dd5348fba072e75abc8f16232abd14535f5eac96b83b0bd504eabb0042",
    ),
    (
        TileXYZ(14, 9867, 8250),
        "str",
        {"max_bytes": 40_000, "extent": 512},
        "d5d852c485146a8244b5426d2597bb6caa42b12ea87a1e4063f4d6ced377baa3",
    ),
]


@pytest.fixture(scope="module")
def frames() -> dict[str, gpd.GeoDataFrame]:
    gdf = synthetic()
    named = gdf.copy()
    named.index = [f"way/{i}" for i in range(len(gdf))]
    named.sindex  # noqa: B018
    return {"int": gdf, "str": named}


@pytest.mark.parametrize(("tile", "index", "options", "digest"), CASES)
def test_bytes_unchanged(frames, tile, index, options, digest):
    data = encode_mvt({"l": frames[index], "other": frames["int"].iloc[::7]}, tile, **options)
    assert len(data) > 200
    assert hashlib.sha256(data).hexdigest() == digest


@pytest.mark.parametrize(("tile", "index", "options", "digest"), CASES)
def test_prepared_sources_give_the_same_bytes(frames, tile, index, options, digest):
    """A tile server's MVTSource (properties factorised once, own STRtree) changes no byte."""
    layers = {"l": MVTSource(frames[index], name="l"), "other": MVTSource(frames["int"].iloc[::7], name="other")}
    assert hashlib.sha256(encode_mvt(layers, tile, **options)).hexdigest() == digest


def test_prepared_source_from_lonlat_and_subset_columns(frames):
    """A source reprojects once; encode_mvt(properties=...) picks among its columns, or says which are missing."""
    tile = CASES[1][0]
    lonlat = frames["int"].to_crs(4326)
    direct = encode_mvt({"l": lonlat}, tile, properties={"l": ["height_m", "kind"]})
    source = MVTSource(lonlat, name="l")
    assert encode_mvt({"l": source}, tile, properties={"l": ["height_m", "kind"]}) == direct
    assert len(source) == len(lonlat) and source.columns == ["height_m", "levels", "flag", "kind", "tags"]
    with pytest.raises(InputError, match="cannot write"):
        encode_mvt({"l": MVTSource(lonlat, name="l", properties=["kind"])}, tile, properties={"l": ["levels"]})


def test_feature_ids_do_not_depend_on_the_tile(frames):
    """An integer index with one negative label is hashed in every tile, not only where that label is."""
    gdf = frames["int"].copy()
    gdf.index = np.arange(len(gdf)) - 1  # label -1 on the first row only
    tile = CASES[3][0]
    assert encode_mvt({"l": gdf}, tile) == encode_mvt({"l": MVTSource(gdf, name="l")}, tile)
    ids = {f["id"] for f in mapbox_vector_tile.decode(encode_mvt({"l": gdf}, tile))["l"]["features"]}
    assert ids and not ids & set(range(len(gdf)))


def test_repeated_calls_same_bytes(frames):
    tile = CASES[2][0]
    first = encode_mvt({"l": frames["str"]}, tile)
    assert all(encode_mvt({"l": frames["str"]}, tile) == first for _ in range(3))
