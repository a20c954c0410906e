"""GTFS from surveyors' GPS traces of informal routes (read by :func:`civicmap.sources.transit.read_gps_traces`).

Method (all geometry in the local UTM zone, metres; output GTFS in lon/lat):

1. **Clean** each trace: re-sort points recorded out of order, drop repeated timestamps,
   remove spikes (faster than ``max_speed_kmh`` = 120, or out-and-back jumps > ``spike_m``),
   split runs at silences longer than ``split_gap_s`` (300 s: a 1-2 minute signal gap inside a
   run is bridged, not split), drop runs with too few points or metres.
2. **Group runs** by geometry, not by file name: a robust (90th percentile) Hausdorff distance between runs
   simplified with Douglas-Peucker (``simplify_m``), complete linkage at ``group_distance_m``;
   the direction of travel (start/end order) separates the patterns of a line. Result: GTFS
   routes = lines, trips = directional patterns.
3. **Stops** from dwell (stay-point) events, ``dwell_radius_m`` for >= ``min_dwell_s``, plus run
   ends, clustered across all runs (complete linkage, ``stop_cluster_m``) and kept when seen in
   >= ``min_stop_runs`` different runs. Both kerbs of a street fall in one stop (GPS noise
   is of the order of the kerb-to-kerb distance). A pattern serves the stops its own runs
   dwelt at, ordered along its shape.
4. **Shape**: the pattern's median-length run, simplified (Douglas-Peucker); with a street
   graph, each vertex within ``off_street_m`` of a street edge is snapped onto its nearest edge
   (nearest-edge snapping, no HMM: simple and enough for a single vehicle path), and runs with
   more than 20 % of points farther than ``off_street_m`` from any street are reported.
5. **Times**: per run, the first time it comes within ``stop_match_m`` of each stop in order;
   segment travel times are the median over runs (segments no run observed get the median
   speed). **Headway**: median difference between the pattern's run start times (default
   ``default_headway_min`` with one run); span from the first to one minute after the last
   observed departure.
   Written as frequencies.txt with ``exact_times=0`` (departs when full, not on a timetable).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from scipy.cluster.hierarchy import fcluster, linkage

from civicmap.crs import WGS84, local_metric_crs
from civicmap.errors import InputError
from civicmap.layers.transit._feed import (
    GTFSFeed,
    ServiceOptions,
    agency_table,
    format_gtfs_time,
    frequencies_table,
    service_tables,
)
from civicmap.layers.transit._runs import clean_runs, dwell_events, group_runs
from civicmap.sources.transit import GPSTraces
from civicmap.types import BBox

__all__ = ["TraceGTFSOptions", "TransitFromTraces", "gtfs_from_traces"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TraceGTFSOptions:
    """Thresholds of :func:`gtfs_from_traces` (metres, seconds, km/h)."""

    service: ServiceOptions = field(default_factory=ServiceOptions)
    max_speed_kmh: float = 120.0
    spike_m: float = 40.0
    split_gap_s: float = 300.0
    min_run_points: int = 10
    min_run_m: float = 200.0
    simplify_m: float = 5.0
    group_distance_m: float = 60.0
    dwell_radius_m: float = 20.0
    min_dwell_s: float = 15.0
    stop_cluster_m: float = 40.0
    min_stop_runs: int = 2
    stop_match_m: float = 30.0
    off_street_m: float = 30.0
    default_headway_min: float = 15.0


@dataclass(frozen=True, eq=False)
class TransitFromTraces:
    """The feed plus what it was built from.

    ``runs`` (run_id, trace_id, route_id, trip_id, start time UTC,
    length_m, off_street_share) and ``dwells`` (dwell events, EPSG:4326, with their ``stop_id`` or None).
    """

    feed: GTFSFeed
    runs: pd.DataFrame
    dwells: gpd.GeoDataFrame


def gtfs_from_traces(
    traces: GPSTraces, *, street_graph: nx.MultiDiGraph | None = None, options: TraceGTFSOptions | None = None
) -> TransitFromTraces:
    """Build a frequency-based GTFS feed from repeated GPS runs (see the module docstring for the method).

    ``street_graph`` (optional) is an osmnx-style graph in EPSG:4326 such as
    ``OSMData.street_graph("drive")``. Raises :class:`InputError` when no usable run remains.
    """
    options = options or TraceGTFSOptions()
    pts = traces.points
    if pts.empty:
        raise InputError("no GPS points to build GTFS from; read traces with read_gps_traces first")
    west, south, east, north = pts.total_bounds
    metric = local_metric_crs(BBox(west, south, east, north))
    frame = _metric_points(pts, metric)
    frame, problems = clean_runs(
        frame,
        max_speed_kmh=options.max_speed_kmh,
        spike_m=options.spike_m,
        split_gap_s=options.split_gap_s,
        min_points=options.min_run_points,
        min_length_m=options.min_run_m,
    )
    problems = [*traces.problems, *problems]
    if frame.empty:
        raise InputError("no usable GPS run after cleaning: " + "; ".join(problems))
    codes, run_ids = pd.factorize(frame["run_id"], sort=True)
    order = np.argsort(codes, kind="stable")  # linestrings() wants each run's points together, in time order
    xy = frame[["x", "y"]].to_numpy()[order]
    geoms = shapely.linestrings(xy[:, 0], xy[:, 1], indices=codes[order])
    lines = pd.Series(shapely.simplify(geoms, options.simplify_m), index=pd.Index(run_ids, name="run_id"))
    runs = _run_table(frame, lines, group_runs(lines, distance_m=options.group_distance_m))
    edges = _street_edges(street_graph, metric) if street_graph is not None else None
    if edges is not None:
        runs["off_street_share"] = _off_street(frame, edges, options.off_street_m, problems)
    events = dwell_events(frame, radius_m=options.dwell_radius_m, min_dwell_s=options.min_dwell_s)
    stops, events = _cluster_stops(events, options)
    patterns = [
        _pattern(str(trip), group, frame, lines, events, stops, edges, options)
        for trip, group in runs.groupby("trip_id")
    ]
    feed = GTFSFeed(tables=_tables(patterns, runs, stops, metric, options), problems=tuple(problems))
    for problem in problems:
        log.info("GTFS from traces: %s", problem)
    dwells = gpd.GeoDataFrame(events, geometry=gpd.points_from_xy(events["x"], events["y"]), crs=metric).to_crs(WGS84)
    return TransitFromTraces(feed=feed, runs=runs.drop(columns="line_geom"), dwells=dwells)


def _metric_points(pts: gpd.GeoDataFrame, metric: object) -> pd.DataFrame:
    xy = pts.geometry.to_crs(metric)
    t = (pts["time"] - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds()
    return pd.DataFrame({"trace_id": pts["trace_id"].astype(str), "seq": pts["seq"], "t": t, "x": xy.x, "y": xy.y})


def _run_table(frame: pd.DataFrame, lines: pd.Series, groups: pd.DataFrame) -> pd.DataFrame:
    runs = frame.groupby("run_id").agg(trace_id=("trace_id", "first"), t0=("t", "min"))
    runs["length_m"] = shapely.length(lines.loc[runs.index].to_numpy())
    runs["line_geom"] = lines.loc[runs.index]
    line_rank = groups["line"].rank(method="dense").astype(int)
    runs["route_id"] = "T" + line_rank.loc[runs.index].astype(str)
    pattern_key = groups["line"].astype(str) + "-" + groups["pattern"].astype(str)
    direction = pattern_key.groupby(groups["line"]).transform(lambda s: pd.factorize(s)[0])
    runs["direction_id"] = direction.loc[runs.index].astype(int)
    runs["trip_id"] = runs["route_id"] + "-" + runs["direction_id"].astype(str)
    runs["start_utc"] = pd.to_datetime(runs["t0"], unit="s", utc=True)
    return runs.reset_index()


def _street_edges(graph: nx.MultiDiGraph, metric: object) -> gpd.GeoSeries:
    nodes = pd.DataFrame.from_dict(dict(graph.nodes(data=True)), orient="index")
    if nodes.empty:
        raise InputError("the street graph has no nodes; build it with OSMData.street_graph()")
    uv = np.array([(u, v) for u, v, _ in graph.edges(keys=True)], dtype=object)
    xy = nodes[["x", "y"]].astype(float)
    a, b = xy.loc[uv[:, 0]].to_numpy(), xy.loc[uv[:, 1]].to_numpy()
    straight = shapely.linestrings(np.stack([a, b], axis=1))
    given = np.array([d.get("geometry") for _, _, d in graph.edges(data=True)], dtype=object)
    geoms = np.where(pd.isna(given), straight, given)
    return gpd.GeoSeries(geoms, crs=graph.graph.get("crs", WGS84)).to_crs(metric)


def _off_street(frame: pd.DataFrame, edges: gpd.GeoSeries, limit_m: float, problems: list[str]) -> pd.Series:
    points = shapely.points(frame["x"], frame["y"])
    _, dist = edges.sindex.nearest(points, return_all=False, return_distance=True)
    share = pd.Series(dist > limit_m).groupby(frame["run_id"].to_numpy()).mean()
    for run, value in share[share > 0.2].items():
        problems.append(
            f"{run}: {value:.0%} of points lie more than {limit_m:g} m from any street: leaves the street graph"
        )
    return share.reindex(frame["run_id"].unique()).reset_index(drop=True)


def _cluster_stops(events: pd.DataFrame, options: TraceGTFSOptions) -> tuple[pd.DataFrame, pd.DataFrame]:
    xy = events[["x", "y"]].to_numpy()
    labels = fcluster(linkage(xy, "complete"), options.stop_cluster_m, criterion="distance") if len(xy) > 1 else [1]
    events = events.assign(cluster=labels)
    seen = events.groupby("cluster")["run_id"].nunique()
    kept = seen.index[seen >= options.min_stop_runs]
    stops = events[events["cluster"].isin(kept)].groupby("cluster")[["x", "y"]].median()
    stops["stop_id"] = [f"S{i + 1:03d}" for i in range(len(stops))]
    events["stop_id"] = events["cluster"].map(stops["stop_id"])
    return stops.set_index("stop_id"), events


@dataclass
class _Pattern:
    trip_id: str
    route_id: str
    direction_id: int
    shape: shapely.LineString
    stop_ids: list[str]
    offsets_s: np.ndarray
    starts_s: np.ndarray


def _pattern(
    trip_id: str,
    runs: pd.DataFrame,
    frame: pd.DataFrame,
    lines: pd.Series,
    events: pd.DataFrame,
    stops: pd.DataFrame,
    edges: gpd.GeoSeries | None,
    options: TraceGTFSOptions,
) -> _Pattern:
    ordered = runs.sort_values("length_m")
    shape = lines.loc[ordered["run_id"].iloc[len(ordered) // 2]]
    if edges is not None:
        shape = _snap(shape, edges, options.off_street_m)
    used = events.loc[events["run_id"].isin(runs["run_id"]), "stop_id"].dropna().unique()
    where = shapely.points(stops.loc[used, "x"], stops.loc[used, "y"])
    near = shapely.distance(where, shape) <= options.stop_match_m
    along = shapely.line_locate_point(shape, where[near])
    stop_ids = list(pd.Index(used)[near][np.argsort(along, kind="stable")])
    times = np.vstack(
        [_times_at(frame[frame["run_id"] == r], stops.loc[stop_ids], options.stop_match_m) for r in runs["run_id"]]
    )
    offsets = _median_offsets(times, stops.loc[stop_ids])
    return _Pattern(
        trip_id,
        runs["route_id"].iloc[0],
        int(runs["direction_id"].iloc[0]),
        shape,
        stop_ids,
        offsets,
        runs["t0"].to_numpy(),
    )


def _snap(shape: shapely.LineString, edges: gpd.GeoSeries, limit_m: float) -> shapely.LineString:
    vertices = shapely.points(shapely.get_coordinates(shape))
    idx, dist = edges.sindex.nearest(vertices, return_all=False, return_distance=True)
    edge = edges.to_numpy()[idx[1]]
    snapped = shapely.line_interpolate_point(edge, shapely.line_locate_point(edge, vertices[idx[0]]))
    out = np.where(dist <= limit_m, snapped, vertices[idx[0]])
    return shapely.linestrings(shapely.get_coordinates(out))


def _times_at(run: pd.DataFrame, stops: pd.DataFrame, limit_m: float) -> np.ndarray:
    """Seconds after the run's start at which it first comes within ``limit_m`` of each stop, in order."""
    d = np.hypot(
        run["x"].to_numpy()[:, None] - stops["x"].to_numpy(), run["y"].to_numpy()[:, None] - stops["y"].to_numpy()
    )
    t, out, cursor = run["t"].to_numpy(), np.full(len(stops), np.nan), 0
    for k in range(len(stops)):  # stops in order: search forward only
        hits = np.flatnonzero(d[cursor:, k] <= limit_m)
        if hits.size:
            cursor += int(hits[0])
            out[k] = t[cursor]
    return out - t[0]


