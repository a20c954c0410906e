"""The store interface: what every backend (GeoPackage, PostGIS) offers the workspace."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, Self, runtime_checkable

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from pyproj import CRS
from rasterio.warp import transform_bounds

from civicmap.errors import InputError, NotFoundError, StoreError
from civicmap.types import BBox, Provenance

__all__ = [
    "CATALOG_TABLE",
    "INDEX_COLUMN",
    "LayerInfo",
    "LayerKind",
    "Store",
    "StoreBase",
    "check_layer_name",
    "frame_bounds",
    "raster_entry",
    "restore_index",
    "storable_frame",
    "vector_entry",
]

log = logging.getLogger(__name__)

LayerKind = Literal["vector", "raster", "table"]

#: The catalogue table every backend keeps (one row per layer, fields of :class:`LayerInfo`).
CATALOG_TABLE = "civicmap_layers"
#: Column that holds a frame's unnamed, non-range index in storage.
INDEX_COLUMN = "civicmap_index"
_LAYER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class LayerInfo:
    """Catalogue entry of one stored layer.

    ``bounds`` are in the layer's own CRS (``crs``); ``bounds_wgs84`` in lon/lat degrees.
    ``version`` grows by one each time the layer is written (caches key on it).
    """

    name: str
    kind: LayerKind
    feature_count: int
    crs: str | None
    bounds: BBox | None
    bounds_wgs84: BBox | None
    geometry_type: str | None
    version: int
    updated_at: str
    provenance: dict[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    path: Path | None = None
    """For rasters: the Cloud Optimized GeoTIFF that holds the pixels."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Free-form extras (e.g. ``private_fields`` of a survey layer, ``raster_kind``)."""

    @property
    def private_fields(self) -> list[str]:
        """Columns of this layer that are never shown or served (``meta["private_fields"]``)."""
        return [str(c) for c in self.meta.get("private_fields") or []]

    def public_part(self, frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """``frame`` (this layer as read) without its private fields; a private index becomes positions."""
        hidden = set(self.private_fields)
        if not hidden:
            return frame
        if frame.index.name in hidden:
            frame = frame.reset_index(drop=True)
        return frame[[c for c in frame.columns if c not in hidden or c == frame.geometry.name]]

    @property
    def tile_path(self) -> Path:
        """For rasters: the COG that map tiles are cut from.

        ``meta["web_cog"]`` (a file name beside the analysis COG, or an absolute path) names the
        web-optimised copy (EPSG:3857, GoogleMapsCompatible grid and overviews) when the build
        wrote one and it exists; otherwise the analysis COG itself (workspace CRS).
        """
        if self.path is None:
            raise StoreError(f"layer {self.name!r} has no raster file in the catalogue")
        web = self.meta.get("web_cog")
        if web:
            candidate = Path(self.path).parent / str(web)
            if candidate.is_file():
                return candidate
            log.warning("raster %s: web COG %s is missing; tiles are cut from %s", self.name, candidate, self.path)
        return Path(self.path)


@runtime_checkable
class Store(Protocol):
    """Persistence of layers, rasters and tables for one workspace."""

    url: str

    def write_layer(
        self,
        name: str,
        gdf: gpd.GeoDataFrame,
        *,
        provenance: Provenance | None = None,
        problems: tuple[str, ...] = (),
        meta: dict[str, Any] | None = None,
    ) -> LayerInfo:
        """Write (replace) a vector layer; the frame must have a CRS."""
        ...

    def write_table(self, name: str, df: pd.DataFrame, *, provenance: Provenance | None = None) -> LayerInfo:
        """Write (replace) a table without geometry."""
        ...

    def raster_path(self, name: str) -> Path:
        """Where the store wants the COG of raster ``name`` written."""
        ...

    def register_raster(
        self,
        name: str,
        *,
        provenance: Provenance | None = None,
        problems: tuple[str, ...] = (),
        meta: dict[str, Any] | None = None,
    ) -> LayerInfo:
        """Record the raster written at :meth:`raster_path` in the catalogue."""
        ...

    def read_layer(self, name: str, *, bbox: BBox | None = None, columns: list[str] | None = None) -> gpd.GeoDataFrame:
        """Read a vector layer (``bbox`` in the layer's CRS)."""
        ...

    def read_table(self, name: str) -> pd.DataFrame:
        """Read a table."""
        ...

    def layers(self) -> list[LayerInfo]:
        """Every layer in the catalogue, sorted by name."""
        ...

    def layer_info(self, name: str) -> LayerInfo:
        """One catalogue entry; :class:`~civicmap.errors.NotFoundError` if absent."""
        ...

    def close(self) -> None:
        """Release files and connections."""
        ...


# -- shared by the backends ------------------------------------------------------------
class StoreBase:
    """What every backend shares: use as a context manager; ``close`` releases what it holds; raster files."""

    raster_dir: Path

    def raster_path(self, name: str) -> Path:
        """Where the COG of raster ``name`` belongs: ``<raster_dir>/<name>.tif``."""
        check_layer_name(name)
        self.raster_dir.mkdir(parents=True, exist_ok=True)
        return self.raster_dir / f"{name}.tif"

    def _raster_entry(self, name: str, meta: dict[str, Any] | None) -> dict[str, Any]:
        """The catalogue entry of the COG written at :meth:`raster_path` (NotFoundError when it is not there)."""
        path = self.raster_path(name)
        if not path.is_file():
            raise NotFoundError(f"raster {name!r}: no file at {path}; write it before registering")
        return raster_entry(path, meta)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing is held open between calls here; backends that hold something override this."""


def check_layer_name(name: str, *, what: str = "layer name") -> None:
    """Refuse names that are not safe as table/file names in every backend.

    Lower-case ASCII letters, digits and ``_``, starting with a letter, at most 63 characters
    (PostgreSQL's identifier limit); the catalogue's own name is reserved.
    """
    if not isinstance(name, str) or not _LAYER_NAME.match(name) or name == CATALOG_TABLE:
        raise InputError(
            f"{what} {name!r} must be lower-case letters, digits and _ (at most 63), starting with a letter"
            + (f", and not {CATALOG_TABLE!r}" if name == CATALOG_TABLE else "")
        )


def frame_bounds(gdf: gpd.GeoDataFrame) -> BBox | None:
    """Bounds of the frame's geometries in its own CRS, or None if it has no finite extent."""
    b = gdf.geometry.total_bounds
    return BBox(*map(float, b)) if np.isfinite(b).all() else None


def vector_entry(gdf: gpd.GeoDataFrame, meta: dict[str, Any]) -> dict[str, Any]:
    """Catalogue fields of a vector layer: count, CRS, bounds (own CRS and lon/lat), geometry type."""
    crs = CRS.from_user_input(gdf.crs)
    bounds = frame_bounds(gdf) if len(gdf) else None
    bounds84 = frame_bounds(gdf.to_crs(4326)) if bounds else None
    types = gdf.geom_type.dropna().unique()
    return dict(
        kind="vector",
        feature_count=len(gdf),
        crs=crs.to_string(),
        bounds=bounds,
        bounds_wgs84=bounds84,
        geometry_type=types[0] if len(types) == 1 else ("Geometry" if len(types) else None),
        meta=meta,
    )


def raster_entry(path: Path, meta: dict[str, Any] | None) -> dict[str, Any]:
    """Catalogue fields of the raster file at ``path``: pixel count, CRS, bounds, size and dtype."""
    with rasterio.open(path) as src:
        bounds = BBox(*src.bounds)
        crs = CRS.from_user_input(src.crs) if src.crs else None
        bounds84 = BBox(*transform_bounds(src.crs, "EPSG:4326", *src.bounds)) if src.crs else None
        size = {"width": src.width, "height": src.height, "count": src.count, "dtype": src.dtypes[0]}
    return dict(
        kind="raster",
        feature_count=size["width"] * size["height"],
        crs=crs.to_string() if crs else None,
        bounds=bounds,
        bounds_wgs84=bounds84,
        path=str(path),
        meta={**(meta or {}), **size},
    )


def _is_nested(value: object) -> bool:
    return isinstance(value, list | tuple | dict | set | np.ndarray)


def _to_json(value: object) -> object:
    if not _is_nested(value):
        return value
    return json.dumps(list(value) if isinstance(value, set | tuple | np.ndarray) else value, default=str)


def storable_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Copy with the index as a column and list/dict values as JSON text; and the index metadata.

    The metadata (``{"index": name or None, "index_is_column": bool}``) goes into the
    catalogue so :func:`restore_index` can put the index back on reading.
    """
    out = df.copy()
    index: dict[str, Any] = {"index": None}
    if not isinstance(out.index, pd.RangeIndex):
        name = str(out.index.name) if out.index.name is not None else INDEX_COLUMN
        index = {"index": name, "index_is_column": name in out.columns}
        out = out.reset_index(drop=True) if name in out.columns else out.rename_axis(name).reset_index()
    geometry = out.geometry.name if isinstance(out, gpd.GeoDataFrame) else None
    for col in out.columns:
        if col == geometry or out[col].dtype != object:
            continue
        if out[col].map(_is_nested).any():
            out[col] = out[col].map(_to_json)
    return out, index


def restore_index(df: pd.DataFrame, info: LayerInfo) -> Any:
    """Set the index stored by :func:`storable_frame` back on a frame read from storage."""
    index = info.meta.get("index")
    if index and index in df.columns:
        df = df.set_index(index, drop=not info.meta.get("index_is_column", False))
        if index == INDEX_COLUMN:
            df.index.name = None
    return df
