"""OSM reading: civicmap.read_osm vs pyrosm vs osmnx on the Duitama PBF (a whole small city).

Run from the repo root:  .venv/bin/python benchmarks/bench_osm.py [--repeat N] [--slow-repeat N]

Each tool reads buildings, roads/driving network and builds a driving graph:

- civicmap: ``read_osm(pbf)`` (every layer) + ``street_graph("drive")`` (osmnx rules, simplified);
- pyrosm: ``OSM(pbf).get_buildings()`` + ``get_network("driving", nodes=True)`` + ``to_graph(...)``;
- osmnx: it cannot read PBF, so the PBF is converted once (untimed) with pyosmium into OSM XML:
  the whole file for ``features_from_xml(tags={"building": True})``, and the ways of osmnx's
  "drive" filter with their nodes for ``graph_from_xml`` (what an Overpass drive query returns;
  ``graph_from_xml`` itself would turn every way, buildings included, into streets).

civicmap and pyrosm are timed in alternating rounds (civicmap, pyrosm, civicmap, ...), so that
a change of load on a shared machine hits both alike. Prints a markdown table of median wall
and CPU (process) times and wall-time ratios to civicmap. Needs the ``bench`` extra (pyrosm).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import osmium
import osmium.filter
import osmnx as ox

from civicmap.sources._osm_graph import network_mask
from civicmap.sources.osm import read_osm

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
PBF = REALDATA / "osm" / "trufi_duitama_colombia.osm.pbf"


def timed(fns: dict[str, Callable[[], Any]], repeat: int) -> list[tuple[str, float, float, Any, int]]:
    """``(name, median wall s, median CPU s, last result, runs)`` per function, run in alternating rounds."""
    walls: dict[str, list[float]] = {name: [] for name in fns}
    cpus: dict[str, list[float]] = {name: [] for name in fns}
    results: dict[str, Any] = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            gc.collect()
            start, cpu = time.perf_counter(), time.process_time()
            results[name] = fn()
            walls[name].append(time.perf_counter() - start)
            cpus[name].append(time.process_time() - cpu)
    return [
        (name, statistics.median(walls[name]), statistics.median(cpus[name]), results[name], repeat) for name in fns
    ]


def run_civicmap() -> str:
    data = read_osm(PBF)
    graph = data.street_graph("drive")
    return f"{len(data.buildings)} buildings, {len(data.roads)} roads, graph {len(graph)} n / {len(graph.edges)} e"


def run_pyrosm() -> str:
    import pyrosm  # noqa: PLC0415 - optional (bench extra)

    osm = pyrosm.OSM(str(PBF))
    buildings = osm.get_buildings()
    nodes, edges = osm.get_network("driving", nodes=True)
    graph = osm.to_graph(nodes, edges, graph_type="networkx")
    return f"{len(buildings)} buildings, {len(edges)} segments, graph {len(graph)} n / {len(graph.edges)} e"


def write_xml(folder: Path) -> tuple[Path, Path]:
    """The PBF as OSM XML, and its drive-network ways with all nodes (untimed preparation)."""
    full, drive = folder / "duitama.osm", folder / "duitama_drive.osm"
    with osmium.SimpleWriter(str(full)) as writer:
        for obj in osmium.FileProcessor(str(PBF)):
            writer.add(obj)
    edges = read_osm(PBF).street_edges
    ways = edges.drop_duplicates("osmid")
    drive_ids = ways.loc[network_mask(ways, "drive").to_numpy(), "osmid"].tolist()
    way_filter = osmium.filter.IdFilter(drive_ids)
    way_filter.enable_for(osmium.osm.WAY)
    processor = osmium.FileProcessor(str(PBF), osmium.osm.NODE | osmium.osm.WAY).with_filter(way_filter)
    with osmium.SimpleWriter(str(drive)) as writer:
        for obj in processor:
            writer.add(obj)
    return full, drive


def run_osmnx(full: Path, drive: Path) -> str:
    buildings = ox.features_from_xml(full, tags={"building": True})
    graph = ox.graph_from_xml(drive)
    return f"{len(buildings)} features, graph {len(graph)} n / {len(graph.edges)} e"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--slow-repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows = timed({"civicmap": run_civicmap, "pyrosm": run_pyrosm}, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        full, drive = write_xml(Path(tmp))
        rows += timed({"osmnx (from XML)": lambda: run_osmnx(full, drive)}, args.slow_repeat)
    base = rows[0][1]
    print(f"Duitama PBF ({PBF.stat().st_size / 1e6:.2f} MB), median wall and CPU time\n")
    print("| tool | median s | CPU s | × civicmap | runs | result |")
    print("|---|---:|---:|---:|---:|---|")
    for name, seconds, cpu, result, runs in rows:
        print(f"| {name} | {seconds:.2f} | {cpu:.2f} | {seconds / base:.2f} | {runs} | {result} |")


if __name__ == "__main__":
    main()
