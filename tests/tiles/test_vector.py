import logging
import time

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import pandas as pd
import pytest
import shapely
from mapbox_vector_tile.Mapbox import vector_tile_pb2

from civicmap.errors import CRSError, InputError, NotFoundError
from civicmap.tiles.grid import tile_bounds
from civicmap.tiles.vector import encode_mvt, mvt_fields
from civicmap.types import TileXYZ

TILE = TileXYZ(14, 9876, 8450)


def to_m(tile, xy):
    """Tile coordinates (extent 4096, y down) -> EPSG:3857 metres."""
    w, _, e, n = tile_bounds(tile)
    k = (e - w) / 4096
    return [(w + x * k, n - y * k) for x, y in xy]


def frame(geoms, tile=TILE, crs=3857, **columns):
    geoms = [shapely.transform(g, lambda c: np.array(to_m(tile, c))) if g is not None else None for g in geoms]
    return gpd.GeoDataFrame(columns, geometry=geoms, crs=crs)


def decode(data):
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})


def raw(data):
    return vector_tile_pb2.tile.FromString(data)


def zz(n):
    return (n << 1) ^ (n >> 63)


def area2(ring):
    """Twice the surveyor's area, in tile coordinates (MVT 2.1 §4.3.4.4)."""
    pts = ring[:-1] if ring[0] == ring[-1] else ring
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True))


def square(x0, y0, x1, y1):
    """Clockwise on screen (y down) = positive area: the MVT exterior orientation."""
    return shapely.Polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])


def test_known_square_exact_commands():
    data = encode_mvt({"sq": frame([square(1024, 1024, 3072, 3072)])}, TILE)
    layer = raw(data).layers[0]
    assert (layer.version, layer.name, layer.extent) == (2, "sq", 4096)
    feature = layer.features[0]
    assert feature.type == vector_tile_pb2.tile.Polygon
    # MoveTo(1) 1024,1024; LineTo(3) +2048,0 0,+2048 -2048,0; ClosePath (first point not repeated)
    assert list(feature.geometry) == [9, zz(1024), zz(1024), 26, zz(2048), 0, 0, zz(2048), zz(-2048), 0, 15]
    assert decode(data)["sq"]["features"][0]["geometry"]["coordinates"] == [
        [[1024, 1024], [3072, 1024], [3072, 3072], [1024, 3072], [1024, 1024]]
    ]


def test_winding_fixed_for_exterior_and_hole():
    ext = square(100, 100, 3000, 3000).exterior.coords[::-1]  # counter-clockwise on screen: wrong for MVT
    hole = square(1000, 1000, 2000, 2000).exterior.coords[:]  # clockwise: wrong for a hole
    data = encode_mvt({"p": frame([shapely.Polygon(ext, [hole])])}, TILE)
    rings = decode(data)["p"]["features"][0]["geometry"]["coordinates"]
    assert len(rings) == 2
    assert area2(rings[0]) == 2 * 2900 * 2900
    assert area2(rings[1]) == -2 * 1000 * 1000


def test_multipolygon_cursor_continues_between_parts():
    mp = shapely.MultiPolygon([square(0, 0, 10, 10), square(20, 20, 30, 30)])
    geom = list(raw(encode_mvt({"m": frame([mp])}, TILE, simplify=False)).layers[0].features[0].geometry)
    first = [9, zz(0), zz(0), 26, zz(10), 0, 0, zz(10), zz(-10), 0, 15]
    # the second MoveTo is relative to the last point of the first ring (0, 10), not to (0, 0)
    assert geom == [*first, 9, zz(20), zz(10), 26, zz(10), 0, 0, zz(10), zz(-10), 0, 15]


def test_property_types_are_typed_values():
    gdf = frame(
        [shapely.Point(10, 10)] * 4,
        name=["a", "b", None, "d"],
        n=[1, -2, 3, 2**40],
        x=[0.5, np.nan, 2.0, 1.5],
        ok=[True, False, True, True],
    )
    layer = raw(encode_mvt({"pts": gdf}, TILE)).layers[0]
    assert list(layer.keys) == ["name", "n", "x", "ok"]
    kinds = [v.ListFields()[0][0].name for v in layer.values]
    assert set(kinds) == {"string_value", "uint_value", "sint_value", "double_value", "bool_value"}
    props = [f["properties"] for f in decode(encode_mvt({"pts": gdf}, TILE))["pts"]["features"]]
    assert props[0] == {"name": "a", "n": 1, "x": 0.5, "ok": True}
    assert props[1] == {"name": "b", "n": -2, "ok": False}  # NaN left out: MVT has no null
    assert props[2] == {"n": 3, "x": 2.0, "ok": True}
    assert props[3]["n"] == 2**40
    values = [(v.ListFields()[0][0].name, v.ListFields()[0][1]) for v in layer.values]
    assert len(values) == len(set(values))  # values table de-duplicated (True used three times)


