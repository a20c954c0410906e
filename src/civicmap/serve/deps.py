"""Per-app state of the map service: settings, workspace store, layer catalogue and tile cache.

:class:`LayerCatalog` is the only door to the store's layers: it lists the public ones
(``meta["public"] is not False``, vector or raster), loads each vector layer ONCE per catalogue
version into memory (EPSG:3857 with a spatial index for tiles; EPSG:4326, rounded to 6 decimals
and oriented counter-clockwise for GeoJSON; private fields dropped) and keeps rasters' COGs open
(validated once when loaded, then a pool of handles so that threads never share one).
A layer that is private or absent gives the same :class:`NotFoundError`.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from fastapi import Depends, Request
from rasterio.io import DatasetReader

from civicmap.crs import WGS84, to_crs
from civicmap.errors import CivicmapError, NotFoundError, StoreError
from civicmap.serve.settings import ServiceSettings
from civicmap.sources.raster import open_raster
from civicmap.store import LayerInfo, Store
from civicmap.tiles.cache import TileCache
from civicmap.tiles.grid import ORIGIN_SHIFT_M
from civicmap.tiles.raster import TileStyle
from civicmap.tiles.styles import legend_for, raster_style
from civicmap.tiles.vector import MVTSource

__all__ = [
    "GEOJSON_DECIMALS",
    "VECTOR_MAXZOOM",
    "LayerCatalog",
    "RasterLayer",
    "RasterProfile",
    "ServiceState",
    "State",
    "VectorLayer",
    "get_state",
    "is_public",
    "legend_for",
    "raster_profile",
    "run_bounded",
]

log = logging.getLogger(__name__)

#: Decimal places of GeoJSON coordinates (RFC 7946 §11.2: 6 decimals ~ 10 cm).
GEOJSON_DECIMALS = 6
#: Deepest zoom served for vector layers.
VECTOR_MAXZOOM = 22
#: Zoom levels served below a raster's native resolution.
RASTER_OVERZOOM = 3
T = TypeVar("T")


@dataclass(frozen=True)
class VectorLayer:
    """One public vector layer in memory: EPSG:3857 tile source and EPSG:4326 geometries (GeoJSON)."""

    info: LayerInfo
    mvt: MVTSource
    """Public columns only, geometries in EPSG:3857 with their STRtree, properties factorised."""
    ids: pd.Index
    """Feature ids (the layer's index, or positions when the index is a private field)."""
    geoms_4326: np.ndarray
    """Lon/lat geometries (for bbox predicates)."""
    tree_4326: shapely.STRtree
    geojson_geoms: np.ndarray
    """Lon/lat geometries rounded to ``GEOJSON_DECIMALS``, polygon exteriors counter-clockwise."""
    properties: pd.DataFrame

    @property
    def fields(self) -> dict[str, str]:
        """Column -> "Number" / "String" / "Boolean" (TileJSON vector_layers)."""
        return self.mvt.fields


class _DatasetPool:
    """Open read-only handles of one COG, validated once; a handle is used by one thread at a time.

    At most ``max_open`` handles are open (default: the CPUs this process may use, at least 2); a thread that finds
    none free waits for one. GDAL caches decoded blocks per handle, so a few busy handles decode
    each block fewer times than one handle per request thread would, and renders beyond the
    number of cores would only queue for the CPU (measured: 2 handles on 2 cores beat 8).
    """

    def __init__(self, path: Path, *, max_open: int | None = None) -> None:
        with open_raster(path, max_pixels=None):  # the full safety checks, once
            pass
        self.path = path
        self._idle: queue.LifoQueue[DatasetReader] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(max_open or _raster_handles())
        self._closed = False

    @contextmanager
    def dataset(self) -> Iterator[DatasetReader]:
        with self._slots:
            try:
                ds = self._idle.get_nowait()
            except queue.Empty:
                ds = rasterio.open(self.path)
            try:
                yield ds
            finally:
                if self._closed:
                    ds.close()
                else:
                    self._idle.put(ds)

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _raster_handles() -> int:
    """Open handles per raster layer: the number of CPUs this process may use, at least 2."""
    return max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@dataclass(frozen=True)
class RasterLayer:
    """One public raster layer: its tile style, legend and open handles."""

    info: LayerInfo
    style: TileStyle
    legend: dict[str, Any] | None
    pool: _DatasetPool = field(repr=False)


@dataclass(frozen=True)
class RasterProfile:
    """What a raster's catalogue entry says about its tiles: formats and zoom range."""

    formats: tuple[str, ...]
    minzoom: int
    maxzoom: int


def raster_profile(info: LayerInfo) -> RasterProfile:
    """Tile formats (imagery adds JPEG) and zooms 0 .. native zoom + ``RASTER_OVERZOOM`` of a raster."""
    kind = info.meta.get("raster_kind", "other")
    formats = ("png", "jpg", "webp") if kind == "imagery" else ("png", "webp")
    width = info.meta.get("width")
    if info.bounds is None or info.bounds_wgs84 is None or not width:
        return RasterProfile(formats, 0, 18)
    res = (info.bounds.east - info.bounds.west) / float(width)
    geographic = abs(info.bounds.east) <= 360 and abs(info.bounds.north) <= 90 and "4326" in str(info.crs)
    res_m = res * 111_320 if geographic else res
    lat = math.radians((info.bounds_wgs84.south + info.bounds_wgs84.north) / 2)
    native = math.log2(2 * ORIGIN_SHIFT_M * math.cos(lat) / (256 * max(res_m, 1e-9)))
    return RasterProfile(formats, 0, int(min(24, max(0, math.ceil(native) + RASTER_OVERZOOM))))


def is_public(info: LayerInfo) -> bool:
    """Whether a layer may be served: vector or raster, and not marked ``public: False``."""
    return info.kind in ("vector", "raster") and info.meta.get("public", True) is not False


def _round_orient(geoms: np.ndarray) -> np.ndarray:
    rounded = shapely.transform(geoms, lambda c: np.round(c, GEOJSON_DECIMALS))
    return shapely.orient_polygons(rounded, exterior_cw=False)


def load_vector(info: LayerInfo, frame: gpd.GeoDataFrame) -> VectorLayer:
    """Prepare a stored vector frame (any CRS) for serving; see :class:`VectorLayer`."""
    frame = info.public_part(frame)
    geoms_4326 = np.asarray(to_crs(frame[[frame.geometry.name]], WGS84, name=info.name).geometry.array)
    return VectorLayer(
        info=info,
        mvt=MVTSource(frame, name=info.name),
        ids=frame.index,
        geoms_4326=geoms_4326,
        tree_4326=shapely.STRtree(geoms_4326),
        geojson_geoms=_round_orient(geoms_4326),
        properties=pd.DataFrame(frame.drop(columns=frame.geometry.name)),
    )


def load_raster(info: LayerInfo) -> RasterLayer:
    """Open and check a stored COG once (the web COG when there is one), and choose how its tiles look."""
    pool = _DatasetPool(info.tile_path)
    # style and legend (value range) from the analysis COG: the same colours whichever file tiles come from
    analysis = Path(info.path or pool.path)  # tile_path has checked that info.path is set
    with rasterio.open(analysis) if analysis != pool.path else pool.dataset() as ds:
        style, legend = raster_style(str(info.meta.get("raster_kind", "other")), ds)
    return RasterLayer(info, style, legend, pool)


class LayerCatalog:
    """The store's public layers, each loaded once per version (thread-safe)."""

    def __init__(
        self, store: Store, *, ttl_s: float = 2.0, on_new_version: Callable[[str, int], object] | None = None
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._on_new_version = on_new_version
        self._infos: dict[str, LayerInfo] = {}
        self._read_at = -math.inf
        self._loaded: dict[str, VectorLayer | RasterLayer] = {}
        self._lock = threading.Lock()
        self._layer_locks: dict[str, threading.Lock] = {}

    def infos(self) -> dict[str, LayerInfo]:
        """Public layers by name (the store's catalogue is re-read at most every ``ttl_s`` seconds)."""
        if time.monotonic() - self._read_at > self.ttl_s:
            try:
                infos = {i.name: i for i in self.store.layers() if is_public(i)}
            except CivicmapError:
                raise
            except Exception as exc:
                raise StoreError(f"cannot read the layer catalogue of {self.store.url}: {exc}") from exc
            with self._lock:
                self._infos, self._read_at = infos, time.monotonic()
        return self._infos

    def info(self, name: str) -> LayerInfo:
        """One public layer's catalogue entry; private and absent layers are both not found."""
        info = self.infos().get(name)
        if info is None:
            raise NotFoundError(f"no layer {name!r}; GET /layers lists the layers there are")
        return info

    def vector(self, name: str) -> VectorLayer:
        """The in-memory vector layer ``name`` (loaded on first use and after each new version)."""
        layer = self._get(name, "vector")
        assert isinstance(layer, VectorLayer)
        return layer

    def raster(self, name: str) -> RasterLayer:
        """The open raster layer ``name``."""
        layer = self._get(name, "raster")
        assert isinstance(layer, RasterLayer)
        return layer

    def _get(self, name: str, kind: str) -> VectorLayer | RasterLayer:
        info = self.info(name)
        if info.kind != kind:
            raise NotFoundError(f"layer {name!r} is a {info.kind} layer, not a {kind} layer")
        with self._lock:
            lock = self._layer_locks.setdefault(name, threading.Lock())
        with lock:  # one load per layer and version, even under concurrent requests
            current = self._loaded.get(name)
            if current is not None and current.info.version == info.version:
                return current
            layer = self._load(info)
            self._loaded[name] = layer
        if isinstance(current, RasterLayer):
            current.pool.close()
        if current is not None and self._on_new_version is not None:
            self._on_new_version(name, info.version)
        return layer

    def _load(self, info: LayerInfo) -> VectorLayer | RasterLayer:
        started = time.perf_counter()
        try:
            if info.kind == "raster":
                layer: VectorLayer | RasterLayer = load_raster(info)
            else:
                layer = load_vector(info, self.store.read_layer(info.name))
        except Exception as exc:
            raise StoreError(f"layer {info.name!r} v{info.version} could not be loaded from the store: {exc}") from exc
        log.info(
            "loaded %s layer %s v%d in %.0f ms",
            info.kind,
            info.name,
            info.version,
            1e3 * (time.perf_counter() - started),
        )
        return layer

    def close(self) -> None:
        """Close open raster handles."""
        for layer in self._loaded.values():
            if isinstance(layer, RasterLayer):
                layer.pool.close()
        self._loaded.clear()


@dataclass
class ServiceState:
    """Everything a request needs: settings, the workspace's name and store, the catalogue, the cache."""

    settings: ServiceSettings
    name: str
    catalog: LayerCatalog
    cache: TileCache
    started_at: float = field(default_factory=time.time)


def get_state(request: Request) -> ServiceState:
    """FastAPI dependency: the app's :class:`ServiceState`."""
    state: ServiceState = request.app.state.civicmap
    return state


#: Route parameter type of the app state.
State = Annotated[ServiceState, Depends(get_state)]


async def run_bounded(state: ServiceState, func: Callable[..., T], *args: Any) -> T:
    """Run blocking ``func(*args)`` in a worker thread, at most ``request_timeout_s`` seconds.

    On timeout raises :class:`TimeoutError` (HTTP 503); the thread finishes in the background
    (threads cannot be killed) and a tile it completes is still cached.
    """
    timeout = state.settings.request_timeout_s
    try:
        with anyio.fail_after(timeout):
            return await anyio.to_thread.run_sync(lambda: func(*args), abandon_on_cancel=True)
    except TimeoutError as exc:
        raise TimeoutError(f"request took longer than {timeout} s") from exc
