"""Zonal max of a depth raster over many building polygons: civicmap vs exactextract.

Synthetic data (no real data needed): a 4096 x 4096 float32 depth raster of 5 m cells in
EPSG:32748 (20.5 km square, smooth depths 0..~3 m, 64 nodata rows) and 200,000 rotated
rectangular "buildings" of 6-20 m sides scattered over it. civicmap's
``exposed_to_raster(stat="max")`` gives the PetaBencana class of the deepest cell each
building overlaps; exactextract's ``max`` gives the deepest value, classified the same way
afterwards, so the two answers can be compared building by building.

Run: ``.venv/bin/python benchmarks/bench_exposure.py [--n 200000] [--size 4096] [--runs 3]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from exactextract import exact_extract
from rasterio.transform import from_origin

from civicmap.layers.risk import FLOOD_PETABENCANA, exposed_to_raster

CRS = "EPSG:32748"


def make_data(folder: Path, n: int, size: int, cell: float = 5.0, seed: int = 0) -> tuple[Path, gpd.GeoDataFrame]:
    rng = np.random.default_rng(seed)
    x0, y0 = 700_000.0, 9_330_000.0
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    depth = 1.2 + np.sin(cols / 300) * np.cos(rows / 410) * 1.5 + 0.4 * np.sin((cols + rows) / 57)
    depth = np.maximum(depth, 0).astype(np.float32)
    depth[:64, :] = -9999
    path = folder / "depth.tif"
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype="float32", crs=CRS,
                       transform=from_origin(x0, y0, cell, cell), nodata=-9999, tiled=True, blockxsize=512,
                       blockysize=512) as ds:  # fmt: skip
        ds.write(depth, 1)
    extent = size * cell
    cx = rng.uniform(x0 + 20, x0 + extent - 20, n)
    cy = rng.uniform(y0 - extent + 20, y0 - 20, n)
    w, h, a = rng.uniform(6, 20, n), rng.uniform(6, 20, n), rng.uniform(0, np.pi, n)
    dx = np.array([-1, 1, 1, -1, -1])[None, :] * w[:, None] / 2
    dy = np.array([-1, -1, 1, 1, -1])[None, :] * h[:, None] / 2
    cos, sin = np.cos(a)[:, None], np.sin(a)[:, None]
    xs, ys = cx[:, None] + dx * cos - dy * sin, cy[:, None] + dx * sin + dy * cos
    buildings = gpd.GeoDataFrame(geometry=shapely.polygons(np.stack([xs, ys], axis=-1)), crs=CRS)
    return path, buildings


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path, buildings = make_data(Path(tmp), args.n, args.size)
        ours_s, ours = timed(
            lambda: exposed_to_raster(buildings, path, classification=FLOOD_PETABENCANA, stat="max"), args.runs
        )
        theirs_s, theirs = timed(lambda: exact_extract(str(path), buildings, "max", output="pandas"), args.runs)
    ours_levels = ours["hazard_level"].to_numpy()
    theirs_levels = FLOOD_PETABENCANA.classify(theirs["max"].to_numpy(dtype=np.float32))
    same = int((ours_levels == theirs_levels).sum())
    print(f"{args.n} polygons on a {args.size}x{args.size} raster, median of {args.runs} runs\n")
    print("| tool | median s | × civicmap | same class as civicmap |")
    print("|---|---:|---:|---:|")
    print(f"| civicmap `exposed_to_raster(stat='max')` | {ours_s:.2f} | 1.00 | {args.n} |")
    print(f"| exactextract `max` (+ classify) | {theirs_s:.2f} | {theirs_s / ours_s:.2f} | {same} |")


if __name__ == "__main__":
    main()