def test_properties_selection_and_fields():
    gdf = frame([shapely.Point(5, 5)], name=["a"], secret=["phone"], h=[3.5])
    layer = raw(encode_mvt({"p": gdf}, TILE, properties={"p": ["name"]})).layers[0]
    assert list(layer.keys) == ["name"]
    with pytest.raises(InputError, match="nope"):
        encode_mvt({"p": gdf}, TILE, properties={"p": ["nope"]})
    assert mvt_fields(gdf) == {"name": "String", "secret": "String", "h": "Number"}


def test_several_layers_in_one_tile():
    a = frame([square(0, 0, 100, 100)])
    b = frame([shapely.LineString([(0, 0), (4000, 4000)])])
    c = frame([shapely.Point(4095, 4095)])
    tile = raw(encode_mvt({"a": a, "b": b, "c": c}, TILE))
    assert [(layer.name, layer.version, len(layer.features)) for layer in tile.layers] == [
        ("a", 2, 1),
        ("b", 2, 1),
        ("c", 2, 1),
    ]


def test_clip_to_buffer():
    big = frame([square(-5000, -5000, 9000, 9000)])
    coords = decode(encode_mvt({"b": big}, TILE))["b"]["features"][0]["geometry"]["coordinates"][0]
    assert {x for x, _ in coords} == {-64, 4160} and {y for _, y in coords} == {-64, 4160}
    zero = decode(encode_mvt({"b": big}, TILE, buffer=0))["b"]["features"][0]["geometry"]["coordinates"][0]
    assert {x for x, _ in zero} == {0, 4096}


def test_line_crossing_the_tile_is_clipped():
    line = frame([shapely.LineString([(-10000, 2048), (20000, 2048)])])
    feat = decode(encode_mvt({"l": line}, TILE))["l"]["features"][0]
    assert feat["geometry"] == {"type": "LineString", "coordinates": [[-64, 2048], [4160, 2048]]}


def test_multipoint_and_multilinestring():
    gdf = frame(
        [
            shapely.MultiPoint([(10, 20), (30, 40), (4000, 100)]),
            shapely.MultiLineString([[(0, 0), (100, 0)], [(0, 50), (100, 50)]]),
        ]
    )
    feats = decode(encode_mvt({"m": gdf}, TILE, simplify=False))["m"]["features"]
    assert feats[0]["geometry"] == {"type": "MultiPoint", "coordinates": [[10, 20], [30, 40], [4000, 100]]}
    assert feats[1]["geometry"] == {
        "type": "MultiLineString",
        "coordinates": [[[0, 0], [100, 0]], [[0, 50], [100, 50]]],
    }
    mp = raw(encode_mvt({"m": gdf.iloc[:1]}, TILE)).layers[0].features[0]
    assert mp.geometry[0] == 1 | (3 << 3)  # one MoveTo with count 3


def test_empty_tile_is_empty_bytes():
    gdf = frame([square(0, 0, 100, 100)])
    assert encode_mvt({"a": gdf}, TileXYZ(14, 100, 100)) == b""
    assert encode_mvt({"a": gdf.iloc[:0]}, TILE) == b""
    assert encode_mvt({}, TILE) == b""


def test_deterministic_bytes_and_stable_hashed_ids():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 4096, (300, 2))
    gdf = frame([square(x, y, x + 20, y + 15) for x, y in xy], kind=rng.choice(["a", "b"], 300))
    gdf.index = [f"way/{i}" for i in range(300)]
    one, two = encode_mvt({"b": gdf}, TILE), encode_mvt({"b": gdf.copy()}, TILE)
    assert one == two
    ids = [f.id for f in raw(one).layers[0].features]
    assert len(set(ids)) == 300 and max(ids) < 2**53
    reversed_ids = {f.id for f in raw(encode_mvt({"b": gdf.iloc[::-1]}, TILE)).layers[0].features}
    assert reversed_ids == set(ids)  # the id belongs to the label, not to the row position


