"""Read and check GTFS Schedule feeds (zip or folder) without crashing on bad ones.

:func:`read_gtfs` loads every ``*.txt`` table as strings (UTF-8, BOM tolerated, files in one
zip sub-folder read with a warning) after guarding against zip bombs; :func:`check_gtfs`
returns every problem found as a :class:`GTFSProblem` with severity ``"error"`` (consumers
will misread or reject the feed) or ``"warning"`` (suspicious, usable). Rules follow the GTFS
Schedule reference (``google/transit`` gtfs/spec/en/reference.md): required files
(``agency``, ``stops``, ``routes``, ``trips``, ``stop_times``; ``calendar`` or
``calendar_dates``), required columns, unique ids, references between tables, ``H:MM:SS``
times (hours > 24 are valid) that never decrease along a trip, stop coordinates (range,
(0, 0)) and stops lying far from their trip's shape.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from civicmap.crs import WGS84, local_metric_crs
from civicmap.errors import InputError, NotFoundError
from civicmap.layers.transit._feed import REQUIRED_COLUMNS, GTFSFeed, parse_gtfs_time
from civicmap.types import BBox

__all__ = ["GTFSProblem", "check_gtfs", "check_tables", "read_gtfs"]

log = logging.getLogger(__name__)

_REQUIRED_FILES = ("agency", "stops", "routes", "trips", "stop_times")
#: (child table, column, parent table, parent column, severity)
_REFERENCES = (
    ("trips", "route_id", "routes", "route_id", "error"),
    ("stop_times", "trip_id", "trips", "trip_id", "error"),
    ("stop_times", "stop_id", "stops", "stop_id", "error"),
    ("frequencies", "trip_id", "trips", "trip_id", "error"),
    ("routes", "agency_id", "agency", "agency_id", "error"),
)
_KEYS = {"stops": "stop_id", "routes": "route_id", "trips": "trip_id", "agency": "agency_id"}


@dataclass(frozen=True)
class GTFSProblem:
    """One problem of a feed: ``severity`` is ``"error"`` or ``"warning"``; ``row_count`` rows are affected."""

    severity: str
    file: str
    field: str | None
    row_count: int
    message: str


def read_gtfs(
    path: str | Path, *, max_total_bytes: int = 2 * 1024**3, max_ratio: float = 200.0
) -> tuple[GTFSFeed, list[GTFSProblem]]:
    """Read a GTFS zip or folder into a :class:`GTFSFeed` of string tables, with the problems met while reading.

    Before extracting a zip, the declared uncompressed sizes are checked: a total above
    ``max_total_bytes`` or a member above 1 MiB whose compression ratio exceeds ``max_ratio``
    raises :class:`InputError` (zip bomb). Raises :class:`NotFoundError` for a missing path and
    :class:`InputError` for a file that is not a zip.
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"no GTFS feed at {path}; give a .zip file or a folder of .txt files")
    problems: list[GTFSProblem] = []
    raw = _read_folder(path) if path.is_dir() else _read_zip(path, max_total_bytes, max_ratio, problems)
    tables = {}
    for name, data in sorted(raw.items()):
        table = _parse_table(name, data, problems)
        if table is not None:
            tables[name] = table
    return GTFSFeed(tables=tables, problems=tuple(p.message for p in problems)), problems


def check_gtfs(path: str | Path, *, max_stop_shape_m: float = 100.0) -> list[GTFSProblem]:
    """Every problem of the GTFS feed at ``path`` (zip or folder); an empty list means none was found.

    ``max_stop_shape_m``: stops farther than this (metres, in the local UTM zone) from their
    trip's shape are reported as a warning. Zip bombs, missing and non-zip paths raise (see
    :func:`read_gtfs`); everything else is reported, never raised.
    """
    feed, problems = read_gtfs(path)
    problems += check_tables(feed, max_stop_shape_m=max_stop_shape_m)
    for problem in problems:
        log.log(logging.WARNING if problem.severity == "error" else logging.INFO, "GTFS %s", problem)
    return problems


def check_tables(feed: GTFSFeed, *, max_stop_shape_m: float = 100.0) -> list[GTFSProblem]:
    """The checks of :func:`check_gtfs` on a feed already in memory (e.g. one about to be written)."""
    t = feed.tables
    problems = _check_files(t)
    usable = {name: table for name, table in t.items() if _has_columns(name, table)}
    problems += _check_keys(usable) + _check_references(usable)
    if "stops" in usable:
        problems += _check_stops(usable["stops"])
    if "stop_times" in usable:
        problems += _check_times(usable["stop_times"])
    if "frequencies" in usable:
        problems += _check_frequencies(usable["frequencies"])
    problems += _check_shapes(usable, max_stop_shape_m)
    return problems


