"""How raster tiles look: the style and legend of a raster by its kind (DEM, hazard, imagery, ...).

Shared by the map service and the tile exporter so that served and exported tiles are identical.
Pure computation on an open rasterio dataset; colours come from :mod:`civicmap.tiles.colormaps`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rasterio.io import DatasetReader

from civicmap.tiles.colormaps import ELEVATION, FLOOD_DEPTH_M, GREYS, HAZARD_CLASSES, Colormap
from civicmap.tiles.raster import TileStyle

__all__ = ["legend_for", "raster_style", "value_range"]


def _colour_hex(rgba: tuple[int, int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgba[:3])


def legend_for(cmap: Colormap | None, value_range: tuple[float, float] | None = None) -> dict[str, Any] | None:
    """A JSON legend: classes (value, colour, label) or ramp stops in data units."""
    if cmap is None:
        return None
    if hasattr(cmap, "classes"):
        classes = [{"value": v, "color": _colour_hex(c), "label": label} for v, c, label in cmap.classes if c[3]]
        return {"type": "classes", "colormap": cmap.name, "classes": classes}
    lo, hi = value_range or (0.0, 255.0)
    scale = (hi - lo) / 255.0 if value_range else 1.0
    stops = [{"value": round(lo + v * scale if value_range else v, 6), "color": _colour_hex(c)} for v, c in cmap.stops]
    return {"type": "ramp", "colormap": cmap.name, "stops": stops}


def value_range(ds: DatasetReader) -> tuple[float, float]:
    """Min and max of band 1 from its coarsest overview (cheap), ignoring nodata."""
    factor = max([1, *ds.overviews(1)])
    shape = (max(1, ds.height // factor), max(1, ds.width // factor))
    data = ds.read(1, out_shape=shape, masked=True).astype("float64").filled(np.nan)
    finite = data[np.isfinite(data)]
    if not finite.size:
        return (0.0, 1.0)
    lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi if hi > lo else lo + 1.0)


def raster_style(kind: str, ds: DatasetReader) -> tuple[TileStyle, dict[str, Any] | None]:
    """Tile style and legend of a raster by its ``raster_kind``."""
    if kind == "imagery" or (ds.count >= 3 and ds.dtypes[0] == "uint8"):
        rescale = None if ds.dtypes[0] == "uint8" else value_range(ds)
        return TileStyle(rescale=rescale, resampling="bilinear"), None
    if kind == "hazard" and np.issubdtype(np.dtype(ds.dtypes[0]), np.integer):
        return TileStyle(colormap=HAZARD_CLASSES), legend_for(HAZARD_CLASSES)
    if kind == "hazard":
        return TileStyle(colormap=FLOOD_DEPTH_M, resampling="bilinear"), legend_for(FLOOD_DEPTH_M)
    cmap = ELEVATION if kind == "dem" else GREYS
    data_range = value_range(ds)
    style = TileStyle(colormap=cmap, rescale=data_range, resampling="bilinear")
    return style, legend_for(cmap, data_range)