def _median_offsets(times: np.ndarray, stops: pd.DataFrame) -> np.ndarray:
    if times.shape[1] == 0:
        return np.zeros(0)
    segs = np.diff(times, axis=1)
    gap_m = np.hypot(np.diff(stops["x"].to_numpy()), np.diff(stops["y"].to_numpy()))
    with np.errstate(all="ignore"):
        median = np.nanmedian(np.where(segs > 0, segs, np.nan), axis=0) if segs.size else np.zeros(0)
        speed = np.nanmedian(gap_m / median) if np.isfinite(median).any() else 20 / 3.6
    median = np.where(np.isfinite(median), median, gap_m / speed)
    return np.concatenate([[0.0], np.cumsum(np.round(median))])


def _stop_table(served: list[str], stops: pd.DataFrame, metric: object) -> pd.DataFrame:
    lonlat = gpd.GeoSeries(gpd.points_from_xy(stops.loc[served, "x"], stops.loc[served, "y"]), crs=metric).to_crs(WGS84)
    return pd.DataFrame(
        {
            "stop_id": served,
            "stop_name": [f"Stop {s}" for s in served],
            "stop_lat": lonlat.y.map("{:.7f}".format).to_numpy(),
            "stop_lon": lonlat.x.map("{:.7f}".format).to_numpy(),
        }
    )