def _read_folder(path: Path) -> dict[str, bytes]:
    files = {p.stem: p.read_bytes() for p in sorted(path.glob("*.txt"))}
    if not files:
        raise InputError(f"folder {path} holds no GTFS .txt files")
    return files


def _read_zip(path: Path, max_total: int, max_ratio: float, problems: list[GTFSProblem]) -> dict[str, bytes]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path} is not a readable zip file ({exc}); give a GTFS .zip or a folder") from exc
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir() and i.filename.endswith(".txt")]
        infos = [i for i in infos if not i.filename.startswith("__MACOSX/")]
        _guard_bomb(path, infos, max_total, max_ratio)
        chosen = _choose_folder(path, infos, problems)
        return {PurePosixPath(i.filename).stem: archive.read(i) for i in chosen}


def _guard_bomb(path: Path, infos: list[zipfile.ZipInfo], max_total: int, max_ratio: float) -> None:
    total = sum(i.file_size for i in infos)
    if total > max_total:
        raise InputError(
            f"{path}: members would expand to {total:,} bytes (limit {max_total:,}); refusing a possible zip bomb. "
            "Raise max_total_bytes if the feed is really that large"
        )
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > 1024**2 and ratio > max_ratio:
            raise InputError(
                f"{path}: member {info.filename!r} expands {ratio:.0f}x ({info.file_size:,} bytes; limit "
                f"{max_ratio:.0f}x); refusing a possible zip bomb"
            )


def _choose_folder(path: Path, infos: list[zipfile.ZipInfo], problems: list[GTFSProblem]) -> list[zipfile.ZipInfo]:
    by_folder: dict[str, list[zipfile.ZipInfo]] = {}
    for info in infos:
        by_folder.setdefault(str(PurePosixPath(info.filename).parent), []).append(info)
    if "." in by_folder:
        return by_folder["."]
    if not by_folder:
        raise InputError(f"{path} holds no .txt files; a GTFS zip holds agency.txt, stops.txt ... at its root")
    folder = max(by_folder, key=lambda f: len(by_folder[f]))
    problems.append(
        GTFSProblem(
            "warning",
            folder,
            None,
            len(by_folder[folder]),
            f"GTFS files are inside the zip sub-folder {folder!r}, not at the root; read them anyway. "
            "Re-zip the files themselves so that consumers find them",
        )
    )
    return by_folder[folder]


def _parse_table(name: str, data: bytes, problems: list[GTFSProblem]) -> pd.DataFrame | None:
    file = f"{name}.txt"
    if data.startswith(b"\xef\xbb\xbf"):
        problems.append(GTFSProblem("warning", file, None, 0, f"{file} starts with a UTF-8 BOM (allowed; stripped)"))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.append(GTFSProblem("error", file, None, 0, f"{file} is not UTF-8 ({exc}); re-save it as UTF-8"))
        return None
    if not text.strip():
        problems.append(GTFSProblem("error", file, None, 0, f"{file} is empty (no header line)"))
        return None
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, ValueError) as exc:
        problems.append(GTFSProblem("error", file, None, 0, f"{file} is not valid CSV: {exc}"))
        return None
    table.columns = [str(c).strip() for c in table.columns]
    return table.apply(lambda col: col.str.strip()).replace("", None)


def _has_columns(name: str, table: pd.DataFrame) -> bool:
    return all(c in table.columns for c in REQUIRED_COLUMNS.get(name, ()))


def _check_files(tables: Mapping[str, pd.DataFrame]) -> list[GTFSProblem]:
    out = []
    for name in _REQUIRED_FILES:
        if name not in tables:
            out.append(GTFSProblem("error", f"{name}.txt", None, 0, f"required file {name}.txt is missing"))
        elif tables[name].empty:
            out.append(GTFSProblem("error", f"{name}.txt", None, 0, f"required file {name}.txt has no rows"))
    if "calendar" not in tables and "calendar_dates" not in tables:
        msg = "neither calendar.txt nor calendar_dates.txt is present; one of them is required to know service days"
        out.append(GTFSProblem("error", "calendar.txt", None, 0, msg))
    for name, table in tables.items():
        missing = [c for c in REQUIRED_COLUMNS.get(name, ()) if c not in table.columns]
        if missing:
            msg = f"{name}.txt lacks required column(s) {missing}; found {list(table.columns)}"
            out.append(GTFSProblem("error", f"{name}.txt", ",".join(missing), len(table), msg))
    return out


def _check_keys(t: dict[str, pd.DataFrame]) -> list[GTFSProblem]:
    out = []
    for name, key in _KEYS.items():
        if name in t and key in t[name].columns:
            dup = int(t[name][key].dropna().duplicated().sum())
            missing = int(t[name][key].isna().sum()) if name != "agency" else 0
            if dup:
                out.append(GTFSProblem("error", f"{name}.txt", key, dup, f"{dup} duplicate {key} values"))
            if missing:
                out.append(GTFSProblem("error", f"{name}.txt", key, missing, f"{missing} rows without {key}"))
    return out


