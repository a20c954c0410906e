import math

import morecantile
import numpy as np
import pytest

from civicmap.errors import InputError, NotFoundError
from civicmap.tiles.grid import (
    MAX_LATITUDE,
    ORIGIN_SHIFT_M,
    lonlat_to_mercator,
    tile_bounds,
    tile_bounds_lonlat,
    tile_resolution_m,
    tiles_for_bbox,
    validate_tile,
)
from civicmap.types import TileXYZ

WMQ = morecantile.tms.get("WebMercatorQuad")


def test_world_tile_bounds():
    assert tile_bounds_lonlat(TileXYZ(0, 0, 0)) == pytest.approx([-180, -85.0511287798, 180, 85.0511287798], abs=1e-9)
    assert tile_bounds(TileXYZ(0, 0, 0)) == pytest.approx(
        [-ORIGIN_SHIFT_M, -ORIGIN_SHIFT_M, ORIGIN_SHIFT_M, ORIGIN_SHIFT_M]
    )
    assert pytest.approx(20037508.342789244) == ORIGIN_SHIFT_M


def test_z1_tile_0_0_is_north_west_quadrant():
    assert tile_bounds_lonlat(TileXYZ(1, 0, 0)) == pytest.approx([-180, 0, 0, MAX_LATITUDE], abs=1e-9)
    assert tile_bounds(TileXYZ(1, 0, 0)) == pytest.approx([-ORIGIN_SHIFT_M, 0, 0, ORIGIN_SHIFT_M], abs=1e-6)
    assert tile_bounds_lonlat(TileXYZ(1, 1, 1)) == pytest.approx([0, -MAX_LATITUDE, 180, 0], abs=1e-9)


@pytest.mark.parametrize(
    "tile", [TileXYZ(5, 3, 7), TileXYZ(14, 9876, 8765), TileXYZ(18, 156000, 131000), TileXYZ(0, 0, 0)]
)
def test_bounds_match_morecantile(tile):
    assert tile_bounds(tile) == pytest.approx(tuple(WMQ.xy_bounds(tile.x, tile.y, tile.z)), abs=1e-6)
    assert tile_bounds_lonlat(tile) == pytest.approx(tuple(WMQ.bounds(tile.x, tile.y, tile.z)), abs=1e-9)


def test_round_trip_centre_of_tile_gives_the_tile():
    tile = TileXYZ(15, 19620, 16430)
    w, s, e, n = tile_bounds_lonlat(tile)
    assert list(tiles_for_bbox(((w + e) / 2, (s + n) / 2, (w + e) / 2 + 1e-9, (s + n) / 2 + 1e-9), 15)) == [tile]
    assert list(tiles_for_bbox((w, s, e, n), 15)) == [tile]  # edges shared with neighbours pull none in


def test_tiles_for_bbox_counts_and_order():
    nairobi = (36.65, -1.45, 37.10, -1.16)
    for z in (8, 12, 14):
        tiles = list(tiles_for_bbox(nairobi, z))
        xs = {t.x for t in tiles}
        ys = {t.y for t in tiles}
        assert len(tiles) == len(xs) * len(ys)
        ref = list(WMQ.tiles(*nairobi, zooms=[z]))
        assert {(t.x, t.y) for t in tiles} == {(t.x, t.y) for t in ref}
    assert [t.z for t in tiles_for_bbox(nairobi, [3, 4])] == [3, 4]


def test_tiles_for_bbox_world_and_antimeridian():
    assert len(list(tiles_for_bbox((-180, -90, 180, 90), 2))) == 16  # lat ±90 clamps, no inf
    fiji = list(tiles_for_bbox((177.0, -19.0, -178.0, -16.0), 4))  # west > east crosses 180°
    assert {t.x for t in fiji} == {0, 15}


def test_lat_90_clamps_without_inf():
    _x, y = lonlat_to_mercator([0, 0], [90, -90])
    assert np.isfinite(y).all()
    assert y == pytest.approx([ORIGIN_SHIFT_M, -ORIGIN_SHIFT_M])


def test_resolution():
    assert tile_resolution_m(0) == pytest.approx(156543.03392804097)
    assert tile_resolution_m(14, tilesize=512) == pytest.approx(156543.03392804097 / 2**15)


def test_validate_tile_accepts_ints_and_digit_strings():
    assert validate_tile("14", "9876", "8765") == TileXYZ(14, 9876, 8765)
    assert validate_tile(np.int64(3), 7, 0) == TileXYZ(3, 7, 0)


@pytest.mark.parametrize(
    "z,x,y", [(1.5, 0, 0), ("abc", 0, 0), (3, "%2e%2e%2f", 0), (3, True, 0), (3, 0, None), (3, 1.0, 0)]
)
def test_validate_tile_malformed_is_input_error(z, x, y):
    with pytest.raises(InputError, match=r"not an integer|boolean"):
        validate_tile(z, x, y)


@pytest.mark.parametrize("z,x,y", [(-1, 0, 0), (25, 0, 0), (3, 8, 0), (3, 0, -1), (0, 1, 0)])
def test_validate_tile_out_of_range_is_not_found(z, x, y):
    with pytest.raises(NotFoundError):
        validate_tile(z, x, y)
    assert not issubclass(NotFoundError, InputError)


def test_validate_tile_layer_zoom_range():
    with pytest.raises(NotFoundError, match=r"zoom range 5\.\.12"):
        validate_tile(4, 0, 0, minzoom=5, maxzoom=12)
    assert validate_tile(30, 2**30 - 1, 0, maxzoom=30).x == 2**30 - 1
    with pytest.raises(InputError):
        validate_tile(3, 0, 0, minzoom=5, maxzoom=2)


def test_bad_bbox_and_zooms():
    with pytest.raises(InputError):
        list(tiles_for_bbox((0, 0, 1), 3))
    with pytest.raises(InputError, match="zooms"):
        list(tiles_for_bbox((0, 0, 1, 1), [3, 31]))
    assert math.isclose(MAX_LATITUDE, 85.0511287798066)
