"""GTFS from OpenStreetMap public-transport (PTv2) route relations.

Method (one pass over the relations of :attr:`OSMData.transit_routes`, EPSG:4326 in, GTFS out):

- **Routes**: one GTFS route per line: the ``route_master`` of a relation, or the relation
  itself when it has no master. ``route_short_name`` = ``ref``; agency from ``network``
  (else ``operator``, else the configured name).
- **Trips**: one trip pattern per route relation (``trip_id`` = ``shape_id`` = relation id),
  ``direction_id`` 0/1 by the relations' order within their master.
- **Shape**: member ways chained in relation order; a way whose end (not start) touches the
  chain is reversed; consecutive ways that do not touch (> ``gap_tolerance_m``) are joined by a
  straight segment and reported as gaps of that relation ("unordered or missing ways").
- **Stops**: stop_position members in order; each is replaced by the nearest platform
  member within ``platform_pair_m`` (the GTFS stop is where riders wait; the pair becomes one
  stop), platforms without a partner are reported. Relations with only platforms use them.
  Relations with no stop member at all get stops generated the way trufi's osmToGtfs does
  ("fakeStops"): the first way node, then every node at least ``stop_spacing_m`` along the
  path from the previous stop, and the last node; their ids are the OSM node ids.
- **Times**: stops located along the shape (metres, haversine on the WGS 84 mean radius);
  travel time = distance / ``speed_kmh``, or scaled so the trip lasts the relation's
  ``duration``. Service span from ``opening_hours`` (simple ``Mo-Su 05:00-22:00``, ``24/7``),
  headway from ``interval`` (minutes, ``HH:MM``, ``PT10M``), else the configured defaults;
  written as frequencies.txt with ``exact_times=0`` and a calendar running every day. A relation
  lacking one of these tags takes it from a sibling relation of the same route_master (mappers
  often tag only the outbound direction).
- Relations with member ways missing from the extract are reported and, with
  ``skip_incomplete`` (default), left out; every other relation is built.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

from civicmap.errors import InputError
from civicmap.layers.transit._feed import (
    GTFSFeed,
    ServiceOptions,
    agency_table,
    format_gtfs_time,
    frequencies_table,
    parse_duration_s,
    service_tables,
)
from civicmap.sources.osm import OSMData

__all__ = ["OSMGTFSOptions", "chain_ways", "gtfs_from_osm", "haversine_m", "parse_opening_hours"]

log = logging.getLogger(__name__)

EARTH_RADIUS_M = 6371008.8
ROUTE_TYPES = {"tram": 0, "light_rail": 0, "subway": 1, "train": 2, "railway": 2, "ferry": 4, "trolleybus": 11}
_HOURS = re.compile(r"(?:(Mo|Tu|We|Th|Fr|Sa|Su)(?:-(Mo|Tu|We|Th|Fr|Sa|Su))?\s+)?(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")


@dataclass(frozen=True)
class OSMGTFSOptions:
    """Defaults and tolerances of :func:`gtfs_from_osm` (times ``HH:MM:SS`` local, distances metres)."""

    service: ServiceOptions = field(default_factory=ServiceOptions)
    speed_kmh: float = 20.0
    headway_min: float = 15.0
    start_time: str = "06:00:00"
    end_time: str = "22:00:00"
    stop_spacing_m: float = 100.0
    platform_pair_m: float = 30.0
    gap_tolerance_m: float = 1.0
    skip_incomplete: bool = True


@dataclass
class _Pattern:
    relation: str
    line: str
    stops: pd.DataFrame  # stop_id, stop_name, lon, lat, along_m
    shape: np.ndarray  # (n, 2) lon, lat
    start_s: float
    end_s: float
    headway_s: float
    duration_s: float | None


def haversine_m(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """Great-circle distance in metres between lon/lat degree arrays (WGS 84 mean radius)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def chain_ways(parts: list[np.ndarray], *, tolerance_m: float = 1.0) -> tuple[np.ndarray, list[float], int]:
    """Chain way coordinate arrays (lon/lat) in the given order into one line.

    Returns (coordinates, gap lengths in metres, number of ways reversed). A way is reversed
    when its end is nearer to the chain's end than its start; the first way is turned to
    face the second. Joints are not repeated; gaps larger than ``tolerance_m`` are kept as
    straight segments and listed.
    """
    if not parts:
        raise InputError("a route relation without member way geometry cannot be chained; add its ways")

    def gap(a: np.ndarray, b: np.ndarray) -> float:
        return float(haversine_m(a[0], a[1], b[0], b[1]))

    first, reversed_count = parts[0], 0
    if len(parts) > 1:
        nxt = parts[1]
        at_end = min(gap(first[-1], nxt[0]), gap(first[-1], nxt[-1]))
        at_start = min(gap(first[0], nxt[0]), gap(first[0], nxt[-1]))
        if at_start < at_end:
            first, reversed_count = first[::-1], 1
    chain, gaps = [first], []
    for way in parts[1:]:
        end, part = chain[-1][-1], way
        to_start, to_end = gap(end, part[0]), gap(end, part[-1])
        if to_end < to_start:
            part, to_start, reversed_count = part[::-1], to_end, reversed_count + 1
        if to_start > tolerance_m:
            gaps.append(to_start)
            chain.append(part)
        else:
            chain.append(part[1:])
    return np.concatenate(chain), gaps, reversed_count


