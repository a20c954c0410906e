"""Small vectorised overlay tests shared by the layers."""

from __future__ import annotations

import numpy as np
import shapely

__all__ = ["intersects_any"]


def intersects_any(geoms: np.ndarray, zones: np.ndarray) -> np.ndarray:
    """Which ``geoms`` intersect (or touch) any of ``zones``: a boolean array, one STRtree query, same CRS."""
    out = np.zeros(len(geoms), dtype=bool)
    if len(zones) and len(geoms):
        hit, _ = shapely.STRtree(zones).query(geoms, predicate="intersects")
        out[hit] = True
    return out
