"""Raster PNG tiles over HTTP: civicmap's service against TiTiler, side by side.

Run from the repo root:  .venv/bin/python benchmarks/bench_titiler.py [--concurrency 8] [--readme]

One 4096 x 4096 float32 DEM COG (5 m, EPSG:3857, DEFLATE, overviews; ``bench_tiles.dem_cog``) is
written once into a temporary civicmap store and registered as raster layer ``dem``
(``raster_kind="dem"``: ELEVATION colormap, bilinear, rescaled to the value range of the coarsest
overview). The same file is served by:

* civicmap: ``civicmap.serve`` in one uvicorn worker (``bench_serve.start_server``), ``/tiles/dem/{z}/{x}/{y}.png``;
* TiTiler: a minimal FastAPI app with ``titiler.core``'s ``TilerFactory`` router in one uvicorn worker,
  ``/tiles/WebMercatorQuad/{z}/{x}/{y}.png?url=<file>&rescale=<same range>&colormap_name=civicmap_elevation
  &resampling=bilinear&reproject=bilinear``, where ``civicmap_elevation`` is civicmap's ELEVATION ramp
  sampled at 0..255 and registered in rio-tiler's colormap registry (a lookup by name, no JSON to parse).

Every tile lying wholly inside the raster at z12..z16 is requested, zoom by zoom, by an ``httpx.AsyncClient`` with
``--concurrency`` requests in flight (``bench_serve.load``): once cold, then the whole list again
(civicmap answers from its memory tile cache; TiTiler has none and renders again). Before timing,
each server answers one z11 tile (imports, first file open) and civicmap loads its layers
(``GET /layers``). Servers run one at a time and are stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import warnings
from importlib.metadata import version
from pathlib import Path

import httpx
import numpy as np
import rasterio
import rasterio.warp
import uvicorn
from _readme import write_section
from _servers import free_port, start_process, stop
from bench_serve import load, start_server
from bench_tiles import dem_cog
from fastapi import FastAPI
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rio_tiler.colormap import cmap
from titiler.core.dependencies import create_colormap_dependency
from titiler.core.factory import TilerFactory

from civicmap.store import GeoPackageStore
from civicmap.tiles.colormaps import ELEVATION
from civicmap.tiles.grid import tile_bounds, tiles_for_bbox
from civicmap.tiles.styles import value_range
from civicmap.types import TileXYZ

SECTION = "## Raster tiles vs TiTiler (HTTP)"
ZOOMS = range(12, 17)
CMAP_NAME = "civicmap_elevation"


def serve_titiler(port: int) -> None:
    """Child process: TiTiler (titiler.core TilerFactory) on ``port``, with civicmap's ramp registered."""
    lut = ELEVATION.apply(np.arange(256))
    cmaps = cmap.register({CMAP_NAME: {i: tuple(int(c) for c in lut[i]) for i in range(256)}})
    tiler = TilerFactory(
        colormap_dependency=create_colormap_dependency(cmaps), add_preview=False, add_part=False, add_viewer=False
    )
    app = FastAPI()
    app.include_router(tiler.router)
    app.add_api_route("/health", lambda: {"status": "ok"})
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start_titiler() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    return start_process([sys.executable, __file__, "--serve-titiler", str(port)], port, what="TiTiler")


def build_store(folder: Path) -> tuple[Path, Path, tuple[float, float]]:
    """A store with the synthetic DEM registered as ``dem``: (store path, COG path, rescale range)."""
    cog, _ = dem_cog(folder)
    store = GeoPackageStore(folder / "bench.gpkg")
    shutil.move(cog, store.raster_path("dem"))
    store.register_raster("dem", meta={"raster_kind": "dem"})
    with rasterio.open(store.raster_path("dem")) as ds:
        data_range = value_range(ds)  # the range civicmap's service rescales with
    return store.path, store.raster_path("dem"), data_range


def tiles_inside(cog: Path) -> list[TileXYZ]:
    with rasterio.open(cog) as ds:
        w, s, e, n = ds.bounds
        lonlat = rasterio.warp.transform_bounds(ds.crs, "EPSG:4326", w, s, e, n)
    out = []
    for t in tiles_for_bbox(lonlat, list(ZOOMS)):
        b = tile_bounds(t)
        if b.west >= w and b.east <= e and b.south >= s and b.north <= n:
            out.append(t)
    return out


def titiler_query(cog: Path, value_range: tuple[float, float]) -> str:
    lo, hi = value_range
    return f"?url={cog}&rescale={lo!r},{hi!r}&colormap_name={CMAP_NAME}&resampling=bilinear&reproject=bilinear"


def passes(
    base: str, paths: list[str], tiles: list[TileXYZ], concurrency: int
) -> list[dict[int, tuple[float, list[float]]]]:
    """Cold pass then second pass over ``paths``, zoom by zoom: {zoom: (seconds, latencies)} each."""
    out = []
    for _ in range(2):
        by_zoom = {}
        for z in ZOOMS:
            batch = [p for p, t in zip(paths, tiles, strict=True) if t.z == z]
            secs, lat, _ = asyncio.run(load(base, batch, concurrency, {}))
            by_zoom[z] = (secs, lat)
        out.append(by_zoom)
    return out