def _pattern_tables(
    p: _Pattern, metric: object, options: TraceGTFSOptions
) -> tuple[pd.DataFrame, pd.DataFrame, tuple[str, float, float, float]]:
    """One pattern's stop_times and shape rows, and its frequencies row (trip, start s, end s, headway s)."""
    local = pd.to_datetime(np.sort(p.starts_s), unit="s", utc=True).tz_convert(options.service.timezone)
    day_s = (local - local.normalize()).total_seconds().to_numpy()
    headway = float(np.median(np.diff(day_s))) if len(day_s) > 1 else options.default_headway_min * 60
    headway = max(headway, 60.0)
    clock = format_gtfs_time(day_s[0] + p.offsets_s)
    stop_times = pd.DataFrame(
        {
            "trip_id": p.trip_id,
            "arrival_time": clock,
            "departure_time": clock,
            "stop_id": p.stop_ids,
            "stop_sequence": [str(i) for i in range(len(p.stop_ids))],
            "timepoint": "0",
        }
    )
    xy = gpd.GeoSeries([p.shape], crs=metric).to_crs(WGS84).get_coordinates()
    shape = pd.DataFrame(
        {
            "shape_id": p.trip_id,
            "shape_pt_lat": xy["y"].map("{:.7f}".format).to_numpy(),
            "shape_pt_lon": xy["x"].map("{:.7f}".format).to_numpy(),
            "shape_pt_sequence": [str(i) for i in range(len(xy))],
        }
    )
    end = day_s[-1] + 60 if len(day_s) > 1 else day_s[0] + headway  # last observed departure included
    return stop_times, shape, (p.trip_id, day_s[0], end, headway)