def _check_references(t: dict[str, pd.DataFrame]) -> list[GTFSProblem]:
    out = []
    for child, col, parent, pcol, severity in _REFERENCES:
        if child not in t or col not in t[child].columns or parent not in t or pcol not in t[parent].columns:
            continue
        values = t[child][col].dropna()
        bad = values[~values.isin(set(t[parent][pcol].dropna()))]
        if len(bad):
            msg = f"{len(bad)} {child}.{col} values not in {parent}.txt (e.g. {bad.iloc[0]!r})"
            out.append(GTFSProblem(severity, f"{child}.txt", col, len(bad), msg))
    out += _check_shape_refs(t)
    if "trips" in t:
        services = set()
        for name in ("calendar", "calendar_dates"):
            services |= set(t[name]["service_id"].dropna()) if name in t else set()
        bad = t["trips"]["service_id"].dropna()
        bad = bad[~bad.isin(services)]
        if len(bad) and ("calendar" in t or "calendar_dates" in t):
            msg = f"{len(bad)} trips.service_id values not in calendar/calendar_dates (e.g. {bad.iloc[0]!r})"
            out.append(GTFSProblem("error", "trips.txt", "service_id", len(bad), msg))
    return out


def _check_shape_refs(t: dict[str, pd.DataFrame]) -> list[GTFSProblem]:
    if "trips" not in t or "shape_id" not in t["trips"].columns:
        return []
    used = t["trips"]["shape_id"].dropna()
    if used.empty:
        return []
    if "shapes" not in t:
        msg = f"{len(used)} trips reference a shape_id but shapes.txt does not exist (e.g. {used.iloc[0]!r})"
        return [GTFSProblem("error", "trips.txt", "shape_id", len(used), msg)]
    bad = used[~used.isin(set(t["shapes"]["shape_id"].dropna()))]
    if bad.empty:
        return []
    msg = f"{len(bad)} trips.shape_id values not in shapes.txt (e.g. {bad.iloc[0]!r})"
    return [GTFSProblem("error", "trips.txt", "shape_id", len(bad), msg)]


def _check_stops(stops: pd.DataFrame) -> list[GTFSProblem]:
    lat = pd.to_numeric(stops["stop_lat"], errors="coerce")
    lon = pd.to_numeric(stops["stop_lon"], errors="coerce")
    station_like = stops.get("location_type", pd.Series(None, index=stops.index)).isin(["3", "4"])
    out = []
    bad = (lat.isna() | lon.isna()) & ~station_like
    if bad.any():
        example = stops.loc[bad, "stop_id"].iloc[0]
        msg = f"{int(bad.sum())} stops without numeric stop_lat/stop_lon (e.g. stop_id {example!r})"
        out.append(GTFSProblem("error", "stops.txt", "stop_lat,stop_lon", int(bad.sum()), msg))
    outside = (lat.abs() > 90) | (lon.abs() > 180)
    if outside.any():
        msg = f"{int(outside.sum())} stops outside lat -90..90 / lon -180..180; are stop_lat and stop_lon swapped?"
        out.append(GTFSProblem("error", "stops.txt", "stop_lat,stop_lon", int(outside.sum()), msg))
    zero = (lat.abs() < 1e-6) & (lon.abs() < 1e-6)
    if zero.any():
        msg = f"{int(zero.sum())} stops at (0, 0) ('null island'): coordinates missing, not real positions"
        out.append(GTFSProblem("error", "stops.txt", "stop_lat,stop_lon", int(zero.sum()), msg))
    return out


