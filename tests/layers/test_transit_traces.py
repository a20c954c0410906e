"""GTFS from GPS traces: the demo city's 12 runs, and hostile traces built in tmp_path."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from civicmap.errors import InputError
from civicmap.layers.transit import (
    ServiceOptions,
    TraceGTFSOptions,
    check_gtfs,
    feed_stops,
    gtfs_from_traces,
    write_gtfs,
)
from civicmap.layers.transit._runs import clean_runs
from civicmap.sources.osm import read_osm
from civicmap.sources.transit import read_gps_traces
from civicmap.types import BBox

DEMO = Path(__file__).resolve().parents[2] / "sample_data" / "demo"
OPTIONS = TraceGTFSOptions(service=ServiceOptions(timezone="Africa/Dar_es_Salaam", start_date=dt.date(2026, 1, 1)))
UTM = "EPSG:32737"


@pytest.fixture(scope="module")
def demo_osm():
    return read_osm(DEMO / "city.osm")


@pytest.fixture(scope="module")
def demo(demo_osm):
    traces = read_gps_traces(DEMO / "traces")
    return gtfs_from_traces(traces, street_graph=demo_osm.street_graph("drive"), options=OPTIONS)


def test_runs_group_into_three_lines_and_six_patterns(demo) -> None:
    runs = demo.runs.assign(line=demo.runs["trace_id"].str.extract(r"_(D\d)_")[0])
    assert runs.groupby("line")["route_id"].nunique().eq(1).all()  # one route per surveyed line
    assert runs["route_id"].nunique() == 3 and runs["trip_id"].nunique() == 6
    odd = runs["trace_id"].str.extract(r"run(\d)")[0].astype(int) % 2
    assert runs.groupby(["route_id", odd])["trip_id"].nunique().eq(1).all()  # direction = odd/even runs


def test_cleaning_removes_spikes_and_bridges_the_gap(demo) -> None:
    spikes = next(p for p in demo.feed.problems if "spike" in p)
    assert (
        int(spikes.split()[0]) >= 9
    )  # 10 planted (expected.json); one, in motion at 5 s sampling, is not a spike by speed
    assert len(demo.runs) == 12  # the 102 s gap does not split route_D2_run3
    assert demo.runs["off_street_share"].max() < 0.05


def test_stops_match_osm_stop_counts_and_positions(demo, demo_osm) -> None:
    per_trip = demo.feed["stop_times"].groupby("trip_id").size()
    route_of = demo.runs.groupby("trip_id")["trace_id"].first().str.extract(r"_(D\d)_")[0]
    assert sorted(zip(route_of[per_trip.index], per_trip, strict=True)) == [
        ("D1", 6),
        ("D1", 6),
        ("D2", 7),
        ("D2", 7),
        ("D3", 8),
        ("D3", 8),
    ]
    ours = feed_stops(demo.feed).to_crs(UTM)
    osm = demo_osm.transit_stops.to_crs(UTM)
    positions = osm[osm["public_transport"] == "stop_position"]
    platforms = osm[osm["public_transport"] == "platform"]
    to_position = np.array([ours.distance(p).min() for p in positions.geometry])
    to_platform = np.array([ours.distance(p).min() for p in platforms.geometry])
    assert len(ours) == len(positions) == 20
    assert to_position.max() < 6.0  # measured 4.3 m; mean 1.8 m
    assert to_platform.max() < 12.0  # platforms stand 7 m off the road; measured max 10.5 m


def test_demo_feed_passes_checks(demo, tmp_path: Path) -> None:
    path = write_gtfs(demo.feed, tmp_path / "traces.zip")
    assert check_gtfs(path) == []
    freq = demo.feed["frequencies"]
    assert set(freq["exact_times"]) == {"0"} and (freq["headway_secs"].astype(int) > 0).all()


def _csv(path: Path, lon0: float, lat0: float, *, start: str, shuffle: bool = False) -> Path:
    """A 1.2 km eastward run: 30 s dwell, 10 m/s, 30 s dwell, 1 s sampling."""
    t = np.arange(0, 180)
    x = np.clip((t - 30) * 10.0, 0, 1200)
    lon = lon0 + x / (111320 * np.cos(np.radians(lat0)))
    frame = pd.DataFrame({"time": pd.Timestamp(start) + pd.to_timedelta(t, unit="s"), "lat": lat0, "lon": lon})
    if shuffle:
        frame.iloc[[50, 51]] = frame.iloc[[51, 50]].to_numpy()
    frame.to_csv(path, index=False)
    return path


def test_out_of_order_points_are_sorted_and_off_street_runs_reported(tmp_path: Path, demo_osm) -> None:
    _csv(tmp_path / "a.csv", 39.10, -6.90, start="2026-01-05T05:00:00Z", shuffle=True)
    _csv(tmp_path / "b.csv", 39.10, -6.90, start="2026-01-05T05:20:00Z")
    result = gtfs_from_traces(read_gps_traces(tmp_path), street_graph=demo_osm.street_graph("drive"), options=OPTIONS)
    # read_gps_traces already re-sorts by time (silently); clean_runs reports it for frames given directly
    frame = pd.DataFrame({"trace_id": "a", "seq": [0, 1, 2], "t": [0.0, 2.0, 1.0], "x": [0.0, 20, 10], "y": 0.0})
    kwargs = {"max_speed_kmh": 120, "spike_m": 40, "split_gap_s": 300, "min_points": 2, "min_length_m": 1}
    cleaned, problems = clean_runs(frame, **kwargs)
    assert cleaned["x"].tolist() == [0, 10, 20] and any("not in time order" in p for p in problems)
    assert sum("leaves the street graph" in p for p in result.feed.problems) == 2
    assert len(result.feed["stops"]) == 2 and result.feed["frequencies"]["headway_secs"].iloc[0] == "1200"
    times = result.feed["stop_times"]["arrival_time"].tolist()
    assert times == ["08:00:00", "08:02:27"]  # 30 s dwell + (1200 - 30 m match radius) / 10 m/s


def test_bad_traces_are_left_out_with_reasons(tmp_path: Path) -> None:
    good = [shutil.copy(DEMO / "traces" / f"route_D1_run{k}.gpx", tmp_path) for k in (1, 3)]
    assert len(good) == 2
    (tmp_path / "notime.gpx").write_text(
        '<?xml version="1.0"?><gpx version="1.1" creator="t" xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>'
        '<trkpt lat="-6.81" lon="39.24"/><trkpt lat="-6.812" lon="39.242"/></trkseg></trk></gpx>'
    )
    (tmp_path / "one.csv").write_text("time,lat,lon\n2026-01-05T05:00:00Z,-6.81,39.24\n")
    _csv(tmp_path / "north.csv", 39.24, 6.81, start="2026-01-05T06:00:00Z")  # wrong hemisphere
    traces = read_gps_traces(tmp_path, area=BBox(39.229871, -6.824915, 39.249792, -6.805004))
    assert len(traces.problems) == 3
    result = gtfs_from_traces(traces, options=OPTIONS)
    assert len(result.feed["trips"]) == 1 and len(result.feed.problems) >= 3


def test_runs_too_short_raise(tmp_path: Path) -> None:
    (tmp_path / "tiny.csv").write_text(
        "time,lat,lon\n2026-01-05T05:00:00Z,-6.81,39.24\n2026-01-05T05:00:05Z,-6.8101,39.24\n"
    )
    with pytest.raises(InputError, match="no usable GPS run"):
        gtfs_from_traces(read_gps_traces(tmp_path))


def test_dwells_are_points_in_lonlat(demo) -> None:
    assert isinstance(demo.dwells, gpd.GeoDataFrame) and demo.dwells.crs.to_epsg() == 4326
    assert demo.dwells["stop_id"].notna().mean() > 0.9
