"""The map service over real HTTP: uvicorn in a subprocess on 127.0.0.1, loaded with httpx.

Run from the repo root:  .venv/bin/python benchmarks/bench_serve.py [--concurrency N] [--readme]

The demo city is built into a temporary store; ``civicmap.serve`` runs in one uvicorn process
(one worker) on a free port. A fixed tile list (every tile over the demo's bbox, MVT z14-z17 of
``buildings`` with ``Accept-Encoding: gzip``, PNG z12-z16 of ``dem``) is requested by an
``httpx.AsyncClient`` with ``--concurrency`` requests in flight: once cold (each tile rendered;
the layers are loaded before timing by ``GET /layers``) and then ``--repeat`` times from the
server's tile cache. Reported: tiles/s and p50/p95 latency per request, client side.

GeoJSON: ``/collections/buildings/items`` pages over the whole demo (limit 1000 and 10000),
features/s over HTTP, against geopandas ``to_json`` (``to_crs(4326)`` included, as the service
must reproject) and civicmap's own writer, both in-process on the same rows.
``--readme`` writes the tables into benchmarks/README.md (section "Map service (HTTP)").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn
from _readme import write_section
from _servers import free_port, start_process

from civicmap.cli import DEMO_PROJECT
from civicmap.config import read_project_config
from civicmap.serve import ServiceSettings, create_app
from civicmap.serve._feature_writer import features_json
from civicmap.serve.deps import load_vector
from civicmap.store import GeoPackageStore
from civicmap.tiles.grid import tiles_for_bbox
from civicmap.workspace import Workspace

SECTION = "## Map service (HTTP)"


def serve(store_path: str, port: int) -> None:
    """Child process: serve the store at ``store_path`` on ``port``."""
    workspace = type("Demo", (), {"name": "demo", "store": GeoPackageStore(store_path)})()
    app = create_app(workspace, ServiceSettings(port=port, max_items_limit=10_000))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def build_demo(folder: Path) -> Path:
    store = GeoPackageStore(folder / "demo.gpkg")
    Workspace(read_project_config(DEMO_PROJECT), store=store).build(progress=False)
    return store.path


def start_server(store_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    return start_process([sys.executable, __file__, "--serve", str(store_path), str(port)], port, what="the service")


async def load(
    base: str, paths: list[str], concurrency: int, headers: dict[str, str]
) -> tuple[float, list[float], int]:
    """Request every path once with ``concurrency`` in flight: (seconds, latencies s, bytes)."""
    latencies: list[float] = []
    total = 0
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as client:

        async def one(path: str) -> None:
            nonlocal total
            async with sem:
                t0 = time.perf_counter()
                r = await client.get(path)
                latencies.append(time.perf_counter() - t0)
                assert r.status_code in (200, 204), (path, r.status_code)
                total += len(r.content)

        started = time.perf_counter()
        await asyncio.gather(*(one(p) for p in paths))
        return time.perf_counter() - started, latencies, total


def tile_paths(layer: str, zooms: range, ext: str, bbox: tuple[float, float, float, float]) -> list[str]:
    return [f"/tiles/{layer}/{t.z}/{t.x}/{t.y}.{ext}" for t in tiles_for_bbox(bbox, list(zooms))]


def row(label: str, n: int, seconds: float, lat: list[float]) -> str:
    p50, p95 = np.percentile(np.array(lat) * 1e3, [50, 95])
    return f"| {label} | {n} | {n / seconds:,.0f} | {p50:.1f} | {p95:.1f} |"


def tile_table(base: str, bbox: tuple[float, float, float, float], concurrency: int, repeat: int) -> list[str]:
    httpx.get(f"{base}/layers", timeout=120)  # loads every layer once: not part of the timings
    lines = ["| tiles | requests | tiles/s | p50 ms | p95 ms |", "|---|---:|---:|---:|---:|"]
    for layer, zooms, ext in (("buildings", range(14, 18), "mvt"), ("dem", range(12, 17), "png")):
        for z in zooms:
            paths = tile_paths(layer, range(z, z + 1), ext, bbox)
            secs, lat, _ = asyncio.run(load(base, paths, concurrency, {"Accept-Encoding": "gzip"}))
            lines.append(row(f"{ext.upper()} z{z} cold", len(paths), secs, lat))
            secs, lat, _ = asyncio.run(load(base, paths * repeat, concurrency, {"Accept-Encoding": "gzip"}))
            lines.append(row(f"{ext.upper()} z{z} cached", len(paths) * repeat, secs, lat))
    return lines


def geojson_table(base: str, store_path: Path, repeat: int) -> list[str]:
    store = GeoPackageStore(store_path)
    frame = store.read_layer("buildings")
    layer = load_vector(store.layer_info("buildings"), frame)
    frame_4326 = frame.to_crs(4326)
    lines = [
        "| page | features | HTTP features/s (gzip) | civicmap writer features/s | geopandas to_json features/s "
        "(with to_crs / already 4326) |",
        "|---|---:|---:|---:|---:|",
    ]
    client = httpx.Client(base_url=base, timeout=60, headers={"Accept-Encoding": "gzip"})
    for limit in (1000, 10_000):
        n = min(limit, len(frame))
        url = f"/collections/buildings/items?limit={limit}&offset=0"
        assert client.get(url).json()["numberReturned"] == n
        times = []
        for i in range(repeat):  # a distinct ignored datetime per request: no 304, server builds every page
            t0 = time.perf_counter()
            with client.stream("GET", f"{url}&datetime=r{i}") as r:
                size = sum(len(chunk) for chunk in r.iter_raw())  # raw gzip bytes: no client-side decoding
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200 and size > 0
        rows = np.arange(n)
        ours = timed(lambda rows=rows: ",".join(features_json(layer, rows)), repeat)
        theirs = timed(lambda n=n: frame.iloc[:n].to_crs(4326).to_json(), repeat)
        theirs_4326 = timed(lambda n=n: frame_4326.iloc[:n].to_json(), repeat)
        http_s = statistics.median(times)
        lines.append(
            f"| limit={limit} | {n:,} | {n / http_s:,.0f} | {n / ours:,.0f} "
            f"| {n / theirs:,.0f} / {n / theirs_4326:,.0f} |"
        )
    return lines


def timed(func, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--readme", action="store_true")
    parser.add_argument("--store", type=Path, help="serve a copy of this built demo .gpkg instead of building one")
    parser.add_argument("--serve", nargs=2, metavar=("STORE", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return

    bbox = read_project_config(DEMO_PROJECT).area.bbox
    with tempfile.TemporaryDirectory() as tmp:
        if args.store:
            shutil.copytree(args.store.parent, Path(tmp) / "store")
            store_path = Path(tmp) / "store" / args.store.name
        else:
            store_path = build_demo(Path(tmp))
        proc, base = start_server(store_path)
        try:
            tiles = tile_table(base, bbox, args.concurrency, args.repeat)
            features = geojson_table(base, store_path, args.repeat)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    env = (
        f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}; one uvicorn worker; "
        f"httpx client, {args.concurrency} requests in flight, cached = {args.repeat} passes"
    )
    text = "\n".join([SECTION, "", env, "", *tiles, "", *features, ""])
    print(text)
    if args.readme:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
