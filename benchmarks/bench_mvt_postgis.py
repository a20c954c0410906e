"""Vector tiles: PostGIS ST_AsMVT (what pg_tileserv and Martin run) vs civicmap encode_mvt in-process.

Run from the repo root, with a PostGIS server:

    eval "$(scripts/postgis)" && .venv/bin/python benchmarks/bench_mvt_postgis.py [--repeat N] [--readme]

Data: the 200,000 building footprints of bench_tiles.py (same generator, EPSG:3857, 14 x 14 km
around Nairobi, 3 properties), written through ``PostGISStore.write_layer`` (COPY + GiST index)
into a throw-away schema. Per tile, z14-z17, 4 tiles per zoom around the centre:

- PostGIS: one query on an open connection (as a tile server's pool), prepared by psycopg
  after a few runs: ``ST_AsMVT`` over ``ST_AsMVTGeom(geom, ST_TileEnvelope(z, x, y), 4096, 64,
  true)`` of the rows whose ``geom && ST_TileEnvelope(z, x, y, margin => 64/4096)``;
- civicmap: ``encode_mvt({"buildings": source}, tile)`` on an ``MVTSource`` of the frame, as the
  service holds each layer (defaults: 1 px simplification, small-feature drop, 500 kB cap).

Prints a markdown table of medians per zoom (ms per tile, ratio PostGIS / civicmap: > 1 means
civicmap is faster), feature counts decoded from both tiles and tile sizes. Without a server
URL (``--url`` or CIVICMAP_TEST_POSTGIS_URL) it prints why and exits 0. ``--readme`` also
writes the table into benchmarks/README.md (section "Vector tiles vs PostGIS ST_AsMVT").
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
import warnings

import mapbox_vector_tile
import psycopg
from _readme import write_section
from bench_tiles import footprints, median_ms, tiles_around
from psycopg import sql

from civicmap.store import open_store
from civicmap.tiles.vector import MVTSource, encode_mvt
from civicmap.types import TileXYZ

SECTION = "## Vector tiles vs PostGIS ST_AsMVT"
QUERY = """
SELECT ST_AsMVT(q, 'buildings', 4096, 'geom') FROM (
  SELECT ST_AsMVTGeom(geom, ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4096, 64, true) AS geom,
         height_m, levels, kind
  FROM {table}
  WHERE geom && ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => (64.0 / 4096))
) AS q
"""


def features(tile: bytes) -> int:
    return sum(len(layer["features"]) for layer in mapbox_vector_tile.decode(tile).values()) if tile else 0


def postgis_tile(con: psycopg.Connection, table: sql.Composable, tile: TileXYZ) -> bytes:
    row = con.execute(sql.SQL(QUERY).format(table=table), {"z": tile.z, "x": tile.x, "y": tile.y}).fetchone()
    return bytes(row[0]) if row and row[0] else b""


def bench(con: psycopg.Connection, table: sql.Composable, gdf: MVTSource, repeat: int) -> list[dict[str, float]]:
    rows = []
    for z in range(14, 18):
        tiles = tiles_around(range(z, z + 1))
        pg_ms = [median_ms(lambda t=t: postgis_tile(con, table, t), repeat) for t in tiles]
        cm_ms = [median_ms(lambda t=t: encode_mvt({"buildings": gdf}, t), repeat) for t in tiles]
        pg_tiles = [postgis_tile(con, table, t) for t in tiles]
        cm_tiles = [encode_mvt({"buildings": gdf}, t) for t in tiles]
        rows.append(
            {
                "z": z,
                "pg_ms": statistics.median(pg_ms),
                "cm_ms": statistics.median(cm_ms),
                "pg_features": statistics.median(map(features, pg_tiles)),
                "cm_features": statistics.median(map(features, cm_tiles)),
                "pg_kb": statistics.median(len(t) for t in pg_tiles) / 1000,
                "cm_kb": statistics.median(len(t) for t in cm_tiles) / 1000,
            }
        )
    return rows


def table(rows: list[dict[str, float]]) -> str:
    lines = [
        "| zoom | PostGIS ST_AsMVT ms/tile | civicmap encode_mvt ms/tile | ratio PostGIS/civicmap "
        "| features PostGIS / civicmap | kB PostGIS / civicmap |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| z{r['z']} | {r['pg_ms']:.1f} | {r['cm_ms']:.1f} | {r['pg_ms'] / r['cm_ms']:.2f} "
        f"| {r['pg_features']:,.0f} / {r['cm_features']:,.0f} | {r['pg_kb']:.0f} / {r['cm_kb']:.0f} |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("CIVICMAP_TEST_POSTGIS_URL"))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--readme", action="store_true", help="write the table into benchmarks/README.md")
    args = parser.parse_args()
    if not args.url:
        print('bench_mvt_postgis: skipped, no PostGIS URL (run: eval "$(scripts/postgis)")')
        return
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with warnings.catch_warnings(), psycopg.connect(args.url, autocommit=True) as con:
        warnings.simplefilter("ignore")
        version = con.info.server_version
        try:
            start = time.perf_counter()
            gdf = footprints()
            generated = time.perf_counter() - start
            store = open_store(f"{args.url}{'&' if '?' in args.url else '?'}schema={schema}")
            start = time.perf_counter()
            store.write_layer("buildings", gdf)
            loaded = time.perf_counter() - start
            print(f"{len(gdf):,} footprints generated in {generated:.1f} s, written to PostGIS in {loaded:.1f} s")
            start = time.perf_counter()
            source = MVTSource(gdf, name="buildings")
            prepared = time.perf_counter() - start
            rows = bench(con, sql.Identifier(schema, "buildings"), source, args.repeat)
        finally:
            con.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    out = table(rows)
    print(out)
    if args.readme:
        intro = (
            f'{SECTION}\n\n```\neval "$(scripts/postgis)" && .venv/bin/python benchmarks/bench_mvt_postgis.py '
            "--readme\n```\n\n"
            "The 200,000 footprints of bench_tiles.py (EPSG:3857), written with `PostGISStore.write_layer` "
            f"(COPY + GiST index: {loaded:.1f} s). PostGIS {store.postgis_version} on PostgreSQL "
            f"{version // 10000}.{version % 10000} on the same 2-core machine, local TCP, one open connection, "
            "the pg_tileserv/Martin query (`ST_AsMVT(ST_AsMVTGeom(geom, ST_TileEnvelope(z,x,y), 4096, 64, true))` "
            "with `geom && ST_TileEnvelope(..., margin)`), vs `encode_mvt` on an `MVTSource` of the frame, "
            f"as the service holds each layer (prepared once per layer version: {prepared:.2f} s). "
            f"Medians over 4 tiles per zoom around the centre, {args.repeat} runs each; "
            "ratio > 1: civicmap is faster. Feature counts decoded from the tiles: civicmap drops polygons "
            "under its minimum size (simplify=True), ST_AsMVTGeom only those that collapse on the 4096 grid.\n\n"
        )
        write_section(SECTION, intro + out)


if __name__ == "__main__":
    main()