def samples(base: str, paths: list[str], tiles: list[TileXYZ]) -> dict[int, bytes]:
    """The PNG of the middle tile of each zoom's list, by zoom (compared between the servers)."""
    out = {}
    for z in ZOOMS:
        batch = [p for p, t in zip(paths, tiles, strict=True) if t.z == z]
        out[z] = httpx.get(base + batch[len(batch) // 2], timeout=60).content
    return out


def same_image(titiler: dict[int, bytes], civicmap: dict[int, bytes]) -> str:
    """One sentence: per zoom, the RGBA difference of the sample tiles and their PNG sizes."""
    parts = []
    for z in ZOOMS:
        a, b = png_pixels(titiler[z]), png_pixels(civicmap[z])
        diff = np.abs(a - b)
        parts.append(
            f"z{z} max {int(diff.max())} / mean {diff.mean():.2f}, bytes {len(titiler[z]):,} / {len(civicmap[z]):,}"
        )
    return (
        "Same image? The middle tile of each zoom, decoded (RGBA) from both servers: max and mean abs "
        "difference, PNG bytes TiTiler / civicmap: " + "; ".join(parts) + "."
    )


def png_pixels(body: bytes) -> np.ndarray:
    """RGBA (4, h, w) int16 of a PNG decoded by GDAL; a palette PNG is expanded through its colour table."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a tile PNG has no georeferencing
        with MemoryFile(body) as mem, mem.open() as ds:
            if ds.count == 1 and ds.colorinterp[0] == ColorInterp.palette:
                table = np.zeros((256, 4), dtype=np.int16)
                for index, colour in ds.colormap(1).items():
                    table[index] = colour
                return np.moveaxis(table[ds.read(1)], 2, 0)
            return ds.read().astype(np.int16)


def run(cog: Path, store_path: Path, value_range: tuple[float, float], concurrency: int) -> dict[str, object]:
    tiles = tiles_inside(cog)
    query = titiler_query(cog, value_range)
    warm = tiles_inside_warmup(cog)
    results: dict[str, object] = {"tiles": tiles}
    proc, base = start_titiler()
    try:
        assert httpx.get(f"{base}/tiles/WebMercatorQuad/{warm.z}/{warm.x}/{warm.y}.png{query}", timeout=60).is_success
        paths = [f"/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png{query}" for t in tiles]
        results["titiler"] = passes(base, paths, tiles, concurrency)
        results["titiler_png"] = samples(base, paths, tiles)
    finally:
        stop(proc)
    proc, base = start_server(store_path)
    try:
        httpx.get(f"{base}/layers", timeout=120)
        assert httpx.get(f"{base}/tiles/dem/{warm.z}/{warm.x}/{warm.y}.png", timeout=60).is_success
        paths = [f"/tiles/dem/{t.z}/{t.x}/{t.y}.png" for t in tiles]
        results["civicmap"] = passes(base, paths, tiles, concurrency)
        results["civicmap_png"] = samples(base, paths, tiles)
    finally:
        stop(proc)
    return results


def tiles_inside_warmup(cog: Path) -> TileXYZ:
    """A z11 tile over the raster's centre: answered once before timing, not in the timed list."""
    with rasterio.open(cog) as ds:
        lonlat = rasterio.warp.transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    lon, lat = (lonlat[0] + lonlat[2]) / 2, (lonlat[1] + lonlat[3]) / 2
    return next(tiles_for_bbox((lon, lat, lon + 1e-6, lat + 1e-6), 11))


def stats(by_zoom: dict[int, tuple[float, list[float]]], zooms: range = ZOOMS) -> tuple[float, float, float]:
    secs = sum(by_zoom[z][0] for z in zooms)
    lat = [v for z in zooms for v in by_zoom[z][1]]
    p50, p95 = np.percentile(np.array(lat) * 1e3, [50, 95])
    return len(lat) / secs, float(p50), float(p95)


def table(results: dict[str, object]) -> list[str]:
    lines = [
        "| pass | server | requests | tiles/s | p50 ms | p95 ms | tiles/s civicmap / TiTiler |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for i, label in enumerate(("cold (each tile once)", "second pass (civicmap: cached)")):
        for zooms in (ZOOMS, *(range(z, z + 1) for z in ZOOMS)):
            ti = stats(results["titiler"][i], zooms)  # type: ignore[index]
            cm = stats(results["civicmap"][i], zooms)  # type: ignore[index]
            n = sum(len(results["titiler"][i][z][1]) for z in zooms)  # type: ignore[index]
            name = f"**{label}, all**" if len(zooms) > 1 else f"{label}, z{zooms[0]}"
            lines.append(f"| {name} | TiTiler | {n} | {ti[0]:,.1f} | {ti[1]:.1f} | {ti[2]:.1f} | |")
            lines.append(
                f"| {name} | civicmap | {n} | {cm[0]:,.1f} | {cm[1]:.1f} | {cm[2]:.1f} | {cm[0] / ti[0]:.2f} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--readme", action="store_true")
    parser.add_argument("--serve-titiler", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_titiler:
        serve_titiler(args.serve_titiler)
        return
    with tempfile.TemporaryDirectory() as tmp:
        store_path, cog, value_range = build_store(Path(tmp))
        results = run(cog, store_path, value_range, args.concurrency)
    tiles = results["tiles"]
    per_zoom = ", ".join(f"z{z}: {sum(t.z == z for t in tiles)}" for z in ZOOMS)  # type: ignore[attr-defined]
    env = (
        f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, "
        f"titiler.core {version('titiler.core')}, rio-tiler {version('rio-tiler')}, GDAL {rasterio.__gdal_version__}, "
        f"uvicorn {version('uvicorn')}; one uvicorn worker each, run one after the other; httpx client, "
        f"{args.concurrency} requests in flight; {len(tiles)} tiles ({per_zoom}), 256 px PNG"
    )
    check = same_image(results["titiler_png"], results["civicmap_png"])  # type: ignore[arg-type]
    command = "```\n.venv/bin/python benchmarks/bench_titiler.py --readme   # [--concurrency 8]\n```"
    text = "\n".join([SECTION, "", command, "", env, "", *table(results), "", check, ""])
    print(text)
    if args.readme:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
