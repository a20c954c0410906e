"""The transit layers of a workspace: GTFS feeds from OSM relations and GPS traces, and stop coverage.

Orchestration only (the analysis is :mod:`civicmap.layers.transit`). Feeds are written as
GTFS zips to ``<project>/.civicmap/feeds/`` (``osm.zip``, ``traces_<name>.zip``); layers:

* ``transit_feed_stops`` (stops of every feed built, with ``feed``), ``transit_route_stats``
  (table: length, headway, span, speed per route and feed);
* ``transit_uncovered`` (100 m cells holding buildings none of which is within the walking
  limit of a stop) and table ``transit_summary`` (JSON: coverage shares, feed checks).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from pyproj import CRS

from civicmap.builds.streets import stored_street_graph
from civicmap.config import ProjectConfig
from civicmap.crs import WGS84
from civicmap.layers.transit import (
    GTFSFeed,
    OSMGTFSOptions,
    ServiceOptions,
    TraceGTFSOptions,
    check_tables,
    feed_stops,
    gtfs_from_osm,
    gtfs_from_traces,
    route_stats,
    stop_coverage,
    write_gtfs,
)
from civicmap.sources.osm import OSMData
from civicmap.sources.transit import GPSTraces
from civicmap.store import LayerInfo, Store
from civicmap.types import Provenance

__all__ = ["build_transit", "feeds_folder"]

log = logging.getLogger(__name__)


def feeds_folder(config: ProjectConfig) -> Path:
    """Where a project's GTFS feeds are written: ``<project>/.civicmap/feeds``."""
    return config.root / ".civicmap" / "feeds"


def build_transit(store: Store, config: ProjectConfig, crs: CRS, *, osm: OSMData | None) -> list[tuple[LayerInfo, str]]:
    """Build the feeds and coverage layers; ``osm`` is the extract the workspace just read (for relations)."""
    transit = config.transit
    assert transit is not None
    service = ServiceOptions(agency_name=config.name, timezone=transit.timezone)
    feeds: dict[str, GTFSFeed] = {}
    if transit.from_osm and osm is not None and len(osm.transit_routes):
        feeds["osm"] = gtfs_from_osm(osm, options=OSMGTFSOptions(service=service))
    walk = stored_street_graph(store, "walk")
    if transit.traces is not None:
        points = store.read_layer(f"traces_{transit.traces}").to_crs(WGS84)
        traces = GPSTraces(points=points, problems=(), provenance=Provenance(f"traces_{transit.traces}"))
        result = gtfs_from_traces(traces, street_graph=walk, options=TraceGTFSOptions(service=service))
        feeds[f"traces_{transit.traces}"] = result.feed
    written: list[tuple[LayerInfo, str]] = []
    summary: dict[str, Any] = {"feeds": {}, "max_walk_m": transit.max_walk_m}
    stops, stats = [], []
    folder = feeds_folder(config)
    folder.mkdir(parents=True, exist_ok=True)
    for name, feed in feeds.items():
        problems = check_tables(feed)
        path = write_gtfs(feed, folder / f"{name}.zip")
        summary["feeds"][name] = {"path": str(path), "counts": feed.counts(), "problems": [str(p) for p in problems],
                                  "left_out": list(feed.problems)}  # fmt: skip
        stops.append(feed_stops(feed).assign(feed=name))
        stats.append(route_stats(feed).assign(feed=name))
    if not stops:
        log.warning("transit: no feed built (no OSM route relations and no traces configured)")
        return written
    provenance = Provenance(source="civicmap transit", details={"feeds": list(feeds)})
    all_stops = gpd.GeoDataFrame(pd.concat(stops, ignore_index=True), crs=WGS84).to_crs(crs)
    written.append((store.write_layer("transit_feed_stops", all_stops, provenance=provenance), f"{len(feeds)} feeds"))
    written.append((store.write_table("transit_route_stats", pd.concat(stats), provenance=provenance), ""))
    coverage = stop_coverage(store.read_layer("buildings"), all_stops, walk, max_walk_m=transit.max_walk_m)
    summary["coverage"] = {"share_buildings": coverage.share_buildings, "uncovered_cells": len(coverage.uncovered)}
    uncovered = coverage.uncovered.to_crs(crs)
    note = f"{coverage.share_buildings:.1%} of buildings within {transit.max_walk_m:g} m walk"
    written.append((store.write_layer("transit_uncovered", uncovered, provenance=provenance), note))
    table = pd.DataFrame({"document": [json.dumps(summary, default=str)]})
    written.append((store.write_table("transit_summary", table, provenance=provenance), "JSON document"))
    return written