def test_integer_index_is_the_feature_id():
    gdf = frame([shapely.Point(1, 1), shapely.Point(2, 2)])
    gdf.index = [70001, 5]
    assert [f.id for f in raw(encode_mvt({"p": gdf}, TILE)).layers[0].features] == [70001, 5]


def test_geometry_collection_keeps_highest_dimension_and_nulls_are_skipped():
    gc = shapely.GeometryCollection([square(0, 0, 100, 100), shapely.Point(5, 5), square(200, 200, 300, 300)])
    gdf = frame([gc, None, shapely.Point(9, 9), shapely.Polygon()], v=[1, 2, 3, 4])
    feats = decode(encode_mvt({"g": gdf}, TILE))["g"]["features"]
    assert [(f["properties"]["v"], f["geometry"]["type"]) for f in feats] == [(3, "Point"), (1, "MultiPolygon")]


def test_repeated_points_removed_and_closing_point_not_repeated():
    ring = [(0, 0), (1000, 0.2), (1000, 0.4), (1000, 1000), (0, 1000), (0.1, 0.1)]
    gdf = frame([shapely.Polygon(ring)])
    geom = list(raw(encode_mvt({"p": gdf}, TILE, simplify=False)).layers[0].features[0].geometry)
    assert geom[3] == 2 | (3 << 3)  # 4 distinct corners: MoveTo + LineTo(3) + ClosePath
    assert len(geom) == 11


def test_tiny_features_dropped_at_low_zoom_but_kept_when_not_simplifying():
    tiny = frame([square(100, 100, 103, 103), square(500, 500, 900, 900)])  # 3 units = 0.19 px
    assert len(raw(encode_mvt({"t": tiny}, TILE)).layers[0].features) == 1
    assert len(raw(encode_mvt({"t": tiny}, TILE, simplify=False)).layers[0].features) == 2


def test_huge_polygon_is_simplified_in_bounded_time():
    angles = np.linspace(0, 2 * np.pi, 1_000_000, endpoint=False)
    r = 1500 + 30 * np.sin(angles * 5000)
    poly = shapely.Polygon(np.column_stack([2048 + r * np.cos(angles), 2048 + r * np.sin(angles)]))
    gdf = frame([poly])
    start = time.perf_counter()
    data = encode_mvt({"big": gdf}, TILE)
    elapsed = time.perf_counter() - start
    assert elapsed < 10
    n = len(raw(data).layers[0].features[0].geometry)
    assert 0 < n < 200_000 and len(data) < 500_000


def test_max_bytes_caps_the_tile(caplog):
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 4000, (5000, 2))
    gdf = frame([square(x, y, x + 40 + i % 50, y + 40) for i, (x, y) in enumerate(xy)])
    full = encode_mvt({"b": gdf}, TILE, max_bytes=None)
    assert len(full) > 60_000
    with caplog.at_level(logging.INFO, logger="civicmap.tiles.vector"):
        capped = encode_mvt({"b": gdf}, TILE, max_bytes=20_000)
    assert len(capped) <= 20_000
    assert "over max_bytes=20000" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="civicmap.tiles.vector"):
        dropped = encode_mvt({"b": gdf}, TILE, max_bytes=20_000, simplify=False)
    assert len(dropped) <= 20_000
    assert "dropped the" in caplog.text
    kept = raw(dropped).layers[0].features
    assert 0 < len(kept) < 5000
    areas = shapely.area(gdf.geometry.to_numpy())
    kept_ids = np.array([f.id for f in kept])
    assert areas[kept_ids].min() >= np.delete(areas, kept_ids).max()  # the largest ones stay


def test_z0_whole_world_from_lonlat():
    world = gpd.GeoDataFrame(
        {"name": ["antarctica", "africa", "pacific"]},
        geometry=[shapely.box(-180, -90, 180, -60), shapely.box(-18, -35, 52, 37), shapely.Point(-179.9, 0)],
        crs=4326,
    )
    data = decode(encode_mvt({"w": world}, TileXYZ(0, 0, 0)))
    feats = {f["properties"]["name"]: f["geometry"] for f in data["w"]["features"]}
    ant = np.array(feats["antarctica"]["coordinates"][0])
    assert ant[:, 1].max() == 4096 and ant[:, 0].min() == 0 and ant[:, 0].max() == 4096  # clamped at ±85.05°
    africa = np.array(feats["africa"]["coordinates"][0])
    assert africa[:, 0].min() == round((180 - 18) / 360 * 4096)
    assert feats["pacific"]["coordinates"] == [1, 2048]


