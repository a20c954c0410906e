"""A tile cache: memory LRU bounded by bytes, with an optional folder on disk behind it.

Keys are :class:`TileKey` ``(layer, version, z, x, y, format)``. ``version`` is the layer's
catalogue version (``LayerInfo.version``; a string such as ``"3,1"`` for several layers in one
tile), so a rewritten layer is served from new keys and its old tiles become unreachable; call
:meth:`TileCache.prune` to free them. :meth:`TileCache.invalidate` drops a layer's tiles that
intersect a box in EPSG:3857 metres (an edit), or all of them. A ``layer`` of several names
joined by commas (one MVT holding several layers) is invalidated by any of them.

Only complete renders are stored: :meth:`TileCache.get_or_render` stores what ``render``
returns and nothing when it raises. ``b""`` is a valid value: an empty tile (HTTP 204).

The memory part costs ``len(data) + ENTRY_OVERHEAD_BYTES`` per tile, evicting the least
recently used tiles past ``max_bytes``. The disk part (``directory/layer/v<version>/z/x/y.format``,
written atomically) is not bounded; delete the folder or prune versions to reclaim space.
Thread-safe (one lock around the memory index).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from civicmap.errors import InputError
from civicmap.tiles.grid import tile_bounds
from civicmap.types import BBox, TileXYZ

__all__ = ["ENTRY_OVERHEAD_BYTES", "CacheStats", "TileCache", "TileKey"]

log = logging.getLogger(__name__)

#: Bytes charged per cached tile on top of its data (keys, list nodes), so that many empty tiles stay bounded.
ENTRY_OVERHEAD_BYTES = 200


class TileKey(NamedTuple):
    """What identifies a rendered tile: layer name(s), layer version(s), tile address, format."""

    layer: str
    version: int | str
    z: int
    x: int
    y: int
    format: str

    @property
    def layers(self) -> tuple[str, ...]:
        """The layer names this tile is made of."""
        return tuple(self.layer.split(","))


@dataclass(frozen=True)
class CacheStats:
    """Counters of a :class:`TileCache` (memory part)."""

    hits: int
    misses: int
    tiles: int
    bytes: int
    max_bytes: int


def _intersects(key: TileKey, bbox: BBox | None) -> bool:
    if bbox is None:
        return True
    w, s, e, n = tile_bounds(TileXYZ(key.z, key.x, key.y))
    return w < bbox.east and e > bbox.west and s < bbox.north and n > bbox.south


class TileCache:
    """Memory LRU of tile bytes bounded by ``max_bytes``, optionally backed by ``directory``."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024, *, directory: str | os.PathLike[str] | None = None) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise InputError(f"max_bytes {max_bytes!r} must be a non-negative integer (0 = no memory cache)")
        self.max_bytes = max_bytes
        self.directory = Path(directory) if directory is not None else None
        self._items: OrderedDict[TileKey, bytes] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    @property
    def stats(self) -> CacheStats:
        """Hits, misses, tiles and bytes held in memory."""
        with self._lock:
            return CacheStats(self._hits, self._misses, len(self._items), self._bytes, self.max_bytes)

    # -- reading and writing ---------------------------------------------------------------
    def get(self, key: TileKey) -> bytes | None:
        """The cached bytes of ``key`` (``b""`` = empty tile), or None when not cached."""
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
                self._hits += 1
                return data
        data = self._read_disk(key)
        with self._lock:
            if data is None:
                self._misses += 1
                return None
            self._hits += 1
        self._put_memory(key, data)
        return data

    def put(self, key: TileKey, data: bytes) -> None:
        """Store a complete tile (``b""`` for an empty one)."""
        if not isinstance(data, bytes):
            raise InputError(f"tile data for {key} is {type(data).__name__}; expected bytes")
        self._put_memory(key, data)
        self._write_disk(key, data)

    def get_or_render(self, key: TileKey, render: Callable[[], bytes | None]) -> bytes:
        """Cached bytes of ``key``, else ``render()`` stored and returned (None counts as ``b""``).

        When ``render`` raises, nothing is stored and the exception propagates.
        """
        data = self.get(key)
        if data is None:
            data = render() or b""
            self.put(key, data)
        return data

    # -- dropping ------------------------------------------------------------------------
    def invalidate(self, layer: str, bbox_3857: BBox | tuple[float, float, float, float] | None = None) -> int:
        """Drop every version's tiles of ``layer`` intersecting ``bbox_3857`` (EPSG:3857 metres; None = all).

        Returns how many tiles were dropped from memory and disk.
        """
        box = BBox(*map(float, bbox_3857)) if bbox_3857 is not None else None
        return self._drop(lambda key: layer in key.layers and _intersects(key, box), layer, box)

    def prune(self, layer: str, keep_version: int | str) -> int:
        """Drop the tiles of ``layer`` made from any other version than ``keep_version``."""
        return self._drop(
            lambda key: layer in key.layers and str(key.version) != str(keep_version), layer, None, keep_version
        )

    def clear(self) -> None:
        """Empty the memory part (the disk part is left alone)."""
        with self._lock:
            self._items.clear()
            self._bytes = 0

    # -- internals ----------------------------------------------------------------------
    def _put_memory(self, key: TileKey, data: bytes) -> None:
        cost = len(data) + ENTRY_OVERHEAD_BYTES
        if cost > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old) + ENTRY_OVERHEAD_BYTES
            self._items[key] = data
            self._bytes += cost
            while self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted) + ENTRY_OVERHEAD_BYTES

    def _drop(
        self, match: Callable[[TileKey], bool], layer: str, box: BBox | None, keep_version: int | str | None = None
    ) -> int:
        with self._lock:
            gone = [k for k in self._items if match(k)]
            for key in gone:
                self._bytes -= len(self._items.pop(key)) + ENTRY_OVERHEAD_BYTES
        return len(gone) + self._drop_disk(layer, box, keep_version)

    def _path(self, key: TileKey) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / key.layer / f"v{key.version}" / str(key.z) / str(key.x) / f"{key.y}.{key.format}"

    def _read_disk(self, key: TileKey) -> bytes | None:
        path = self._path(key)
        try:
            return path.read_bytes() if path is not None else None
        except FileNotFoundError:
            return None

    def _write_disk(self, key: TileKey, data: bytes) -> None:
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _drop_disk(self, layer: str, box: BBox | None, keep_version: int | str | None) -> int:
        if self.directory is None or not self.directory.is_dir():
            return 0
        dropped = 0
        for layer_dir in self.directory.iterdir():
            if not layer_dir.is_dir() or layer not in layer_dir.name.split(","):
                continue
            for version_dir in layer_dir.iterdir():
                if keep_version is not None:
                    if version_dir.name != f"v{keep_version}":
                        dropped += sum(1 for _ in version_dir.rglob("*.*"))
                        shutil.rmtree(version_dir, ignore_errors=True)
                    continue
                for path in version_dir.glob("*/*/*.*"):
                    y, _, fmt = path.name.partition(".")
                    key = TileKey(layer, 0, int(path.parts[-3]), int(path.parts[-2]), int(y), fmt)
                    if _intersects(key, box):
                        path.unlink(missing_ok=True)
                        dropped += 1
        log.debug("dropped %d disk tiles of %s", dropped, layer)
        return dropped
