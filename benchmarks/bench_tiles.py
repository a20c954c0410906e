"""Tiles in-process: civicmap.tiles vs mapbox-vector-tile (MVT) and rio-tiler (PNG), no HTTP.

Run from the repo root:  .venv/bin/python benchmarks/bench_tiles.py [--repeat N] [--readme]

Generated data, written to a temporary folder:

- 200,000 building footprints (rotated rectangles, 6-30 m, 3 properties) over 14 x 14 km
  around Nairobi, in EPSG:3857;
- a 4096 x 4096 DEM (5 m pixels, EPSG:3857, float32, COG with overviews) over the same place.

MVT, z14-z17, 4 tiles per zoom around the centre: ``encode_mvt`` vs ``mapbox_vector_tile.encode``
(pure Python) fed the same features (spatial-index pick, clipped with shapely) so both encode
the same geometry. PNG, z12-z16, 4 tiles per zoom: ``render_png`` with a colormap (path opened
per tile, and an open dataset reused) and with hillshade, vs rio-tiler ``Reader(path).tile()``
+ ``rescale`` + ``render(img_format="PNG", colormap=...)`` with the same 256-entry colours.
rio-tiler has no hillshade. Prints a markdown table: median ms per tile and the ratio of the other tool to civicmap
(> 1: civicmap is faster), path against path and open dataset against open Reader.
``--readme`` also writes the table into benchmarks/README.md (section "Tiles (in-process)").
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import rasterio
import rasterio.shutil
import shapely
from _readme import write_section
from rasterio.transform import from_origin
from rio_tiler.io import Reader

from civicmap.tiles.colormaps import ELEVATION
from civicmap.tiles.grid import tile_bounds, tiles_for_bbox
from civicmap.tiles.raster import render_png
from civicmap.tiles.vector import encode_mvt
from civicmap.types import TileXYZ

CENTRE_LONLAT = (36.82, -1.29)
CENTRE_M = (4_098_900.0, -143_600.0)  # EPSG:3857 of the centre
SECTION = "## Tiles (in-process)"


def footprints(n: int = 200_000, half_m: float = 7_000.0, seed: int = 0) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    cx, cy = CENTRE_M[0] + rng.uniform(-half_m, half_m, n), CENTRE_M[1] + rng.uniform(-half_m, half_m, n)
    w, h, a = rng.uniform(6, 30, n), rng.uniform(6, 20, n), rng.uniform(0, np.pi, n)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], dtype=float) / 2
    dx = corners[None, :, 0] * w[:, None]
    dy = corners[None, :, 1] * h[:, None]
    x = cx[:, None] + dx * np.cos(a)[:, None] - dy * np.sin(a)[:, None]
    y = cy[:, None] + dx * np.sin(a)[:, None] + dy * np.cos(a)[:, None]
    polys = shapely.polygons(np.stack([x, y], axis=2))
    props = {
        "height_m": np.round(rng.uniform(3, 40, n), 1),
        "levels": rng.integers(1, 12, n),
        "kind": rng.choice(["house", "apartments", "commercial", "school", "church"], n),
    }
    gdf = gpd.GeoDataFrame(props, geometry=polys, crs=3857)
    gdf.sindex  # noqa: B018 - build the index once, as a service would
    return gdf


def dem_cog(folder: Path, size: int = 4096, res_m: float = 5.0) -> tuple[Path, tuple[float, float]]:
    rows, cols = np.mgrid[0:size, 0:size].astype("float32")
    dem = 1600 + 120 * np.sin(cols / 300) * np.cos(rows / 410) + 0.02 * (rows + cols)
    dem += 300 * np.exp(-((rows - 1800) ** 2 + (cols - 2300) ** 2) / 8e5)
    transform = from_origin(CENTRE_M[0] - size * res_m / 2, CENTRE_M[1] + size * res_m / 2, res_m, res_m)
    tmp = folder / "dem_src.tif"
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "float32", "crs": "EPSG:3857"}
    with rasterio.open(tmp, "w", **profile, transform=transform, nodata=-9999, tiled=True) as dst:
        dst.write(dem.astype("float32"), 1)
    out = folder / "dem_cog.tif"
    rasterio.shutil.copy(tmp, out, driver="COG", overview_resampling="average", compress="DEFLATE")
    return out, (float(dem.min()), float(dem.max()))


def tiles_around(zooms: range, per_zoom: int = 4) -> list[TileXYZ]:
    out = []
    for z in zooms:
        centre = next(tiles_for_bbox((*CENTRE_LONLAT, CENTRE_LONLAT[0] + 1e-7, CENTRE_LONLAT[1] + 1e-7), z))
        out += [TileXYZ(z, centre.x + dx, centre.y + dy) for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1))][:per_zoom]
    return out


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up (caches, lazy imports)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def reference_mvt(gdf: gpd.GeoDataFrame, tile: TileXYZ) -> bytes:
    w, s, e, n = tile_bounds(tile)
    pad = (e - w) * 64 / 4096
    rows = np.sort(gdf.sindex.query(shapely.box(w - pad, s - pad, e + pad, n + pad)))
    sub = gdf.iloc[rows]
    geoms = shapely.clip_by_rect(sub.geometry.to_numpy(), w - pad, s - pad, e + pad, n + pad)
    records = sub.drop(columns="geometry").to_dict("records")
    features = [{"geometry": g, "properties": p, "id": int(i)} for g, p, i in zip(geoms, records, rows, strict=True)]
    layer = {"name": "buildings", "features": [f for f in features if not f["geometry"].is_empty]}
    return mapbox_vector_tile.encode(layer, default_options={"quantize_bounds": (w, s, e, n), "extents": 4096})


def bench_mvt(gdf: gpd.GeoDataFrame, repeat: int) -> list[tuple[str, str, float, float, str]]:
    rows = []
    for z in range(14, 18):
        tiles = tiles_around(range(z, z + 1))
        ours = [median_ms(lambda t=t: encode_mvt({"buildings": gdf}, t), repeat) for t in tiles]
        ref = [median_ms(lambda t=t: reference_mvt(gdf, t), max(1, repeat // 3)) for t in tiles]
        sizes = [len(encode_mvt({"buildings": gdf}, t)) for t in tiles]
        counts = [len(gdf.sindex.query(shapely.box(*tile_bounds(t)))) for t in tiles]
        note = f"{int(np.median(counts)):,} features, {int(np.median(sizes)) // 1000} kB"
        rows.append((f"MVT z{z}", "civicmap encode_mvt", statistics.median(ours), 1.0, note))
        rows.append(
            (
                f"MVT z{z}",
                "mapbox-vector-tile",
                statistics.median(ref),
                statistics.median(ref) / statistics.median(ours),
                "same features, no simplification",
            )
        )
    return rows


def bench_png(path: Path, value_range: tuple[float, float], repeat: int) -> list[tuple[str, str, float, float, str]]:
    lut = ELEVATION.apply(np.arange(256))
    cmap = {i: tuple(int(c) for c in lut[i]) for i in range(256)}
    rows = []
    with rasterio.open(path) as opened, Reader(str(path)) as reader_open:
        for z in range(12, 17):
            tiles = tiles_around(range(z, z + 1))

            def ours(t: TileXYZ, src: object = path) -> bytes | None:
                return render_png(src, t, colormap=ELEVATION, rescale=value_range)

            def rio(t: TileXYZ) -> bytes:
                with Reader(str(path)) as src:
                    img = src.tile(t.x, t.y, t.z)
                img.rescale(in_range=(value_range,))
                return img.render(img_format="PNG", colormap=cmap)

            def rio_open(t: TileXYZ) -> bytes:
                img = reader_open.tile(t.x, t.y, t.z)
                img.rescale(in_range=(value_range,))
                return img.render(img_format="PNG", colormap=cmap)

            base = statistics.median([median_ms(lambda t=t: ours(t), repeat) for t in tiles])
            reuse = statistics.median([median_ms(lambda t=t: ours(t, opened), repeat) for t in tiles])
            shade = statistics.median(
                [
                    median_ms(lambda t=t: render_png(opened, t, hillshade=True, resampling="bilinear"), repeat)
                    for t in tiles
                ]
            )
            ref = statistics.median([median_ms(lambda t=t: rio(t), repeat) for t in tiles])
            ref_open = statistics.median([median_ms(lambda t=t: rio_open(t), repeat) for t in tiles])
            rows += [
                (f"PNG z{z}", "civicmap colormap (path)", base, 1.0, "opened + validated per tile"),
                (f"PNG z{z}", "rio-tiler colormap (path)", ref, ref / base, "Reader per tile; ratio to the row above"),
                (f"PNG z{z}", "civicmap colormap (open dataset)", reuse, 1.0, "dataset reused"),
                (f"PNG z{z}", "rio-tiler colormap (open Reader)", ref_open, ref_open / reuse, "ratio to the row above"),
                (f"PNG z{z}", "civicmap hillshade (open dataset)", shade, shade / reuse, "bilinear; ratio to colormap"),
            ]
    return rows


def table(rows: list[tuple[str, str, float, float, str]]) -> str:
    lines = ["| tiles | tool | median ms/tile | ratio | note |", "|---|---|---:|---:|---|"]
    lines += [f"| {a} | {b} | {ms:.1f} | {ratio:.2f} | {note} |" for a, b, ms, ratio, note in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--readme", action="store_true", help="write the table into benchmarks/README.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        gdf = footprints()
        path, value_range = dem_cog(Path(tmp))
        print(f"data generated in {time.perf_counter() - start:.1f} s")
        rows = bench_mvt(gdf, args.repeat) + bench_png(path, value_range, args.repeat)
    out = table(rows)
    print(out)
    if args.readme:
        intro = (
            f"{SECTION}\n\n```\n.venv/bin/python benchmarks/bench_tiles.py --readme\n```\n\n"
            "Generated data: 200,000 rotated-rectangle footprints over 14 x 14 km (EPSG:3857) and a "
            "4096 x 4096 float32 DEM COG (5 m, EPSG:3857, DEFLATE, overviews). Medians over 4 tiles per "
            f"zoom around the centre, {args.repeat} runs each (mapbox-vector-tile: fewer), 2-core machine. "
            "No HTTP: the TiTiler/PostGIS comparison comes with the service.\n\n"
        )
        write_section(SECTION, intro + out)


if __name__ == "__main__":
    main()
