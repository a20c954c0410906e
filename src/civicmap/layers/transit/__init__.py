"""Transit layers: GTFS checking and writing, GTFS from OSM relations and GPS traces, stop coverage."""

from civicmap.layers.transit._feed import GTFSFeed, ServiceOptions
from civicmap.layers.transit.coverage import (
    StopCoverage,
    euclidean_catchment,
    feed_stops,
    route_stats,
    stop_coverage,
    walk_distance_m,
)
from civicmap.layers.transit.from_osm import OSMGTFSOptions, gtfs_from_osm
from civicmap.layers.transit.from_traces import TraceGTFSOptions, TransitFromTraces, gtfs_from_traces
from civicmap.layers.transit.gtfs_check import GTFSProblem, check_gtfs, check_tables, read_gtfs
from civicmap.layers.transit.gtfs_write import write_gtfs

__all__ = [
    "GTFSFeed",
    "GTFSProblem",
    "OSMGTFSOptions",
    "ServiceOptions",
    "StopCoverage",
    "TraceGTFSOptions",
    "TransitFromTraces",
    "check_gtfs",
    "check_tables",
    "euclidean_catchment",
    "feed_stops",
    "gtfs_from_osm",
    "gtfs_from_traces",
    "read_gtfs",
    "route_stats",
    "stop_coverage",
    "walk_distance_m",
    "write_gtfs",
]
