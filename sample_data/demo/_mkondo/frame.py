"""The fixed frame of Mkondo: seed, CRS, local metric frame, the river line and the zones.

Local coordinates are metres east (``x``) and north (``y``) of the south-west corner of the
2.2 km square, which is the point ``ORIGIN`` of EPSG:32737 (UTM 37S). ``v`` is the valley
coordinate: metres north of the river centreline, measured along the y axis.
"""

from __future__ import annotations

import numpy as np
from pyproj import Transformer

__all__ = [
    "CRS",
    "GRID_ANGLE",
    "ORIGIN",
    "RIVER_HALF_WIDTH_M",
    "SEED",
    "SIZE_M",
    "ZONES",
    "arterial_point",
    "river_stage_m",
    "river_y",
    "smooth_noise",
    "to_lonlat",
    "to_utm",
    "valley_v",
]

SEED = 20261123
CRS = "EPSG:32737"
ORIGIN = np.array([525400.0, 9245600.0])
SIZE_M = 2200.0
RIVER_HALF_WIDTH_M = 12.0
GRID_ANGLE = float(np.arctan(0.12))
ARTERIAL_X_AT_RIVER = 1250.0

# Bands of the valley coordinate v (metres north of the river centreline).
ZONES = {
    "north_grass": (RIVER_HALF_WIDTH_M, 35.0),
    "informal": (35.0, 380.0),
    "informal_x": (600.0, 2090.0),
    "farmland_x": (100.0, 585.0),
    "planned_north": 420.0,
    "park": (-200.0, -16.0),
    "park_x": (1330.0, 1800.0),
    "industrial": (-200.0, -45.0),
    "industrial_x": (150.0, 1200.0),
    "planned_south": -225.0,
}

_TO_LONLAT = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)


def river_y(x: np.ndarray | float) -> np.ndarray:
    """Local y (m) of the river centreline at local x (m): a meander on a gentle ENE trend."""
    x = np.asarray(x, dtype=float)
    return 640.0 + 0.12 * x + 55.0 * np.sin(2 * np.pi * (x + 150.0) / 950.0)


def valley_v(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Valley coordinate v (m): local y minus the river centreline's y at the same x."""
    return np.asarray(y, dtype=float) - river_y(x)


def river_stage_m(x: np.ndarray | float) -> np.ndarray:
    """Normal water-surface elevation of the river (m above sea level) at local x: falls eastwards."""
    return 4.5 - 1.5 * np.asarray(x, dtype=float) / SIZE_M


def arterial_point(t: np.ndarray | float) -> np.ndarray:
    """Local (x, y) of the main north-south arterial at distance ``t`` (m) north of the river crossing."""
    t = np.asarray(t, dtype=float)
    x0, y0 = ARTERIAL_X_AT_RIVER, float(river_y(ARTERIAL_X_AT_RIVER))
    return np.stack([x0 - t * np.sin(GRID_ANGLE), y0 + t * np.cos(GRID_ANGLE)], axis=-1)


def to_utm(xy: np.ndarray) -> np.ndarray:
    """Local metres -> EPSG:32737 easting/northing (m)."""
    return np.asarray(xy, dtype=float) + ORIGIN


def to_lonlat(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local metres (N, 2) -> (lon, lat) arrays in EPSG:4326 degrees."""
    utm = to_utm(xy)
    lon, lat = _TO_LONLAT.transform(utm[..., 0], utm[..., 1])
    return np.asarray(lon), np.asarray(lat)


def smooth_noise(shape: tuple[int, int], cell_px: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field in about [-1, 1]: a coarse normal grid upsampled (smoothstep-weighted) to ``shape``."""
    rows, cols = shape
    coarse = rng.standard_normal((rows // cell_px + 2, cols // cell_px + 2))
    ry = np.arange(rows) / cell_px
    rx = np.arange(cols) / cell_px
    r0, c0 = np.floor(ry).astype(int), np.floor(rx).astype(int)
    fy, fx = (ry - r0)[:, None], (rx - c0)[None, :]
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
    top = coarse[r0][:, c0] * (1 - fx) + coarse[r0][:, c0 + 1] * fx
    bottom = coarse[r0 + 1][:, c0] * (1 - fx) + coarse[r0 + 1][:, c0 + 1] * fx
    return (top * (1 - fy) + bottom * fy) / 1.5
