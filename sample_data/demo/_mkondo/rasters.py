"""The two rasters: a 5 m DEM of the whole city and a 0.5 m drone-like RGB orthophoto of its centre.

Both are written in EPSG:32737 (UTM 37S). The DEM is elevation in metres above sea level,
built as river stage + a height-above-river profile across the valley + smooth noise, with
the river channel as the lowest path and a few nodata holes. The orthophoto rasterises the
generated city (roofs, roads, water, vegetation) with noise, roof ridges and shadows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import shapely
from rasterio.features import rasterize
from rasterio.transform import Affine, from_origin

from .city import City
from .frame import (
    CRS,
    ORIGIN,
    RIVER_HALF_WIDTH_M,
    SIZE_M,
    arterial_point,
    river_stage_m,
    river_y,
    smooth_noise,
    valley_v,
)

__all__ = [
    "DEM_NODATA",
    "DEM_RES_M",
    "ORTHO_RES_M",
    "dem_array",
    "height_above_river_m",
    "ortho_window",
    "write_dem",
    "write_ortho",
]

DEM_RES_M = 5.0
DEM_MARGIN_M = 100.0
DEM_NODATA = -9999.0
ORTHO_RES_M = 0.5
_GROUND = {"planned": (122, 130, 86), "informal": (160, 128, 98), "grass": (98, 130, 68), "park": (86, 124, 62),
           "industrial": (152, 150, 142), "farmland": (118, 136, 74)}  # fmt: skip
_ROOF = {"iron_grey": (168, 172, 176), "iron_rust": (150, 92, 62), "iron_dark": (112, 114, 118),
         "iron_blue": (84, 104, 140), "tile": (172, 84, 62), "concrete": (196, 194, 186),
         "painted_green": (70, 116, 92), "painted_blue": (74, 96, 150)}  # fmt: skip
_ROAD_PX = {"primary": 5.0, "secondary": 4.0, "tertiary": 3.5, "residential": 3.0, "unclassified": 2.5,
            "service": 2.0, "track": 1.6, "footway": 0.8, "path": 0.6}  # fmt: skip
_PAVED = {"primary", "secondary", "tertiary"}


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def height_above_river_m(v: np.ndarray) -> np.ndarray:
    """Designed height (m) above the river's normal stage, by valley coordinate v (m north of the river).

    Negative inside the channel (the bed), 0.5-3 m on the northern valley floor (the informal
    area), a slope up to 9 m at v = 470 m, then a gentle rise; the southern bank is steeper.
    """
    v = np.asarray(v, dtype=float)
    hw = RIVER_HALF_WIDTH_M
    s = np.abs(v)
    north = np.where(
        v <= 380.0,
        0.5 + 2.7 * (np.clip(v - hw, 0.0, None) / (380.0 - hw)) ** 1.3,
        3.2 + 5.8 * _smoothstep(v, 380.0, 470.0) + 0.016 * np.clip(v - 470.0, 0.0, None),
    )
    south = np.where(
        s <= 40.0,
        0.5 + 1.5 * np.clip(s - hw, 0.0, None) / (40.0 - hw),
        2.0 + 8.0 * _smoothstep(s, 40.0, 210.0) + 0.014 * np.clip(s - 210.0, 0.0, None),
    )
    channel = -1.5 * (1.0 - (v / hw) ** 2)
    return np.where(s <= hw, channel, np.where(v > 0, north, south))


def _dem_grid() -> tuple[np.ndarray, np.ndarray, Affine]:
    n = int((SIZE_M + 2 * DEM_MARGIN_M) / DEM_RES_M)
    centres = -DEM_MARGIN_M + DEM_RES_M * (np.arange(n) + 0.5)
    x, y = np.meshgrid(centres, centres[::-1])
    transform = from_origin(ORIGIN[0] - DEM_MARGIN_M, ORIGIN[1] + SIZE_M + DEM_MARGIN_M, DEM_RES_M, DEM_RES_M)
    return x, y, transform


def _gullies(city: City, x: np.ndarray, y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Depth (m) of the stream's and the drain's channels below the surrounding ground."""
    pts = shapely.points(x.ravel(), y.ravel())
    d_stream = shapely.distance(pts, city.water.stream).reshape(x.shape)
    d_drain = shapely.distance(pts, city.water.drain).reshape(x.shape)
    stream = 1.3 * np.sqrt(np.clip(1.0 - v / 420.0, 0.0, 1.0)) * np.exp(-((d_stream / 9.0) ** 2))
    drain = 1.0 * np.exp(-((d_drain / 4.0) ** 2)) * (v > -225.0)
    return np.maximum(stream, drain)


