"""Building morphology + grid aggregation: civicmap vs plain momepy calls for the same metrics.

Data: Duitama (``osm/trufi_duitama_colombia.osm.pbf``, 36,961 buildings, read untimed) and
N synthetic buildings (default 200,000: a jittered lattice of 6-14 m rectangles, 15 m apart,
some rows joined into terraces, in EPSG:32737). Each run is a fresh process-free call; time
is wall-clock, peak memory is tracemalloc's peak of Python allocations (numpy/shapely
buffers are included; GEOS' own C heap is not).

- civicmap: ``building_morphology`` (cleaning + 2 graphs + 9 metrics) then
  ``settlement_grid`` (H3 res 10).
- momepy: what a user would write: ``Graph.build_contiguity`` (rook) and
  ``Graph.build_triangulation(centroids)``, then ``momepy.elongation``, ``orientation``,
  ``alignment``, ``neighbor_distance``, ``shared_walls``, ``building_adjacency`` and
  ``courtyards``; no cleaning, no grid (momepy has no grid aggregation).

Run: ``.venv/bin/python benchmarks/bench_settlements.py [--n 200000] [--skip-duitama]``
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import momepy
import numpy as np
import shapely
from libpysal.graph import Graph

from civicmap.layers.settlements import building_morphology, settlement_grid
from civicmap.sources.osm import read_osm

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


def synthetic(n: int, seed: int = 0) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    ij = np.stack(np.divmod(np.arange(n), side), axis=1).astype(float)
    centre = 530_000 + ij * 15 + rng.normal(0, 1.5, (n, 2))
    centre[:, 1] += 9_200_000
    w, h = rng.uniform(6, 14, n), rng.uniform(6, 14, n)
    terrace = rng.random(n) < 0.3  # 30 % stretched to touch the next house in the row
    w[terrace] = 15.0
    centre[terrace, 0] = 530_000 + ij[terrace, 0] * 15
    boxes = shapely.box(centre[:, 0] - w / 2, centre[:, 1] - h / 2, centre[:, 0] + w / 2, centre[:, 1] + h / 2)
    return gpd.GeoDataFrame(geometry=boxes, crs="EPSG:32737")


def measure(fn: Callable[[], Any]) -> tuple[float, float]:
    tracemalloc.start()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak


def civicmap_run(buildings: gpd.GeoDataFrame) -> None:
    settlement_grid(building_morphology(buildings))


def momepy_run(buildings: gpd.GeoDataFrame) -> None:
    contiguity = Graph.build_contiguity(buildings)
    near = Graph.build_triangulation(buildings.centroid, coplanar="clique")
    orientation = momepy.orientation(buildings)
    momepy.elongation(buildings)
    momepy.alignment(orientation, near)
    momepy.neighbor_distance(buildings, near)
    momepy.shared_walls(buildings)
    momepy.building_adjacency(contiguity, near)
    momepy.courtyards(buildings, contiguity)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--skip-duitama", action="store_true")
    args = parser.parse_args()
    data = {}
    if not args.skip_duitama:
        buildings = read_osm(REALDATA / "osm" / "trufi_duitama_colombia.osm.pbf").buildings.to_crs(32618)
        data["Duitama"] = buildings
    data[f"synthetic {args.n:,}"] = synthetic(args.n)
    print(f"momepy {momepy.__version__}")
    print("| data | buildings | tool | seconds | peak MiB (tracemalloc) |\n|---|---:|---|---:|---:|")
    for name, frame in data.items():
        for tool, run in (("civicmap morphology + H3 grid", civicmap_run), ("momepy (same metrics)", momepy_run)):
            seconds, peak = measure(lambda run=run, frame=frame: run(frame))
            print(f"| {name} | {len(frame):,} | {tool} | {seconds:.1f} | {peak:.0f} |", flush=True)


if __name__ == "__main__":
    main()
