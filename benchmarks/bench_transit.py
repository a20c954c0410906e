"""Transit: GTFS from the Duitama PBF, checking the Nairobi feed, Nairobi stop catchments, vs gtfs-kit.

Run from the repo root:  .venv/bin/python benchmarks/bench_transit.py [--repeat N]

- build: ``read_osm(pbf)`` (untimed) then ``gtfs_from_osm`` -> 52 trip patterns, 1227 stops;
- check: civicmap ``check_gtfs`` vs gtfs-kit ``read_feed`` + ``assess_quality`` on the Nairobi feed;
- coverage: there is no Nairobi OSM extract, so no walk graph: the euclidean 500 m catchment
  (union of buffers in UTM 37S) of the 1,380 stops served by trips, vs gtfs-kit's
  ``compute_trip_stats`` (the nearest thing it offers: per-trip stats; it has no catchments);
- route stats: civicmap ``route_stats`` vs gtfs-kit ``compute_trip_stats`` + ``compute_route_stats``.

Prints a markdown table of medians and ratios to civicmap; never pass/fail.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gtfs_kit as gk

from civicmap.layers.transit import (
    check_gtfs,
    euclidean_catchment,
    feed_stops,
    gtfs_from_osm,
    read_gtfs,
    route_stats,
)
from civicmap.sources.osm import read_osm

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
PBF = REALDATA / "osm" / "trufi_duitama_colombia.osm.pbf"
NAIROBI = REALDATA / "gtfs" / "nairobi_digital_matatus_2014_gtfs.zip"


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def gk_check() -> Any:
    feed = gk.read_feed(NAIROBI, dist_units="km")
    return feed.assess_quality()


def gk_route_stats() -> Any:
    feed = gk.read_feed(NAIROBI, dist_units="km")
    trip_stats = feed.compute_trip_stats()
    return feed.compute_route_stats(feed.get_first_week()[:1], trip_stats=trip_stats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    osm = read_osm(PBF)
    nairobi, _ = read_gtfs(NAIROBI)
    rows = []
    t_build, feed = timed(lambda: gtfs_from_osm(osm), args.repeat)
    rows.append(("build", "civicmap `gtfs_from_osm` (Duitama, 54 relations)", t_build, t_build))
    t_check, problems = timed(lambda: check_gtfs(NAIROBI), args.repeat)
    rows.append(("check", "civicmap `check_gtfs` (Nairobi)", t_check, t_check))
    t_gk, _ = timed(gk_check, args.repeat)
    rows.append(("check", "gtfs-kit `read_feed` + `assess_quality`", t_gk, t_check))
    stops = feed_stops(nairobi)
    t_cov, catch = timed(lambda: euclidean_catchment(stops, radius_m=500), args.repeat)
    rows.append(("coverage", f"civicmap `euclidean_catchment` ({len(stops)} stops)", t_cov, t_cov))
    t_rs, stats = timed(lambda: route_stats(nairobi), args.repeat)
    rows.append(("route stats", "civicmap `route_stats` (Nairobi)", t_rs, t_rs))
    t_gkrs, gk_stats = timed(gk_route_stats, max(1, args.repeat // 2))
    rows.append(("route stats", "gtfs-kit `compute_trip_stats` + `compute_route_stats`", t_gkrs, t_rs))
    print("| task | method | median s | × civicmap |\n|---|---|---:|---:|")
    for task, name, secs, ref in rows:
        print(f"| {task} | {name} | {secs:.3f} | {secs / ref:.2f} |")
    print(
        f"\nDuitama feed: {feed.counts()}; Nairobi problems: {len(problems)}; "
        f"Nairobi 500 m euclidean catchment: {catch['area_km2'].iloc[0]:.1f} km2; "
        f"median route length civicmap {stats['length_km'].median():.2f} km vs gtfs-kit "
        f"{gk_stats['mean_trip_distance'].median():.2f} km (mean trip distance)"
    )


if __name__ == "__main__":
    main()