def test_antimeridian_adjacent_data_stays_on_its_side():
    gdf = gpd.GeoDataFrame({"n": [1, 2]}, geometry=[shapely.Point(179.99, 10), shapely.Point(-179.99, 10)], crs=4326)
    east = decode(encode_mvt({"p": gdf}, TileXYZ(2, 3, 1)))["p"]["features"]
    west = decode(encode_mvt({"p": gdf}, TileXYZ(2, 0, 1)))["p"]["features"]
    assert [f["properties"]["n"] for f in east] == [1] and east[0]["geometry"]["coordinates"][0] == 4096
    assert [f["properties"]["n"] for f in west] == [2] and west[0]["geometry"]["coordinates"][0] == 0


def test_other_crs_gives_same_tile_as_3857():
    gdf = frame([square(500, 500, 3000, 2500), shapely.LineString([(0, 4000), (4000, 100)])], v=[1, 2])
    utm = gdf.to_crs(32737)
    a = decode(encode_mvt({"x": gdf}, TILE, simplify=False))["x"]["features"]
    b = decode(encode_mvt({"x": utm}, TILE, simplify=False))["x"]["features"]
    for fa, fb in zip(a, b, strict=True):
        ca = np.array(shapely.get_coordinates(shapely.geometry.shape(fa["geometry"])))
        cb = np.array(shapely.get_coordinates(shapely.geometry.shape(fb["geometry"])))
        assert ca.shape == cb.shape and np.abs(ca - cb).max() <= 1


def test_bad_inputs():
    gdf = frame([shapely.Point(1, 1)])
    with pytest.raises(CRSError, match="no CRS"):
        encode_mvt({"p": gdf.set_crs(None, allow_override=True)}, TILE)
    with pytest.raises(InputError, match="GeoDataFrame"):
        encode_mvt({"p": pd.DataFrame({"a": [1]})}, TILE)
    with pytest.raises(NotFoundError):
        encode_mvt({"p": gdf}, TileXYZ(3, 8, 0))
    with pytest.raises(InputError, match="extent"):
        encode_mvt({"p": gdf}, TILE, extent=10)
    with pytest.raises(InputError, match="simplify"):
        encode_mvt({"p": gdf}, TILE, simplify=-1)


def test_fixture_semantics_point_and_linestring():
    # mvt-fixtures 002/003 style: a point at (25, 17) -> [MoveTo(1), 50, 34]; linestring
    # (2,2) (2,10) (10,10) -> [9, 4, 4, LineTo(2)=18, 0, 16, 16, 0] (MVT 2.1 §4.3.5 examples)
    pts = raw(encode_mvt({"p": frame([shapely.Point(25, 17)])}, TILE)).layers[0].features[0]
    assert list(pts.geometry) == [9, 50, 34] and pts.type == vector_tile_pb2.tile.Point
    line = frame([shapely.LineString([(2, 2), (2, 10), (10, 10)])])
    feat = raw(encode_mvt({"l": line}, TILE, simplify=False)).layers[0].features[0]
    assert list(feat.geometry) == [9, 4, 4, 18, 0, 16, 16, 0] and feat.type == vector_tile_pb2.tile.LineString


def test_varints_match_protobuf_at_every_width():
    """Our vectorised varints (1 to 10 bytes, sizes of 0 skipped) equal protobuf's own packed encoding."""
    from civicmap.tiles._mvt_wire import encode_varints, varint_sizes

    edges = [0, 1, 127, 128, 16383, 16384, 2**21 - 1, 2**21, 2**35, 2**53 - 1, 2**56, 2**63 - 1, 2**63, 2**64 - 1]
    rng = np.random.default_rng(5)
    values = np.array(edges + rng.integers(0, 2**62, 50, dtype=np.uint64).tolist(), dtype=np.uint64)
    expected = b"".join(vector_tile_pb2.tile.value(uint_value=v).SerializeToString()[1:] for v in values.tolist())
    payload = encode_varints(values)
    assert payload == expected and len(payload) == int(varint_sizes(values).sum())
    assert varint_sizes(values[: len(edges)]).tolist() == [1, 1, 1, 2, 2, 3, 3, 4, 6, 8, 9, 9, 10, 10]
    sizes = varint_sizes(values)
    sizes[::2] = 0  # left out
    assert encode_varints(values, sizes) == encode_varints(values[1::2])
    small = np.array([5, 0, 127], dtype=np.uint64)
    assert encode_varints(small, np.array([1, 0, 1])) == b"\x05\x7f"
