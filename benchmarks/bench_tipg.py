"""Vector tiles over HTTP: civicmap's service against tipg (PostGIS ST_AsMVT behind FastAPI), side by side.

Run from the repo root, with a PostGIS server:

    eval "$(scripts/postgis)" && .venv/bin/python benchmarks/bench_tipg.py [--concurrency 8] [--readme]

Data: the 200,000 building footprints of bench_tiles.py (EPSG:3857, 14 x 14 km around Nairobi,
3 properties), written once through ``PostGISStore.write_layer`` (COPY + GiST index) into a
throw-away schema that is dropped at the end. Both servers read that same table:

* tipg (developmentseed): ``tipg.main:app`` in one uvicorn worker, configured by its environment
  (``DATABASE_URL``, ``TIPG_DB_SCHEMAS=[schema]``, ``TIPG_TILE_RESOLUTION=4096``,
  ``TIPG_TILE_BUFFER=64``), tiles from
  ``/collections/{schema}.buildings/tiles/WebMercatorQuad/{z}/{x}/{y}?properties=height_m,levels,kind``:
  one ``ST_AsMVT(ST_AsMVTGeom(...))`` query per tile on its asyncpg pool, gzip by starlette-cramjam;
* civicmap: ``civicmap.serve.create_app`` on the same PostGIS store in one uvicorn worker,
  ``/tiles/buildings/{z}/{x}/{y}.mvt`` (encode_mvt defaults: extent 4096, buffer 64, 1 px
  simplification, small-feature drop); the layer is read into memory by ``GET /layers`` first.

Tiles: every tile at z14..z17 meeting a 2 x 2 km box (``--box-km``) at the centre of the data, requested once
each (cold: civicmap's tile cache is empty), zoom by zoom, by an ``httpx.AsyncClient`` with
``--concurrency`` requests in flight and ``Accept-Encoding: gzip``. Before timing, each server
answers one z13 tile over the centre (not in the list). The servers run one after the other
(tipg first), never both at once, and are stopped by PID. Without a PostGIS URL (``--url`` or
CIVICMAP_TEST_POSTGIS_URL) the script prints why and exits 0. ``--readme`` writes the section
"Vector tiles over HTTP vs tipg" of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version

import geopandas as gpd
import httpx
import mapbox_vector_tile
import numpy as np
import psycopg
import shapely
import uvicorn
from _readme import write_section
from _servers import free_port, start_process, stop
from bench_tiles import CENTRE_M, footprints
from psycopg import sql

from civicmap.crs import to_wgs84
from civicmap.serve import ServiceSettings, create_app
from civicmap.store import open_store
from civicmap.tiles.grid import tile_bounds, tiles_for_bbox
from civicmap.types import TileXYZ

SECTION = "## Vector tiles over HTTP vs tipg"
ZOOMS = range(14, 18)
PROPERTIES = ("height_m", "levels", "kind")
TIPG_ENV = {"TIPG_TILE_RESOLUTION": "4096", "TIPG_TILE_BUFFER": "64", "TIPG_CATALOG_TTL": "0"}
HEADERS = {"Accept-Encoding": "gzip"}


@dataclass
class Pass:
    """One server's cold pass over one zoom: wall seconds, per-request latency (s), wire and body bytes."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    wire: list[int] = field(default_factory=list)
    body: list[int] = field(default_factory=list)
    encodings: set[str] = field(default_factory=set)


