"""encode_mvt output bytes are pinned: an optimisation must not change a single byte.

The sha256 digests below were computed with the encoder before its per-tile fixed costs were
removed; a deterministic synthetic frame (polygons, lines, points, a collection, nulls; float,
int, negative int, bool, string, list and missing properties; integer and string indexes) is
encoded on fixed tiles with several option sets.
"""

import hashlib
import math

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import pandas as pd
import pytest
import shapely
from mapbox_vector_tile.Mapbox import vector_tile_pb2

from civicmap.errors import InputError
from civicmap.tiles.grid import tiles_for_bbox
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


# --- MVTSource's precomputed geometry index: tiles made from it equal the frame path's ---


def mixed(n: int = 600, seed: int = 3) -> gpd.GeoDataFrame:
    """Polygons with holes, multipolygons, multilines, multipoints, rings, big and busy shapes; EPSG:3857."""
    rng = np.random.default_rng(seed)
    cx = CENTRE_M[0] + rng.uniform(-900, 900, n)
    cy = CENTRE_M[1] + rng.uniform(-900, 900, n)
    r = rng.uniform(3, 50, n)
    holed = shapely.difference(
        shapely.buffer(shapely.points(cx, cy), r, quad_segs=3), shapely.buffer(shapely.points(cx, cy), r / 3)
    )
    multi = shapely.multipolygons(np.stack([holed, shapely.box(cx + 2 * r, cy, cx + 2 * r + 4, cy + 3)], 1))
    xs = np.stack([cx, cx + r, cx + 2 * r], 1)
    line = shapely.linestrings(np.stack([xs, np.stack([cy, cy + r, cy], 1)], 2))
    multiline = shapely.multilinestrings(
        np.stack([line, shapely.transform(line, lambda c: c + np.array([0.0, 7.0]))], 1)
    )
    multipoint = shapely.multipoints(np.stack([shapely.points(cx, cy), shapely.points(cx + r, cy - r)], 1))
    ring = shapely.linearrings(np.stack([xs, np.stack([cy, cy, cy + r], 1)], 2))
    busy = shapely.buffer(shapely.points(cx, cy), 3 * r, quad_segs=16)  # > 5 vertices: simplified by shapely
    kind = np.arange(n) % 8
    choices = [holed, multi, line, multiline, multipoint, ring, busy, shapely.points(cx, cy)]
    geoms = np.choose(kind, choices)
    geoms[7] = None
    geoms[15] = shapely.Polygon()
    props = {"v": np.where(np.arange(n) % 4 == 1, -0.0, np.round(rng.uniform(-1, 1, n), 1)), "k": kind.astype(str)}
    return gpd.GeoDataFrame(props, geometry=geoms, crs=3857)


def tiles_over(gdf: gpd.GeoDataFrame, zooms: range) -> list[TileXYZ]:
    return list(tiles_for_bbox(tuple(gdf.to_crs(4326).total_bounds), zooms))


@pytest.mark.parametrize(
    ("frame_name", "options"),
    [
        ("int", {}),
        ("int", {"simplify": False, "buffer": 0}),
        ("str", {"simplify": 3.0, "extent": 512}),
        ("mixed", {}),
        ("mixed", {"simplify": False}),
        ("lonlat", {}),
    ],
)
def test_source_equals_frame_on_every_tile(frames, frame_name, options):
    """Every tile of z15-z17 over the frame: MVTSource bytes (index path) == GeoDataFrame bytes (shapely path)."""
    gdf = {"mixed": mixed(), "lonlat": frames["int"].to_crs(4326)}.get(frame_name, frames.get(frame_name))
    source = MVTSource(gdf, name="l")
    tiles = tiles_over(gdf, range(15, 18))
    assert len(tiles) == 89
    sizes = []
    for tile in tiles:
        expected = encode_mvt({"l": gdf}, tile, **options)
        assert encode_mvt({"l": source}, tile, **options) == expected, tile
        sizes.append(len(expected))
    assert sum(s > 0 for s in sizes) >= 70  # the tiles are not empty: the comparison means something


