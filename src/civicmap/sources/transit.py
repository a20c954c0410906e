"""GPS traces of surveyed trips (GPX, or CSV with lat/lon/time columns).

Traces are what surveyors record riding informal minibus routes; the transit layer
turns them into routes, stops and a GTFS feed. Here they are only read and checked:
every point keeps its trace id, time (UTC) and order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from civicmap.crs import WGS84, check_lonlat
from civicmap.errors import InputError, NotFoundError
from civicmap.types import BBox, Provenance

__all__ = ["GPSTraces", "read_gps_traces"]

log = logging.getLogger(__name__)

_SUFFIXES = (".gpx", ".csv")


@dataclass(frozen=True)
class GPSTraces:
    """Points of one or more GPS traces, EPSG:4326 (lon/lat), sorted by trace then time.

    ``points`` columns: ``trace_id`` (file stem, plus ``#n`` for the n-th track of a file
    holding several), ``time`` (UTC), ``ele`` (metres, may be NaN), ``seq`` (order within
    the trace). ``problems`` lists traces left out and why.
    """

    points: gpd.GeoDataFrame
    problems: tuple[str, ...]
    provenance: Provenance

    @property
    def trace_ids(self) -> list[str]:
        """The ids of the traces read."""
        return sorted(self.points["trace_id"].unique())


def read_gps_traces(path: str | Path, *, area: BBox | None = None, licence: str | None = None) -> GPSTraces:
    """Read a GPX/CSV trace file, or every such file in a folder (sorted by name).

    CSV files need ``lat``/``latitude``, ``lon``/``longitude`` and ``time`` columns.
    A trace without timestamps, with fewer than two points, or lying outside ``area``
    (a lon/lat bbox; also catches swapped lat/lon) is left out and reported in
    ``problems``; :class:`InputError` if no trace at all is usable.
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"no GPS trace file or folder at {path}")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in _SUFFIXES) if path.is_dir() else [path]
    if not files:
        raise InputError(f"{path} holds no .gpx or .csv trace files")
    frames, problems = [], []
    for file in files:
        try:
            for trace_id, frame in _read_file(file):
                problem = _check_trace(trace_id, frame, area)
                if problem:
                    problems.append(problem)
                else:
                    frames.append(frame)
        except InputError as exc:
            problems.append(str(exc))
    for problem in problems:
        log.warning("GPS trace left out: %s", problem)
    if not frames:
        raise InputError(f"no usable GPS trace in {path}: " + "; ".join(problems))
    points = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=WGS84)
    return GPSTraces(points=points, problems=tuple(problems), provenance=Provenance(str(path), licence))


def _read_file(file: Path) -> list[tuple[str, gpd.GeoDataFrame]]:
    if file.suffix.lower() == ".gpx":
        try:
            raw = pyogrio.read_dataframe(file, layer="track_points")
        except Exception as exc:  # GDAL raises several types for corrupt files
            raise InputError(f"{file.name}: not a readable GPX file ({exc})") from exc
        raw["time"] = pd.to_datetime(raw.get("time"), utc=True, errors="coerce")
        groups = list(raw.groupby("track_fid", sort=True)) if len(raw) else []
        many = len(groups) > 1
        out = []
        for fid, g in groups:
            tid = f"{file.stem}#{fid}" if many else file.stem
            out.append((tid, _frame(tid, g.geometry.x, g.geometry.y, g["time"], g.get("ele"))))
        if not out:
            raise InputError(f"{file.name}: no track points")
        return out
    df = pd.read_csv(file)
    cols = {c.lower(): c for c in df.columns}
    lat, lon = cols.get("lat") or cols.get("latitude"), cols.get("lon") or cols.get("longitude")
    if not lat or not lon or "time" not in cols:
        raise InputError(f"{file.name}: a CSV trace needs lat, lon and time columns; found {list(df.columns)}")
    time = pd.to_datetime(df[cols["time"]], utc=True, errors="coerce")
    return [
        (file.stem, _frame(file.stem, df[lon], df[lat], time, df.get(cols.get("ele", "")) if "ele" in cols else None))
    ]


def _frame(trace_id: str, x: pd.Series, y: pd.Series, time: pd.Series, ele: pd.Series | None) -> gpd.GeoDataFrame:
    def numbers(values: object) -> pd.Series:
        return pd.to_numeric(pd.Series(values).reset_index(drop=True), errors="coerce")

    xs, ys = numbers(x), numbers(y)
    located = (xs.notna() & ys.notna()).to_numpy()
    frame = pd.DataFrame(
        {
            "trace_id": trace_id,
            "time": pd.Series(time).reset_index(drop=True),
            "ele": numbers(ele) if ele is not None else float("nan"),
        }
    )[located]
    frame["geometry"] = gpd.points_from_xy(xs[located], ys[located])
    frame = frame.sort_values("time", kind="stable").reset_index(drop=True)
    frame["seq"] = range(len(frame))
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=WGS84)


def _check_trace(trace_id: str, frame: gpd.GeoDataFrame, area: BBox | None) -> str | None:
    if len(frame) < 2:
        return f"{trace_id}: {len(frame)} point(s); a trace needs at least 2"
    if frame["time"].isna().all():
        return f"{trace_id}: no timestamps; travel times need <time> on every point"
    try:
        check_lonlat(frame, name=trace_id, area=area)
    except InputError as exc:
        return str(exc)
    if area is not None:
        b = frame.total_bounds
        if b[0] > area.east or b[2] < area.west or b[1] > area.north or b[3] < area.south:
            return f"{trace_id}: lies entirely outside the area of interest"
    return None