def parse_opening_hours(text: str | None) -> tuple[float, float] | None:
    """The service span (start, end seconds) of a simple ``opening_hours`` value; None if absent.

    Reads ``"Mo-Su 05:00-22:00"``, ``"05:00-22:00"`` and ``"24/7"`` (first rule of several);
    raises :class:`InputError` for other forms.
    """
    if text is None or not str(text).strip():
        return None
    value = str(text).strip()
    if value == "24/7":
        return 0.0, 24 * 3600.0
    match = _HOURS.search(value)
    if not match:
        raise InputError(f"cannot read opening_hours {value!r}; expected a simple form like 'Mo-Su 05:00-22:00'")
    h1, m1, h2, m2 = (int(g) for g in match.groups()[2:])
    start, end = h1 * 3600.0 + m1 * 60, h2 * 3600.0 + m2 * 60
    return start, end if end > start else end + 24 * 3600


def gtfs_from_osm(osm: OSMData, *, options: OSMGTFSOptions | None = None) -> GTFSFeed:
    """Build a frequency-based GTFS feed from the PTv2 route relations of ``osm`` (see the module docstring).

    Problems (skipped relations, gaps, reversed ways, unpaired platforms, unreadable tags
    replaced by defaults) are listed per relation in ``feed.problems``. Raises
    :class:`InputError` when no relation at all can be built.
    """
    options = options or OSMGTFSOptions()
    routes = osm.transit_routes.copy()
    for tag in ("interval", "duration", "opening_hours"):  # outbound-only tags apply to the whole line
        if tag in routes.columns:
            routes[tag] = routes[tag].fillna(routes.groupby("route_master")[tag].transform("first"))
    problems: list[str] = []
    node_ids = _NodeIndex(osm.street_nodes)
    patterns = []
    for rel_id, row in routes.iterrows():
        try:
            pattern = _pattern(str(rel_id), row, osm.transit_stops, node_ids, options, problems)
        except InputError as exc:
            problems.append(f"{rel_id}: left out: {exc}")
            continue
        if pattern is not None:
            patterns.append(pattern)
    if not patterns:
        raise InputError(
            f"no route relation could be built into GTFS ({len(routes)} relations read): " + "; ".join(problems)
        )
    for problem in problems:
        log.info("GTFS from OSM: %s", problem)
    if problems:
        log.warning("GTFS from OSM: %d problem(s) reported in feed.problems", len(problems))
    return GTFSFeed(tables=_tables(patterns, routes, options), problems=tuple(problems))


class _NodeIndex:
    """Exact-position lookup of OSM node ids for shape vertices (lon/lat)."""

    def __init__(self, nodes: pd.DataFrame) -> None:
        self.ids = nodes["osm_id"].to_numpy() if len(nodes) else np.array([], dtype=object)
        xy = nodes[["x", "y"]].to_numpy(dtype=float) if len(nodes) else np.empty((0, 2))
        self.tree = cKDTree(xy) if len(xy) else None

    def lookup(self, coords: np.ndarray, fallback: str) -> np.ndarray:
        out = np.array([f"{fallback}_{i}" for i in range(len(coords))], dtype=object)
        if self.tree is not None:
            dist, idx = self.tree.query(coords, distance_upper_bound=1e-7)
            hit = np.isfinite(dist)
            out[hit] = self.ids[idx[hit]]
        return out