def store_url(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


def serve_civicmap(url: str, port: int) -> None:
    """Child process: civicmap's service on the PostGIS store at ``url`` (with its ``schema`` parameter)."""
    workspace = type("Bench", (), {"name": "bench", "store": open_store(url)})()
    app = create_app(workspace, ServiceSettings(port=port))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_tipg(port: int) -> None:
    """Child process: tipg's app (configured by the environment its parent set) on ``port``."""
    uvicorn.run("tipg.main:app", host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start(args: list[str], health: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start this script as a server child (``args`` + a free port); wait until ``health`` answers 200."""
    port = free_port()
    return start_process([sys.executable, __file__, *args, str(port)], port, health=health, env=env, what=args[0])


def tile_list(box_km: float) -> list[TileXYZ]:
    """Every tile at ZOOMS meeting a ``box_km`` x ``box_km`` square (EPSG:3857) at the centre of the footprints."""
    x, y = CENTRE_M
    half = box_km * 500.0
    square = shapely.box(x - half, y - half, x + half, y + half)
    lonlat = to_wgs84(gpd.GeoDataFrame(geometry=[square], crs=3857), name="tile box").total_bounds
    return list(tiles_for_bbox(lonlat, list(ZOOMS)))


def tile_list_centre(z: int) -> TileXYZ:
    """The tile at zoom ``z`` over the centre of the footprints (warm-up, outside the timed list)."""
    x, y = CENTRE_M
    point = to_wgs84(gpd.GeoDataFrame(geometry=[shapely.box(x, y, x + 1, y + 1)], crs=3857), name="centre")
    return next(tiles_for_bbox(point.total_bounds, z))


async def fetch(base: str, paths: list[str], concurrency: int) -> Pass:
    """Request every path once with ``concurrency`` in flight (gzip accepted)."""
    out = Pass()
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=120, headers=HEADERS) as client:

        async def one(path: str) -> None:
            async with sem:
                t0 = time.perf_counter()
                r = await client.get(path)
                out.latencies.append(time.perf_counter() - t0)
                assert r.status_code == 200, (path, r.status_code, r.text[:200])
                out.wire.append(r.num_bytes_downloaded)
                out.body.append(len(r.content))
                out.encodings.add(r.headers.get("content-encoding", "identity"))

        started = time.perf_counter()
        await asyncio.gather(*(one(p) for p in paths))
        out.seconds = time.perf_counter() - started
    return out


def features(tile: bytes) -> int:
    return sum(len(layer["features"]) for layer in mapbox_vector_tile.decode(tile).values()) if tile else 0


def measure(base: str, path_of: Callable[[TileXYZ], str], tiles: list[TileXYZ], concurrency: int) -> dict[str, object]:
    """Warm-up tile, then the cold pass zoom by zoom, then the decoded feature count of each zoom's mid tile."""
    warm = tile_list_centre(13)
    assert httpx.get(base + path_of(warm), timeout=120, headers=HEADERS).status_code == 200
    passes, counts = {}, {}
    for z in ZOOMS:
        batch = [path_of(t) for t in tiles if t.z == z]
        passes[z] = asyncio.run(fetch(base, batch, concurrency))
    for z in ZOOMS:
        batch = [t for t in tiles if t.z == z]
        counts[z] = features(httpx.get(base + path_of(batch[len(batch) // 2]), timeout=120).content)
    return {"passes": passes, "features": counts}


def mid_rows(gdf: gpd.GeoDataFrame, tiles: list[TileXYZ]) -> dict[int, tuple[int, int]]:
    """Per zoom, the rows meeting the mid tile and the tile buffered by 64/4096 (EPSG:3857, spatial index)."""
    out = {}
    for z in ZOOMS:
        batch = [t for t in tiles if t.z == z]
        b = tile_bounds(batch[len(batch) // 2])
        m = (b.east - b.west) * 64 / 4096
        inside = gdf.sindex.query(shapely.box(b.west, b.south, b.east, b.north), predicate="intersects")
        near = gdf.sindex.query(shapely.box(b.west - m, b.south - m, b.east + m, b.north + m), predicate="intersects")
        out[z] = (len(inside), len(near))
    return out


def run(url: str, schema: str, tiles: list[TileXYZ], concurrency: int) -> dict[str, dict[str, object]]:
    query = "?properties=" + ",".join(PROPERTIES)
    env = {"DATABASE_URL": url, "TIPG_DB_SCHEMAS": json.dumps([schema]), **TIPG_ENV}
    results = {}
    proc, base = start(["--serve-tipg"], "/healthz", env)
    try:

        def tipg_path(t: TileXYZ) -> str:
            return f"/collections/{schema}.buildings/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}{query}"

        results["tipg"] = measure(base, tipg_path, tiles, concurrency)
    finally:
        stop(proc)
    proc, base = start(["--serve-civicmap", store_url(url, schema)], "/health")
    try:
        assert httpx.get(f"{base}/layers", timeout=300).status_code == 200  # loads the layer: not timed
        results["civicmap"] = measure(base, lambda t: f"/tiles/buildings/{t.z}/{t.x}/{t.y}.mvt", tiles, concurrency)
    finally:
        stop(proc)
    return results


def stats(passes: dict[int, Pass], zooms: range) -> tuple[int, float, float, float, float, float]:
    """(requests, tiles/s, p50 ms, p95 ms, mean wire bytes, mean body bytes) over ``zooms``."""
    secs = sum(passes[z].seconds for z in zooms)
    lat = np.array([v for z in zooms for v in passes[z].latencies]) * 1e3
    wire = [v for z in zooms for v in passes[z].wire]
    body = [v for z in zooms for v in passes[z].body]
    p50, p95 = np.percentile(lat, [50, 95])
    return len(lat), len(lat) / secs, float(p50), float(p95), float(np.mean(wire)), float(np.mean(body))


def table(results: dict[str, dict[str, object]], rows_in: dict[int, tuple[int, int]]) -> list[str]:
    lines = [
        "| zoom | server | requests | tiles/s | p50 ms | p95 ms | tiles/s civicmap / tipg "
        "| mean tile bytes gzip / raw | features, mid tile | table rows meeting mid tile / buffered tile |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for zooms in (*(range(z, z + 1) for z in ZOOMS), ZOOMS):
        name = f"z{zooms[0]}" if len(zooms) == 1 else f"**all z{ZOOMS[0]}-{ZOOMS[-1]}**"
        rows = {key: stats(results[key]["passes"], zooms) for key in ("tipg", "civicmap")}  # type: ignore[arg-type]
        for key in ("tipg", "civicmap"):
            n, rate, p50, p95, wire, body = rows[key]
            ratio = f"{rate / rows['tipg'][1]:.2f}" if key == "civicmap" else ""
            count = f"{results[key]['features'][zooms[0]]:,}" if len(zooms) == 1 else ""  # type: ignore[index]
            inside = "{:,} / {:,}".format(*rows_in[zooms[0]]) if len(zooms) == 1 and key == "tipg" else ""
            lines.append(
                f"| {name} | {key} | {n} | {rate:,.1f} | {p50:.1f} | {p95:.1f} | {ratio} "
                f"| {wire:,.0f} / {body:,.0f} | {count} | {inside} |"
            )
    return lines


def environment(results: dict[str, dict[str, object]], tiles: list[TileXYZ], args: argparse.Namespace) -> str:
    per_zoom = ", ".join(f"z{z}: {sum(t.z == z for t in tiles)}" for z in ZOOMS)
    encodings = {k: sorted(set().union(*(p.encodings for p in v["passes"].values()))) for k, v in results.items()}  # type: ignore[attr-defined]
    return (
        f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, "
        f"tipg {version('tipg')} (asyncpg {version('asyncpg')}), uvicorn {version('uvicorn')}, "
        f"PostGIS {args.postgis} on PostgreSQL {args.pg}; one uvicorn worker each, run one after the other "
        f"(tipg first); httpx client, {args.concurrency} requests in flight, `Accept-Encoding: gzip` "
        f"(Content-Encoding seen: tipg {encodings['tipg']}, civicmap {encodings['civicmap']}); "
        f"{len(tiles)} tiles, each once ({per_zoom}): every tile meeting a {args.box_km:g} x {args.box_km:g} km "
        "box at the centre of the "
        f"200,000 footprints of bench_tiles.py, loaded into PostGIS with `PostGISStore.write_layer` "
        f"({args.loaded:.1f} s, GiST index); both servers read that table."
    )


def notes(schema: str) -> str:
    return (
        f"tipg request: `/collections/{schema}.buildings/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}"
        f"?properties={','.join(PROPERTIES)}` (tile matrix set WebMercatorQuad, the 3 properties), with "
        "`TIPG_TILE_RESOLUTION=4096`, `TIPG_TILE_BUFFER=64` (tipg's default buffer is 256), clipping on, "
        "`max_features_per_tile` 10,000 (default; no tile here reaches it), `TIPG_CATALOG_TTL=0` (no catalog "
        "refresh middleware). tipg runs one `ST_AsMVT(ST_AsMVTGeom(ST_Transform(geom, 3857), envelope, 4096, "
        "64, true))` query per tile on its asyncpg pool (MVT layer named `default`) and simplifies nothing, but "
        "its WHERE keeps only rows meeting the tile itself, not the buffered tile: features lying only in the "
        "64-unit margin are missing from its tiles (last column: rows of the table meeting the mid tile / the "
        "buffered tile, counted with geopandas). civicmap: `/tiles/buildings/{z}/{x}/{y}.mvt` from the layer "
        "held in memory (read from the same PostGIS table by `GET /layers` before timing), `encode_mvt` "
        "defaults (extent 4096, buffer 64, 1 px simplification, polygons under the minimum size dropped: a few "
        "at z14-z15), so its tiles hold more features and bytes. Before timing each server answered one z13 "
        "tile over the centre. Cold pass only: civicmap's tile cache would answer a second pass from memory, "
        "tipg has no cache. Ratio > 1: civicmap serves more tiles per second. Mean tile bytes: gzip on the "
        "wire / decoded MVT. With few tiles per zoom (a 2 km box: 4 at z14, 9 at z15) a pass lasts well under "
        "a second on a machine that also runs the client and PostgreSQL: those rows are noisy, a larger "
        "`--box-km` steadies them."
    )


def load_data(url: str, schema: str) -> tuple[gpd.GeoDataFrame, float]:
    """Write the footprints into ``schema``: (the frame, seconds taken by write_layer)."""
    gdf = footprints()
    store = open_store(store_url(url, schema))
    start_s = time.perf_counter()
    store.write_layer("buildings", gdf)
    return gdf, time.perf_counter() - start_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("CIVICMAP_TEST_POSTGIS_URL"))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--box-km", type=float, default=2.0, help="side of the square of tiles (km, default 2)")
    parser.add_argument("--readme", action="store_true", help="write the section into benchmarks/README.md")
    parser.add_argument("--serve-tipg", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-civicmap", metavar="URL", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.serve_tipg or args.serve_civicmap:
        port = int(rest[0])
        serve_tipg(port) if args.serve_tipg else serve_civicmap(args.serve_civicmap, port)
        return
    if not args.url:
        print('bench_tipg: skipped, no PostGIS URL (run: eval "$(scripts/postgis)")')
        return
    schema = f"bench_tipg_{uuid.uuid4().hex[:8]}"
    tiles = tile_list(args.box_km)
    with warnings.catch_warnings(), psycopg.connect(args.url, autocommit=True) as con:
        warnings.simplefilter("ignore")
        server = con.info.server_version
        args.pg = f"{server // 10000}.{server % 10000}"
        args.postgis = con.execute("SELECT postgis_lib_version()").fetchone()[0]  # type: ignore[index]
        try:
            gdf, args.loaded = load_data(args.url, schema)
            results = run(args.url, schema, tiles, args.concurrency)
        finally:
            con.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    text = report(results, tiles, gdf, args)
    print(text)
    if args.readme:
        write_section(SECTION, text)


def report(
    results: dict[str, dict[str, object]], tiles: list[TileXYZ], gdf: gpd.GeoDataFrame, args: argparse.Namespace
) -> str:
    command = (
        '```\neval "$(scripts/postgis)" && .venv/bin/python benchmarks/bench_tipg.py --readme'
        "   # [--concurrency 8] [--box-km 2]\n```"
    )
    lines = [SECTION, "", command, "", environment(results, tiles, args), ""]
    return "\n".join([*lines, *table(results, mid_rows(gdf, tiles)), "", notes("{schema}"), ""])


if __name__ == "__main__":
    main()
