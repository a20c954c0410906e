"""TileCache: LRU eviction by bytes, invalidation by bbox and version, failed renders never cached, disk."""

import pytest

from civicmap.errors import InputError
from civicmap.tiles.cache import ENTRY_OVERHEAD_BYTES, TileCache, TileKey
from civicmap.tiles.grid import tile_bounds
from civicmap.types import TileXYZ


def key(x, y=0, *, layer="buildings", version=1, z=2, fmt="mvt"):
    return TileKey(layer, version, z, x, y, fmt)


def test_lru_evicts_least_recently_used_by_bytes():
    cost = 1000 + ENTRY_OVERHEAD_BYTES
    cache = TileCache(3 * cost)
    for x in range(3):
        cache.put(key(x), b"a" * 1000)
    assert cache.get(key(0)) is not None  # 0 is now the most recent; 1 is the least
    cache.put(key(3), b"b" * 1000)
    assert key(1) not in cache and key(0) in cache and key(2) in cache and key(3) in cache
    assert cache.stats.bytes == 3 * cost <= cache.max_bytes
    cache.put(key(4), b"c" * 2000)  # a big tile pushes out the two least recent
    assert cache.stats.bytes <= cache.max_bytes and len(cache) == 2 and key(3) in cache and key(4) in cache
    cache.put(key(5), b"x" * (4 * cost))  # larger than the whole cache: not stored, nothing evicted
    assert key(5) not in cache and len(cache) == 2


def test_empty_tiles_are_cached_and_counted():
    cache = TileCache(10 * ENTRY_OVERHEAD_BYTES)
    assert cache.get_or_render(key(0), lambda: None) == b""
    assert cache.get(key(0)) == b""
    assert cache.stats.hits == 1 and cache.stats.bytes == ENTRY_OVERHEAD_BYTES


def test_failed_renders_are_not_cached():
    cache = TileCache(1_000_000)
    calls = []

    def failing():
        calls.append(1)
        raise RuntimeError("GDAL read failed half-way")

    for _ in range(2):
        with pytest.raises(RuntimeError):
            cache.get_or_render(key(0), failing)
    assert len(calls) == 2 and key(0) not in cache and len(cache) == 0
    assert cache.get_or_render(key(0), lambda: b"ok") == b"ok"
    assert cache.get_or_render(key(0), failing) == b"ok"  # now cached: not rendered again


def test_invalidate_by_bbox_drops_only_intersecting_tiles():
    cache = TileCache(1_000_000)
    tiles = [(x, y) for x in range(4) for y in range(4)]  # every z2 tile
    for x, y in tiles:
        cache.put(key(x, y), b"t")
        cache.put(key(x, y, layer="roads"), b"r")
    w, s, e, n = tile_bounds(TileXYZ(2, 1, 1))
    inner = (w + 1000, s + 1000, e - 1000, n - 1000)  # inside tile (1, 1) only
    assert cache.invalidate("buildings", inner) == 1
    assert key(1, 1) not in cache and key(1, 2) in cache and key(1, 1, layer="roads") in cache
    west_half = (-20037508.34, -20037508.34, -1.0, 20037508.34)
    assert cache.invalidate("buildings", west_half) == 7  # x in 0..1, minus the one already gone
    assert all((key(x, y) in cache) == (x >= 2) for x, y in tiles if (x, y) != (1, 1))
    assert cache.invalidate("buildings") == 8
    assert len(cache) == 16  # roads untouched


def test_invalidating_a_layer_drops_tiles_that_combine_it():
    cache = TileCache(1_000_000)
    cache.put(key(0, layer="buildings,roads", version="3,1"), b"br")
    cache.put(key(0, layer="roads"), b"r")
    assert cache.invalidate("buildings") == 1
    assert len(cache) == 1


def test_new_version_keys_miss_and_prune_frees_old_versions():
    cache = TileCache(1_000_000)
    cache.put(key(0, version=1), b"old")
    assert cache.get(key(0, version=2)) is None
    cache.put(key(0, version=2), b"new")
    assert cache.prune("buildings", 2) == 1
    assert cache.get(key(0, version=2)) == b"new" and key(0, version=1) not in cache


def test_disk_cache_survives_a_new_cache_and_is_invalidated(tmp_path):
    first = TileCache(1_000_000, directory=tmp_path)
    first.put(key(1, 1), b"tile")
    first.put(key(3, 3), b"")
    second = TileCache(1_000_000, directory=tmp_path)  # e.g. after a restart
    assert second.get(key(1, 1)) == b"tile" and second.get(key(3, 3)) == b""
    w, s, e, n = tile_bounds(TileXYZ(2, 1, 1))
    assert second.invalidate("buildings", (w + 1, s + 1, e - 1, n - 1)) == 2  # memory + disk
    assert TileCache(1_000_000, directory=tmp_path).get(key(1, 1)) is None
    second.put(key(0, version=5), b"v5")
    assert second.prune("buildings", 5) >= 1
    assert TileCache(1_000, directory=tmp_path).get(key(3, 3)) is None
    assert TileCache(1_000, directory=tmp_path).get(key(0, version=5)) == b"v5"
    assert not list(tmp_path.rglob(".tmp-*"))


def test_bad_arguments():
    with pytest.raises(InputError, match="max_bytes"):
        TileCache(-1)
    with pytest.raises(InputError, match="bytes"):
        TileCache().put(key(0), "text")