def _pattern(
    rel: str,
    row: pd.Series,
    stops: pd.DataFrame,
    nodes: _NodeIndex,
    options: OSMGTFSOptions,
    problems: list[str],
) -> _Pattern | None:
    if row.get("problems") and "missing" in str(row["problems"]) and options.skip_incomplete:
        problems.append(f"{rel}: left out (skip_incomplete): {row['problems']}")
        return None
    geom = row.geometry
    if geom is None or geom.is_empty:
        raise InputError("no member way geometry in the extract")
    parts = [np.asarray(g.coords) for g in shapely.get_parts(geom)]
    shape, gaps, flipped = chain_ways(parts, tolerance_m=options.gap_tolerance_m)
    if gaps:
        problems.append(
            f"{rel}: {len(gaps)} gap(s) between consecutive member ways (largest {max(gaps):.0f} m): "
            "ways unordered or missing; bridged by straight segments"
        )
    if flipped:
        log.debug("%s: %d member ways reversed to chain the shape", rel, flipped)
    seq = _member_stops(rel, row, stops, options, problems)
    if seq.empty:
        seq = _generated_stops(rel, shape, nodes, options.stop_spacing_m)
        problems.append(
            f"{rel}: no stop/platform members; {len(seq)} stops generated every >= {options.stop_spacing_m:g} m"
        )
    else:
        seq["along_m"] = _locate(shape, seq[["lon", "lat"]].to_numpy(), rel, problems)
    start, end = _span(rel, row, options, problems)
    headway = _tag_seconds(rel, row, "interval", problems) or options.headway_min * 60
    duration = _tag_seconds(rel, row, "duration", problems)
    line = row.get("route_master") or rel
    return _Pattern(rel, str(line), seq, shape, start, end, headway, duration)


def _member_stops(
    rel: str, row: pd.Series, stops: pd.DataFrame, options: OSMGTFSOptions, problems: list[str]
) -> pd.DataFrame:
    def located(ids: list[str]) -> pd.DataFrame:
        present = [i for i in ids if i in stops.index]
        if len(present) < len(ids):
            problems.append(f"{rel}: {len(ids) - len(present)} stop/platform members missing from the extract")
        frame = stops.loc[present]
        name = frame["name"] if "name" in frame.columns else pd.Series(None, index=frame.index)
        return pd.DataFrame(
            {"stop_id": present, "stop_name": name.to_numpy(), "lon": frame.geometry.x, "lat": frame.geometry.y}
        ).reset_index(drop=True)

    positions = located(json.loads(row.get("stop_ids") or "[]"))
    platforms = located(json.loads(row.get("platform_ids") or "[]"))
    if positions.empty:
        return platforms
    if platforms.empty:
        return positions
    dist, idx = cKDTree(_local_xy(platforms)).query(_local_xy(positions, like=platforms))
    paired = dist <= options.platform_pair_m
    partner = platforms.iloc[np.where(paired, idx, 0)].reset_index(drop=True)
    positions = pd.DataFrame(
        {col: np.where(paired, partner[col].to_numpy(object), positions[col].to_numpy(object)) for col in positions}
    ).astype({"lon": float, "lat": float})
    unpaired = len(platforms) - len(set(idx[paired]))
    if unpaired:
        problems.append(
            f"{rel}: {unpaired} platform(s) without a stop_position within {options.platform_pair_m:g} m; not used"
        )
    keep = positions["stop_id"].ne(positions["stop_id"].shift())
    return positions[keep].reset_index(drop=True)


def _local_xy(frame: pd.DataFrame, *, like: pd.DataFrame | None = None) -> np.ndarray:
    """Equirectangular metres around the reference frame's mean latitude (fine at city scale)."""
    lat0 = np.radians((like if like is not None else frame)["lat"].mean())
    k = np.pi / 180 * EARTH_RADIUS_M
    return np.column_stack([frame["lon"].to_numpy() * k * np.cos(lat0), frame["lat"].to_numpy() * k])


def _locate(shape: np.ndarray, points: np.ndarray, rel: str, problems: list[str]) -> np.ndarray:
    lat0 = np.radians(shape[:, 1].mean())
    scale = np.array([np.cos(lat0), 1.0]) * np.pi / 180 * EARTH_RADIUS_M
    line = shapely.linestrings(shape * scale)
    along = shapely.line_locate_point(line, shapely.points(points * scale))
    if np.any(np.diff(along) < 0):
        problems.append(f"{rel}: stop members are not in the order of the ways; times kept non-decreasing")
    return np.maximum.accumulate(along)


def _generated_stops(rel: str, shape: np.ndarray, nodes: _NodeIndex, spacing_m: float) -> pd.DataFrame:
    steps = haversine_m(shape[:-1, 0], shape[:-1, 1], shape[1:, 0], shape[1:, 1])
    cum = np.concatenate([[0.0], np.cumsum(steps)])
    chosen, last = [0], 0.0
    for i in range(1, len(cum)):  # sequential rule: distance since the previous chosen stop
        if cum[i] - last >= spacing_m:
            chosen.append(i)
            last = cum[i]
    if chosen[-1] != len(cum) - 1:
        chosen.append(len(cum) - 1)
    idx = np.asarray(chosen)
    ids = nodes.lookup(shape[idx], rel)
    return pd.DataFrame(
        {"stop_id": ids, "stop_name": None, "lon": shape[idx, 0], "lat": shape[idx, 1], "along_m": cum[idx]}
    )


