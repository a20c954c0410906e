"""Any vector file GDAL reads (GeoPackage, GeoJSON, Shapefile, FlatGeobuf, KML, ...) into a GeoDataFrame.

The CRS is checked on entry: a file without one is refused (with the fix), a GeoJSON
``crs`` member naming another CRS is honoured by GDAL and kept (never silently dropped),
and data said to be in degrees must look like longitude/latitude.
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import pyogrio
from pyproj import CRS

from civicmap.crs import check_lonlat, require_crs
from civicmap.errors import InputError, NotFoundError

__all__ = ["read_vector"]

log = logging.getLogger(__name__)


def read_vector(path: str | Path, *, layer: str | int | None = None, allow_empty: bool = False) -> gpd.GeoDataFrame:
    """Read one layer of a vector file, in the file's own CRS.

    Raises :class:`NotFoundError` for a missing file or layer, :class:`InputError` for an
    unreadable or (unless ``allow_empty``) featureless file, and :class:`~civicmap.errors.CRSError`
    for a layer without CRS or with coordinates impossible in its geographic CRS.
    """
    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"no vector file at {p}")
    if p.is_file() and p.stat().st_size == 0:
        raise InputError(f"{p} is empty (0 bytes); expected a vector file such as GeoJSON or GeoPackage")
    try:
        layers = pyogrio.list_layers(p)
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        raise InputError(f"{p} cannot be read as a vector file: {exc}") from exc
    if layer is None and len(layers) > 1:
        log.info("%s has %d layers; reading the first, %r", p.name, len(layers), layers[0][0])
    if isinstance(layer, str) and layer not in set(layers[:, 0]):
        raise NotFoundError(f"{p} has no layer {layer!r}; layers: {', '.join(layers[:, 0])}")
    try:
        gdf = pyogrio.read_dataframe(p, layer=layer)
    except Exception as exc:
        raise InputError(f"{p} cannot be read as a vector file: {exc}") from exc
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise InputError(f"{p} has no geometry column; expected a spatial layer")
    if gdf.empty and not allow_empty:
        raise InputError(f"{p} holds no features")
    crs = require_crs(gdf, name=p.name)
    if CRS(crs).is_geographic:
        located = ~gdf.geometry.isna().to_numpy() & ~gdf.geometry.is_empty.to_numpy()
        check_lonlat(gdf[located], name=p.name)
    return gdf