def _check_times(st: pd.DataFrame) -> list[GTFSProblem]:
    out = []
    secs = {}
    for col in ("arrival_time", "departure_time"):
        if col not in st.columns:
            continue
        given = st[col].notna()
        secs[col] = parse_gtfs_time(st[col].fillna(""))
        bad = given & secs[col].isna()
        if bad.any():
            msg = f"{int(bad.sum())} {col} values are not H:MM:SS (e.g. {st.loc[bad, col].iloc[0]!r})"
            out.append(GTFSProblem("error", "stop_times.txt", col, int(bad.sum()), msg))
    if len(secs) < 2:
        msg = "stop_times.txt lacks arrival_time/departure_time; timepoints cannot be read"
        return [*out, GTFSProblem("error", "stop_times.txt", "arrival_time", len(st), msg)]
    early = secs["departure_time"] < secs["arrival_time"]
    if early.any():
        msg = f"{int(early.sum())} stop_times depart before they arrive"
        out.append(GTFSProblem("error", "stop_times.txt", "departure_time", int(early.sum()), msg))
    seq = pd.to_numeric(st["stop_sequence"], errors="coerce")
    if seq.isna().any():
        msg = f"{int(seq.isna().sum())} stop_sequence values are not integers"
        out.append(GTFSProblem("error", "stop_times.txt", "stop_sequence", int(seq.isna().sum()), msg))
    frame = pd.DataFrame(
        {"trip": st["trip_id"], "seq": seq, "arr": secs["arrival_time"], "dep": secs["departure_time"]}
    )
    frame = frame.dropna(subset=["seq"]).sort_values(["trip", "seq"], kind="stable")
    dup = frame.duplicated(["trip", "seq"])
    if dup.any():
        msg = f"{int(dup.sum())} repeated (trip_id, stop_sequence) pairs"
        out.append(GTFSProblem("error", "stop_times.txt", "stop_sequence", int(dup.sum()), msg))
    previous = frame.groupby("trip")["dep"].transform(lambda s: s.ffill().shift())
    back = frame["arr"] < previous
    if back.any():
        trips = frame.loc[back, "trip"]
        msg = f"times go backwards along {trips.nunique()} trips ({int(back.sum())} rows; e.g. trip {trips.iloc[0]!r})"
        out.append(GTFSProblem("error", "stop_times.txt", "arrival_time", int(back.sum()), msg))
    return out


def _check_frequencies(freq: pd.DataFrame) -> list[GTFSProblem]:
    start, end = parse_gtfs_time(freq["start_time"].fillna("")), parse_gtfs_time(freq["end_time"].fillna(""))
    headway = pd.to_numeric(freq["headway_secs"], errors="coerce")
    bad = start.isna() | end.isna() | (end <= start) | ~(headway > 0)
    if not bad.any():
        return []
    msg = f"{int(bad.sum())} frequencies rows with unreadable times, end_time <= start_time or headway_secs <= 0"
    return [GTFSProblem("error", "frequencies.txt", "start_time,end_time,headway_secs", int(bad.sum()), msg)]


def _check_shapes(t: dict[str, pd.DataFrame], max_m: float) -> list[GTFSProblem]:
    need = ("shapes", "trips", "stop_times", "stops")
    if any(n not in t for n in need) or "shape_id" not in t["trips"].columns:
        return []
    shapes = t["shapes"].assign(
        lat=pd.to_numeric(t["shapes"]["shape_pt_lat"], errors="coerce"),
        lon=pd.to_numeric(t["shapes"]["shape_pt_lon"], errors="coerce"),
        seq=pd.to_numeric(t["shapes"]["shape_pt_sequence"], errors="coerce"),
    )
    shapes = shapes.dropna(subset=["lat", "lon", "seq"]).sort_values(["shape_id", "seq"], kind="stable")
    counts = shapes.groupby("shape_id").size()
    shapes = shapes[shapes["shape_id"].isin(counts.index[counts >= 2])]
    stops = t["stops"].assign(
        lat=pd.to_numeric(t["stops"]["stop_lat"], errors="coerce"),
        lon=pd.to_numeric(t["stops"]["stop_lon"], errors="coerce"),
    )
    stops = stops.dropna(subset=["lat", "lon"]).set_index("stop_id")
    stops = stops[~stops.index.duplicated()]
    pairs = t["stop_times"][["trip_id", "stop_id"]].merge(t["trips"][["trip_id", "shape_id"]], on="trip_id")
    pairs = pairs.dropna().drop_duplicates(["shape_id", "stop_id"])
    pairs = pairs[pairs["shape_id"].isin(set(shapes["shape_id"])) & pairs["stop_id"].isin(stops.index)]
    if pairs.empty or shapes.empty:
        return []
    codes, uniques = pd.factorize(shapes["shape_id"])
    lines = gpd.GeoSeries(shapely.linestrings(shapes["lon"], shapes["lat"], indices=codes), crs=WGS84)
    points = gpd.GeoSeries(
        shapely.points(stops.loc[pairs["stop_id"], "lon"], stops.loc[pairs["stop_id"], "lat"]), crs=WGS84
    )
    west, south, east, north = points.total_bounds
    metric = local_metric_crs(BBox(west, south, east, north))
    lines_m, points_m = lines.to_crs(metric).to_numpy(), points.to_crs(metric).to_numpy()
    dist = shapely.distance(points_m, lines_m[uniques.get_indexer(pd.Index(pairs["shape_id"]))])
    far = dist > max_m
    if not far.any():
        return []
    worst = float(dist.max())
    msg = (
        f"{int(far.sum())} (shape, stop) pairs lie more than {max_m:g} m from their trip's shape "
        f"(worst {worst:.0f} m, stop {pairs['stop_id'].iloc[int(np.argmax(dist))]!r})"
    )
    return [GTFSProblem("warning", "stop_times.txt", "stop_id", int(far.sum()), msg)]