def _span(rel: str, row: pd.Series, options: OSMGTFSOptions, problems: list[str]) -> tuple[float, float]:
    try:
        span = parse_opening_hours(row.get("opening_hours"))
    except InputError as exc:
        problems.append(f"{rel}: {exc}; default span used")
        span = None
    if span is None:
        start = float(pd.to_timedelta(options.start_time).total_seconds())
        return start, float(pd.to_timedelta(options.end_time).total_seconds())
    return span


def _tag_seconds(rel: str, row: pd.Series, key: str, problems: list[str]) -> float | None:
    try:
        value = parse_duration_s(row.get(key))
    except InputError as exc:
        problems.append(f"{rel}: {key}: {exc}; default used")
        return None
    if value is not None and value <= 0:
        problems.append(f"{rel}: {key}={row.get(key)!r} is not positive; default used")
        return None
    return value


def _tables(patterns: list[_Pattern], routes: pd.DataFrame, options: OSMGTFSOptions) -> dict[str, pd.DataFrame]:
    lines = pd.DataFrame({"relation": [p.relation for p in patterns], "line": [p.line for p in patterns]})
    info = routes.loc[lines["relation"]]
    agency_names = info["network"].fillna(info["operator"]) if "network" in info else info["operator"]
    agency, agency_ids = agency_table(agency_names.reset_index(drop=True), options.service)
    lines["agency_id"] = agency_ids.to_numpy()
    lines["ref"] = info["ref"].fillna(info["name"]).to_numpy()
    lines["name"] = info["name"].to_numpy()
    lines["route_type"] = info["route"].map(ROUTE_TYPES).fillna(3).astype(int).astype(str).to_numpy()
    first = lines.drop_duplicates("line")
    route_table = pd.DataFrame(
        {
            "route_id": first["line"],
            "agency_id": first["agency_id"],
            "route_short_name": first["ref"],
            "route_long_name": first["name"],
            "route_type": first["route_type"],
        }
    )
    direction = lines.groupby("line").cumcount()
    trips = pd.DataFrame(
        {
            "route_id": lines["line"],
            "service_id": options.service.service_id,
            "trip_id": lines["relation"],
            "trip_headsign": info["to"].to_numpy() if "to" in info else None,
            "direction_id": direction.where(direction < 2).astype("Int64").astype("string"),
            "shape_id": lines["relation"],
        }
    )
    tables = {"agency": agency, "routes": route_table, "trips": trips}
    tables |= _stop_tables(patterns, options)
    tables |= service_tables(options.service, publisher=options.service.agency_name)
    return tables


def _stop_tables(patterns: list[_Pattern], options: OSMGTFSOptions) -> dict[str, pd.DataFrame]:
    speed = options.speed_kmh / 3.6
    times, shapes, freqs = [], [], []
    for p in patterns:
        secs = p.stops["along_m"].to_numpy() / speed
        if p.duration_s and secs[-1] > 0:
            secs = secs * (p.duration_s / secs[-1])
        clock = format_gtfs_time(p.start_s + np.round(secs))
        times.append(p.stops.assign(trip_id=p.relation, stop_sequence=np.arange(len(p.stops)), t=clock))
        shapes.append(pd.DataFrame({"shape_id": p.relation, "lon": p.shape[:, 0], "lat": p.shape[:, 1]}))
        freqs.append((p.relation, p.start_s, p.end_s, p.headway_s))
    st = pd.concat(times, ignore_index=True)
    stops = st.drop_duplicates("stop_id")
    names = stops["stop_name"].fillna("Stop " + stops["stop_id"].astype(str))
    shape = pd.concat(shapes, ignore_index=True)
    fr = pd.DataFrame(freqs, columns=["trip_id", "start", "end", "headway"])
    return {
        "stops": pd.DataFrame(
            {
                "stop_id": stops["stop_id"],
                "stop_name": names,
                "stop_lat": stops["lat"].map("{:.7f}".format),
                "stop_lon": stops["lon"].map("{:.7f}".format),
            }
        ),
        "stop_times": pd.DataFrame(
            {
                "trip_id": st["trip_id"],
                "arrival_time": st["t"],
                "departure_time": st["t"],
                "stop_id": st["stop_id"],
                "stop_sequence": st["stop_sequence"].astype(str),
                "timepoint": "0",
            }
        ),
        "frequencies": frequencies_table(fr),
        "shapes": pd.DataFrame(
            {
                "shape_id": shape["shape_id"],
                "shape_pt_lat": shape["lat"].map("{:.7f}".format),
                "shape_pt_lon": shape["lon"].map("{:.7f}".format),
                "shape_pt_sequence": shape.groupby("shape_id").cumcount().astype(str),
            }
        ),
    }