def _tables(
    patterns: list[_Pattern], runs: pd.DataFrame, stops: pd.DataFrame, metric: object, options: TraceGTFSOptions
) -> dict[str, pd.DataFrame]:
    route_ids = sorted({p.route_id for p in patterns})
    agency, agency_ids = agency_table(pd.Series([options.service.agency_name] * len(route_ids)), options.service)
    routes = pd.DataFrame(
        {"route_id": route_ids, "agency_id": agency_ids.to_numpy(), "route_short_name": route_ids, "route_type": "3"}
    )
    trips = pd.DataFrame(
        {
            "route_id": [p.route_id for p in patterns],
            "service_id": options.service.service_id,
            "trip_id": [p.trip_id for p in patterns],
            "direction_id": [str(p.direction_id) for p in patterns],
            "shape_id": [p.trip_id for p in patterns],
        }
    )
    per_pattern = [_pattern_tables(p, metric, options) for p in patterns]
    freqs = pd.DataFrame([f for _, _, f in per_pattern], columns=["trip_id", "start", "end", "headway"])
    return {
        "agency": agency,
        "routes": routes,
        "trips": trips,
        "stops": _stop_table(sorted({s for p in patterns for s in p.stop_ids}), stops, metric),
        "stop_times": pd.concat([t for t, _, _ in per_pattern], ignore_index=True),
        "frequencies": frequencies_table(freqs),
        "shapes": pd.concat([sh for _, sh, _ in per_pattern], ignore_index=True),
        **service_tables(options.service, publisher=options.service.agency_name),
    }