def test_index_path_is_taken_and_mixed_with_shapely_path(frames):
    """At z17 most features are inside the clip box (sliced from the index) and some cross it (shapely)."""
    from civicmap.tiles._mvt_geometry import TileFrame, parts_of
    from civicmap.tiles.vector import _prepare

    source = MVTSource(frames["int"], name="l")
    frame = TileFrame.for_tile(CASES[3][0], extent=4096, buffer=64)
    prep = _prepare("l", source, frame)
    assert prep.indexed.sum() > (~prep.indexed & (prep.family > 0)).sum() > 0
    rows = prep.rows[prep.indexed & (prep.family == 3)]
    taken, direct = source.index.take(rows), parts_of(source.geoms[rows], 3)
    assert taken.n == direct.n == len(rows)
    for name in ("xy", "sizes", "feature", "exterior"):
        np.testing.assert_array_equal(getattr(taken, name), getattr(direct, name))
    stored = np.argsort(source.frame_rows)  # frame row -> storage position (features kept in Z-order)
    assert source.index.family[stored[[5, 10]]].tolist() == [0, 0]  # null and collection: shapely path
    assert source.index.family[stored[:5]].tolist() == [3, 3, 2, 3, 1]
    assert sorted(source.frame_rows.tolist()) == list(range(len(source)))


def test_feature_on_the_clip_box_edge():
    """Bounds equal to the buffered tile's edge: not clipped (index path), same bytes as the frame path."""
    from civicmap.tiles._mvt_geometry import TileFrame

    tile = TileXYZ(17, 78941, 66005)
    w, s, e, n = TileFrame.for_tile(tile, extent=4096, buffer=64).clip_box
    geoms = [
        shapely.box(w, s, w + 20, s + 15),
        shapely.box(e - 20, n - 15, e, n),
        shapely.box(w - 1e-9, s, w + 9, s + 9),
    ]
    gdf = gpd.GeoDataFrame({"v": [1, 2, 3]}, geometry=geoms, crs=3857)
    source = MVTSource(gdf, name="l")
    assert encode_mvt({"l": source}, tile) == encode_mvt({"l": gdf}, tile)
    decoded = mapbox_vector_tile.decode(encode_mvt({"l": source}, tile), default_options={"y_coord_down": True})
    rings = [f["geometry"]["coordinates"][0] for f in decoded["l"]["features"]]
    assert min(x for x, _ in rings[0]) == -64 and max(y for _, y in rings[0]) == 4160
    assert max(x for x, _ in rings[1]) == 4160 and min(y for _, y in rings[1]) == -64


def test_signed_zero_properties_as_in_the_frame_path():
    """0.0 and -0.0 are one MVT value (Python equality): a tile writes the one it meets first, from a source too.

    The frame's first zero (-0.0, 5 km away) is in another tile; a source that kept the frame's
    first one would write -0.0 where the frame path writes 0.0.
    """
    x = CENTRE_M[0] + np.array([5000.0, 0, 1, 2, 3])
    gdf = gpd.GeoDataFrame({"v": [-0.0, 1.5, 0.0, -0.0, 2.0]}, geometry=shapely.points(x, CENTRE_M[1]), crs=3857)
    tile = next(iter(tiles_for_bbox(tuple(np.add(gdf.iloc[1:].to_crs(4326).total_bounds, [0, 0, 1e-6, 1e-6])), 17)))
    data = encode_mvt({"l": MVTSource(gdf, name="l")}, tile)
    assert data == encode_mvt({"l": gdf}, tile)
    values = [v.double_value for v in vector_tile_pb2.tile.FromString(data).layers[0].values]
    assert values == [1.5, 0.0, 2.0] and math.copysign(1, values[1]) == 1.0


def test_index_memory_per_feature(frames):
    """The precomputed geometry index costs ~100-200 bytes per small feature (reported to the lead)."""
    source = MVTSource(frames["int"], name="l")
    per_feature = source.index.nbytes / len(source)
    assert 60 < per_feature < 400


def test_first_appearance_numbering_dense_and_sorted():
    """Tile value numbers: order of first appearance, the same with a dense table or by sorting."""
    from civicmap.tiles._mvt_properties import _first_appearance

    groups = np.array([7, 3, 7, 9, 3, 0, 9, 7])
    for n_groups in (10, 100_000):
        number, firsts = _first_appearance(groups, n_groups)
        assert number.tolist() == [0, 1, 0, 2, 1, 3, 2, 0]
        assert firsts.tolist() == [0, 1, 3, 5]
