"""The store interface: what every backend (GeoPackage, PostGIS) offers the workspace."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import geopandas as gpd
import pandas as pd

from civicmap.types import BBox, Provenance

__all__ = ["LayerInfo", "LayerKind", "Store"]

LayerKind = Literal["vector", "raster", "table"]


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
