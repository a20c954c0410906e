"""Coverage and service of a transit network: walking catchments of stops, SDG 11.2.1-style shares, route stats.

Walking distance is computed once for all stops with a single multi-source Dijkstra run on the
walk graph (:func:`civicmap.layers.network.nearest_walk`, in the local UTM zone of the graph):
stops and buildings (or any points) snap to their nearest graph node, and a walk is the
point's snap leg + the network distance + the stop's snap leg, in metres. SDG 11.2.1 counts
people within 500 m walking of a stop (UN-Habitat metadata); with no population column the
building share is given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from civicmap.crs import WGS84, local_metric_crs, require_crs, to_crs
from civicmap.errors import InputError
from civicmap.layers.network import Streets, nearest_walk, street_network
from civicmap.layers.transit._feed import GTFSFeed, parse_gtfs_time
from civicmap.types import BBox

__all__ = ["StopCoverage", "euclidean_catchment", "feed_stops", "route_stats", "stop_coverage", "walk_distance_m"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class StopCoverage:
    """Result of :func:`stop_coverage`; ``buildings`` and ``uncovered`` are in the metric CRS used (``crs``)."""

    buildings: gpd.GeoDataFrame
    uncovered: gpd.GeoDataFrame
    share_buildings: float
    share_population: float | None
    max_walk_m: float
    crs: object


def feed_stops(feed: GTFSFeed, *, used_only: bool = True) -> gpd.GeoDataFrame:
    """Stops of a feed as points, EPSG:4326; ``used_only`` keeps stops that appear in stop_times."""
    stops = feed["stops"]
    if used_only and "stop_times" in feed:
        stops = stops[stops["stop_id"].isin(set(feed["stop_times"]["stop_id"]))]
    lon, lat = pd.to_numeric(stops["stop_lon"], errors="coerce"), pd.to_numeric(stops["stop_lat"], errors="coerce")
    ok = lon.notna() & lat.notna() & ~((lon.abs() < 1e-6) & (lat.abs() < 1e-6))
    return gpd.GeoDataFrame(
        {"stop_id": stops.loc[ok, "stop_id"].to_numpy()}, geometry=gpd.points_from_xy(lon[ok], lat[ok]), crs=WGS84
    )


def walk_distance_m(
    points: gpd.GeoSeries, stops: gpd.GeoSeries, walk_graph: Streets, *, max_walk_m: float = 500.0
) -> np.ndarray:
    """Walking distance (metres) from each point to its nearest stop over ``walk_graph``; inf beyond ``max_walk_m``.

    ``points`` and ``stops`` need a CRS (any; reprojected to the network's metric CRS, the
    local UTM zone of an EPSG:4326 graph); the graph is osmnx-style with edge ``length`` in
    metres (``OSMData.street_graph("walk")``) or its edges GeoDataFrame. Both snap legs count.
    """
    require_crs(gpd.GeoDataFrame(geometry=points), name="points")
    require_crs(gpd.GeoDataFrame(geometry=stops), name="stops")
    if len(stops) == 0:
        raise InputError("walk_distance_m needs at least one stop; got an empty stops series")
    network = street_network(walk_graph)
    stop_xy, point_xy = (_point_xy(g, network.crs, name=name) for g, name in ((stops, "stops"), (points, "points")))
    dist = nearest_walk(network, point_xy, stop_xy, limit_m=max_walk_m).distance_m
    return np.where(dist <= max_walk_m, dist, np.inf)


def _point_xy(points: gpd.GeoSeries, crs: CRS, *, name: str) -> np.ndarray:
    """``(m, 2)`` coordinates of point geometries in ``crs``; missing, empty or other geometries are an error."""
    geoms = to_crs(gpd.GeoDataFrame(geometry=points), crs, name=name).geometry.to_numpy()
    bad = (shapely.get_type_id(geoms) != shapely.GeometryType.POINT) | shapely.is_empty(geoms)
    if bad.any():
        raise InputError(
            f"{name}: {int(bad.sum())} geometries are not points (first at {points.index[bad][0]!r}); pass "
            "non-empty points, e.g. gdf.geometry.representative_point(), and drop rows without geometry"
        )
    return shapely.get_coordinates(geoms)


def stop_coverage(
    buildings: gpd.GeoDataFrame,
    stops: gpd.GeoDataFrame,
    walk_graph: Streets,
    *,
    max_walk_m: float = 500.0,
    population_col: str | None = None,
    cell_m: float = 100.0,
) -> StopCoverage:
    """Buildings within ``max_walk_m`` walking of a stop, their share (SDG 11.2.1 style) and uncovered cells.

    Buildings are represented by a point on their surface. ``buildings.walk_to_stop_m`` is inf
    when farther than ``max_walk_m``. ``uncovered``: ``cell_m`` square cells holding buildings
    none of which is covered, with ``n_buildings`` (and ``population``).
    """
    require_crs(buildings, name="buildings")
    if buildings.empty:
        raise InputError("stop_coverage needs buildings; got an empty frame")
    if population_col is not None and population_col not in buildings.columns:
        raise InputError(f"population column {population_col!r} not in buildings; columns: {list(buildings.columns)}")
    west, south, east, north = buildings.to_crs(WGS84).total_bounds
    metric = local_metric_crs(BBox(west, south, east, north))
    out = buildings.to_crs(metric)
    anchor = out.geometry.representative_point()
    out["walk_to_stop_m"] = walk_distance_m(anchor, stops.geometry, walk_graph, max_walk_m=max_walk_m)
    out["covered"] = np.isfinite(out["walk_to_stop_m"])
    share_pop = None
    if population_col is not None:
        pop = pd.to_numeric(out[population_col], errors="coerce").fillna(0)
        share_pop = float(pop[out["covered"]].sum() / pop.sum()) if pop.sum() > 0 else None
    uncovered = _uncovered_cells(out, anchor, cell_m, population_col)
    share = float(out["covered"].mean())
    log.info("stop coverage: %.1f%% of %d buildings within %g m walk", 100 * share, len(out), max_walk_m)
    return StopCoverage(out, uncovered, share, share_pop, max_walk_m, metric)


def _uncovered_cells(
    out: gpd.GeoDataFrame, anchor: gpd.GeoSeries, cell_m: float, population_col: str | None
) -> gpd.GeoDataFrame:
    cx, cy = np.floor(anchor.x / cell_m).astype(int), np.floor(anchor.y / cell_m).astype(int)
    frame = pd.DataFrame({"cx": cx.to_numpy(), "cy": cy.to_numpy(), "covered": out["covered"].to_numpy()})
    if population_col is not None:
        frame["population"] = pd.to_numeric(out[population_col], errors="coerce").fillna(0).to_numpy()
    agg = {"n_buildings": ("covered", "size"), "n_covered": ("covered", "sum")}
    if population_col is not None:
        agg["population"] = ("population", "sum")
    cells = frame.groupby(["cx", "cy"]).agg(**agg).reset_index()
    cells = cells[cells["n_covered"] == 0].drop(columns="n_covered").reset_index(drop=True)
    x, y = cells["cx"].to_numpy() * cell_m, cells["cy"].to_numpy() * cell_m
    return gpd.GeoDataFrame(cells, geometry=shapely.box(x, y, x + cell_m, y + cell_m), crs=out.crs)


def euclidean_catchment(stops: gpd.GeoDataFrame, *, radius_m: float = 500.0) -> gpd.GeoDataFrame:
    """The union of straight-line ``radius_m`` buffers around stops, in the local UTM zone, with ``area_km2``.

    The fallback when no walk graph exists; it overstates walking catchments (a street network
    detour factor of about 1.2-1.4 is typical).
    """
    require_crs(stops, name="stops")
    west, south, east, north = stops.to_crs(WGS84).total_bounds
    metric = local_metric_crs(BBox(west, south, east, north))
    union = shapely.union_all(stops.to_crs(metric).buffer(radius_m, quad_segs=16).to_numpy())
    return gpd.GeoDataFrame({"area_km2": [union.area / 1e6], "n_stops": [len(stops)]}, geometry=[union], crs=metric)


def route_stats(feed: GTFSFeed) -> pd.DataFrame:
    """Service statistics per route (index ``route_id``).

    ``length_km`` (longest shape, or straight stop-to-stop line), ``headway_min``,
    ``span_h`` (from frequencies.txt when the route has some, else from trip departures),
    ``speed_kmh`` (mean over trips of length / first-to-last-stop time) and ``n_trips``.
    """
    trips, st = feed["trips"], feed["stop_times"]
    lengths = _trip_lengths_km(feed)
    secs = st.assign(dep=parse_gtfs_time(st["departure_time"].fillna("")), seq=pd.to_numeric(st["stop_sequence"]))
    ends = secs.sort_values(["trip_id", "seq"]).groupby("trip_id")["dep"].agg(["first", "last"])
    per_trip = trips.set_index("trip_id")[["route_id"]].join(ends).join(lengths.rename("length_km"))
    per_trip["hours"] = (per_trip["last"] - per_trip["first"]) / 3600
    speed = (
        (per_trip["length_km"] / per_trip["hours"].where(per_trip["hours"] > 0)).groupby(per_trip["route_id"]).mean()
    )
    out = pd.DataFrame(
        {"n_trips": per_trip.groupby("route_id").size(), "length_km": per_trip.groupby("route_id")["length_km"].max()}
    )
    out["speed_kmh"] = speed
    head, span = _headway_span(feed, per_trip)
    out["headway_min"], out["span_h"] = head, span
    return out


def _trip_lengths_km(feed: GTFSFeed) -> pd.Series:
    trips, stops = feed["trips"], feed["stops"].set_index("stop_id")
    if "shapes" in feed and "shape_id" in trips.columns:
        sh = (
            feed["shapes"]
            .assign(seq=pd.to_numeric(feed["shapes"]["shape_pt_sequence"]))
            .sort_values(["shape_id", "seq"])
        )
        codes, uniq = pd.factorize(sh["shape_id"])
        lines = gpd.GeoSeries(
            shapely.linestrings(sh["shape_pt_lon"].astype(float), sh["shape_pt_lat"].astype(float), indices=codes),
            crs=WGS84,
        )
        by_shape = pd.Series(_metric(lines).length.to_numpy() / 1000, index=uniq)
        return trips.set_index("trip_id")["shape_id"].map(by_shape)
    st = (
        feed["stop_times"]
        .assign(seq=pd.to_numeric(feed["stop_times"]["stop_sequence"]))
        .sort_values(["trip_id", "seq"])
    )
    st = st[st["stop_id"].isin(stops.index)]
    codes, uniq = pd.factorize(st["trip_id"])
    xy = stops.loc[st["stop_id"], ["stop_lon", "stop_lat"]].astype(float)
    lines = gpd.GeoSeries(shapely.linestrings(xy["stop_lon"], xy["stop_lat"], indices=codes), crs=WGS84)
    return pd.Series(_metric(lines).length.to_numpy() / 1000, index=uniq)


def _metric(series: gpd.GeoSeries) -> gpd.GeoSeries:
    west, south, east, north = series.total_bounds
    return series.to_crs(local_metric_crs(BBox(west, south, east, north)))


def _headway_span(feed: GTFSFeed, per_trip: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    route_of = per_trip["route_id"]
    head = pd.Series(np.nan, index=route_of.unique())
    span = head.copy()
    if "frequencies" in feed and len(feed["frequencies"]):
        fr = feed["frequencies"]
        fr = fr.assign(
            route=fr["trip_id"].map(route_of),
            start=parse_gtfs_time(fr["start_time"]),
            end=parse_gtfs_time(fr["end_time"]),
            h=pd.to_numeric(fr["headway_secs"]) / 60,
        )
        head = head.fillna(fr.groupby("route")["h"].mean())
        span = span.fillna((fr.groupby("route")["end"].max() - fr.groupby("route")["start"].min()) / 3600)
    first = per_trip.dropna(subset=["first"]).sort_values("first")
    gaps = first.groupby("route_id")["first"].diff() / 60
    head = head.fillna(gaps.groupby(first["route_id"]).median())
    span = span.fillna((first.groupby("route_id")["last"].max() - first.groupby("route_id")["first"].min()) / 3600)
    return head, span