def dem_array(city: City, rng: np.random.Generator) -> tuple[np.ndarray, Affine]:
    """Elevation (m, float32, nodata -9999) on a 5 m grid in EPSG:32737, and its affine transform."""
    x, y, transform = _dem_grid()
    v = valley_v(x, y)
    hand = height_above_river_m(v)
    relief = 0.25 + 2.2 * _smoothstep(hand, 3.0, 12.0)
    noise = relief * smooth_noise(x.shape, 24, rng) + 0.12 * smooth_noise(x.shape, 4, rng)
    noise *= np.abs(v) > RIVER_HALF_WIDTH_M + 2.0
    hill = 12.0 * np.exp(-((x - 1900.0) ** 2 + (y - 2050.0) ** 2) / (2 * 350.0**2))
    z = river_stage_m(x) + hand + noise + hill * _smoothstep(hand, 5.0, 12.0) - _gullies(city, x, y, v)
    z = np.round(z, 2).astype(np.float32)
    rows, cols = 25 + np.array([0, 0, 1, 1, 1, 2, 2, 3]), 22 + np.array([0, 1, 0, 1, 2, 1, 2, 2])
    z[rows, cols] = DEM_NODATA
    z[rng.integers(20, 40, 4), rng.integers(20, 40, 4)] = DEM_NODATA
    return z, transform


def write_dem(z: np.ndarray, transform: Affine, path: Path) -> None:
    """Write the DEM as a tiled, DEFLATE-compressed float32 GeoTIFF."""
    profile = {
        "driver": "GTiff", "dtype": "float32", "count": 1, "height": z.shape[0], "width": z.shape[1],
        "crs": CRS, "transform": transform, "nodata": DEM_NODATA, "tiled": True, "blockxsize": 256,
        "blockysize": 256, "compress": "DEFLATE", "predictor": 3, "zlevel": 9,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(z, 1)
        dst.set_band_description(1, "elevation (m above sea level)")
        dst.update_tags(AREA_OR_POINT="Area", SOURCE="civicmap demo generator (fictional)")


def ortho_window() -> tuple[float, float, float, float]:
    """Local (x0, y0, x1, y1) metres of the orthophoto: river, valley floor and the grid's edge."""
    x0 = float(arterial_point(0.0)[0]) - 60.0
    y0 = float(river_y(x0)) - 60.0
    return x0, y0, x0 + 500.0, y0 + 550.0


def _burn(shapes: list, out_shape: tuple[int, int], transform: Affine) -> np.ndarray:
    if not shapes:
        return np.zeros(out_shape, dtype=np.int32)
    return rasterize(shapes, out_shape=out_shape, transform=transform, fill=0, dtype="int32")


def _utm(geoms: np.ndarray) -> np.ndarray:
    return shapely.transform(np.asarray(geoms, dtype=object), lambda c: c + ORIGIN)


def _ground(city: City, shape: tuple[int, int], transform: Affine, rng: np.random.Generator) -> np.ndarray:
    kinds = list(_GROUND)
    shapes = [
        (g, kinds.index(k) + 1)
        for g, k in zip(_utm([g for g, _ in city.landuse]), [k for _, k in city.landuse], strict=True)
    ]
    cls = _burn(shapes, shape, transform)
    palette = np.array([(150, 130, 100), *(_GROUND[k] for k in kinds)], dtype=float)
    img = palette[cls]
    img *= (1.0 + 0.12 * smooth_noise(shape, 60, rng))[..., None]
    img *= (1.0 + 0.08 * smooth_noise(shape, 6, rng))[..., None]
    x0, y0, x1, y1 = ortho_window()
    trees = shapely.points(rng.uniform(x0, x1, 900), rng.uniform(y0, y1, 900))
    ok = np.isin(cls[_rowcol(trees, transform, shape)], [1, 3, 4])
    crowns = shapely.buffer(trees[ok], rng.uniform(1.8, 4.5, int(ok.sum())))
    tree_mask = _burn([(g, 1) for g in _utm(crowns)], shape, transform) > 0
    img[tree_mask] = np.array([54, 84, 42]) * (1.0 + 0.15 * smooth_noise(shape, 3, rng))[tree_mask, None]
    return img


def _rowcol(points: np.ndarray, transform: Affine, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    utm = shapely.get_coordinates(points) + ORIGIN
    col = ((utm[:, 0] - transform.c) / transform.a).astype(int).clip(0, shape[1] - 1)
    row = ((utm[:, 1] - transform.f) / transform.e).astype(int).clip(0, shape[0] - 1)
    return row, col


def _paint_network(city: City, img: np.ndarray, transform: Affine) -> None:
    shape = img.shape[:2]
    xy = city.doc.coords()
    water = [city.water.river_area, city.water.stream.buffer(1.6), city.water.drain.buffer(1.0)]
    mask = _burn([(g, k + 1) for k, g in enumerate(_utm(water))], shape, transform)
    img[mask == 3] = (172, 170, 164)
    img[mask == 1] = (92, 98, 74)
    img[mask == 2] = (84, 92, 70)
    for paved in (False, True):
        roads = [
            shapely.LineString(xy[np.asarray(s.refs) - 1]).buffer(_ROAD_PX[s.tags["highway"]], cap_style="round")
            for s in city.streets
            if (s.tags["highway"] in _PAVED) == paved
        ]
        burnt = _burn([(g, 1) for g in _utm(roads)], shape, transform) > 0
        img[burnt] = (88, 88, 92) if paved else (176, 146, 110)


def _paint_buildings(city: City, img: np.ndarray, transform: Affine, rng: np.random.Generator) -> None:
    shape = img.shape[:2]
    polys = city.buildings.polygons()
    idx = _burn([(g, k + 1) for k, g in enumerate(_utm(polys))], shape, transform)
    shadow = np.zeros(shape, dtype=bool)
    shadow[2:, 1:] = idx[:-2, :-1] > 0
    img[shadow & (idx == 0)] *= 0.62
    n = len(polys)
    base = np.array([_ROOF[r] for r in city.buildings.roof], dtype=float) * rng.uniform(0.88, 1.12, (n, 1))
    ring = np.array([city.buildings.xy[r[:3]] for r in city.buildings.rings])
    e0, e1 = ring[:, 1] - ring[:, 0], ring[:, 2] - ring[:, 1]
    long_axis = np.where((np.hypot(*e0.T) >= np.hypot(*e1.T))[:, None], e0, e1)
    normal = np.stack([-long_axis[:, 1], long_axis[:, 0]], 1)
    centre = shapely.get_coordinates(shapely.centroid(polys))
    rows, cols = np.nonzero(idx)
    k = idx[rows, cols] - 1
    px = np.stack([transform.c + (cols + 0.5) * transform.a, transform.f + (rows + 0.5) * transform.e], 1) - ORIGIN
    side = np.einsum("ij,ij->i", px - centre[k], normal[k]) > 0
    img[rows, cols] = base[k] * np.where(side, 0.84, 1.0)[:, None]


def write_ortho(city: City, rng: np.random.Generator, path: Path) -> tuple[float, float, float, float]:
    """Render and write the orthophoto (RGB uint8, JPEG-in-TIFF, tiled); return its UTM bounds."""
    x0, y0, x1, y1 = ortho_window()
    shape = (int((y1 - y0) / ORTHO_RES_M), int((x1 - x0) / ORTHO_RES_M))
    transform = from_origin(ORIGIN[0] + x0, ORIGIN[1] + y1, ORTHO_RES_M, ORTHO_RES_M)
    img = _ground(city, shape, transform, rng)
    _paint_network(city, img, transform)
    _paint_buildings(city, img, transform, rng)
    img += rng.normal(0.0, 5.0, img.shape)
    rgb = np.clip(np.round(img), 0, 255).astype(np.uint8).transpose(2, 0, 1)
    profile = {
        "driver": "GTiff", "dtype": "uint8", "count": 3, "height": shape[0], "width": shape[1], "crs": CRS,
        "transform": transform, "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "JPEG",
        "photometric": "YCBCR", "jpeg_quality": 82, "interleave": "pixel",
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(rgb)
        dst.update_tags(SOURCE="civicmap demo generator (fictional drone orthophoto)")
    return (ORIGIN[0] + x0, ORIGIN[1] + y0, ORIGIN[0] + x1, ORIGIN[1] + y1)
