"""GTFS from OSM PTv2 relations: the demo city, the Duitama PBF against its published feed, broken relations."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import gtfs_kit as gk
import numpy as np
import pandas as pd
import pytest

from civicmap.errors import InputError
from civicmap.layers.transit import OSMGTFSOptions, ServiceOptions, check_gtfs, gtfs_from_osm, read_gtfs, write_gtfs
from civicmap.layers.transit._feed import parse_duration_s
from civicmap.layers.transit.from_osm import haversine_m, parse_opening_hours
from civicmap.sources.osm import read_osm

DEMO = Path(__file__).resolve().parents[2] / "sample_data" / "demo"
OPTIONS = OSMGTFSOptions(service=ServiceOptions(timezone="Africa/Dar_es_Salaam", start_date=dt.date(2026, 1, 1)))


@pytest.fixture(scope="module")
def demo_feed():
    return gtfs_from_osm(read_osm(DEMO / "city.osm"), options=OPTIONS)


def test_demo_lines_patterns_and_stops(demo_feed) -> None:
    assert len(demo_feed["routes"]) == 3 and len(demo_feed["trips"]) == 6
    per_trip = demo_feed["stop_times"].groupby("trip_id").size().to_dict()
    assert per_trip == {"r1": 6, "r2": 6, "r3": 7, "r4": 7, "r5": 8, "r6": 8}
    assert set(demo_feed["routes"]["route_short_name"]) == {"D1", "D2", "D3"}
    assert demo_feed.problems == ()
    # stops are the platforms (paired with their stop_position), not the stop positions
    assert demo_feed["stop_times"]["stop_id"].iloc[0] == "n2074"


def test_demo_schedule_tags(demo_feed) -> None:
    freq = demo_feed["frequencies"].set_index("trip_id")
    assert freq.loc["r1", "headway_secs"] == "600"  # interval=00:10
    assert freq.loc["r2", "headway_secs"] == "600"  # inherited from its route_master sibling
    assert freq.loc["r3", "headway_secs"] == "900"  # interval=15
    assert freq.loc["r5", "headway_secs"] == "900"  # default 15 min
    assert set(freq["exact_times"]) == {"0"}
    r1 = demo_feed["stop_times"][demo_feed["stop_times"]["trip_id"] == "r1"]
    assert (r1["arrival_time"].iloc[0], r1["arrival_time"].iloc[-1]) == ("06:00:00", "06:20:00")  # duration=00:20


def test_demo_feed_written_passes_checks_and_gtfs_kit(demo_feed, tmp_path: Path) -> None:
    path = write_gtfs(demo_feed, tmp_path / "demo.zip")
    assert check_gtfs(path) == []
    raw = path.read_bytes()
    assert b"\r\n" not in raw
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        feed = gk.read_feed(path, dist_units="km")
        quality = feed.assess_quality().set_index("indicator")["value"]
    assert quality["num_trips_missing_shapes"] == 0
    assert len(feed.feed_info) == 1 and feed.calendar["start_date"].iloc[0] == "20260101"


def test_duitama_matches_published_feed(realdata: Path) -> None:
    osm = read_osm(realdata / "osm" / "trufi_duitama_colombia.osm.pbf")
    feed = gtfs_from_osm(osm)
    published, _ = read_gtfs(realdata / "gtfs" / "duitama_trufi_osm_gtfs.zip")
    skipped = [p for p in feed.problems if "skip_incomplete" in p]
    assert len(skipped) == 2  # the two intercity relations with most ways missing
    pub_counts = published["stop_times"].merge(published["trips"], on="trip_id").groupby("shape_id").size()
    mine = feed["stop_times"].groupby("trip_id").size()
    mine.index = mine.index.str.lstrip("r")
    assert len(mine) == len(pub_counts) == 52
    assert (mine.sort_index() == pub_counts.sort_index()).all()
    assert len(feed["stops"]) == len(published["stops"]) == 1227
    assert len(feed["routes"]) == 26  # one per route_master; the published feed has one per relation (52)
    pub = published["stops"].set_index("stop_id")
    ours = feed["stops"].assign(key=feed["stops"]["stop_id"].str.lstrip("n")).set_index("key")
    both = ours.join(pub.add_suffix("_pub"), how="inner")
    dist = haversine_m(
        *(both[c].astype(float).to_numpy() for c in ("stop_lon", "stop_lat", "stop_lon_pub", "stop_lat_pub"))
    )
    assert len(both) == 1227 and dist.max() < 5.0


def _write_osm(path: Path, way_order: list[int], members_extra: str = "") -> Path:
    nodes = "".join(
        f'<node id="{i}" version="1" lat="{-6.8 + 0.001 * (i % 10)}" lon="{39.2 + 0.001 * i}"/>' for i in range(1, 8)
    )
    nodes += (
        '<node id="50" version="1" lat="-6.8" lon="39.2">'
        '<tag k="public_transport" v="platform"/><tag k="name" v="P"/></node>'
    )
    ways = {
        10: [1, 2, 3],
        11: [3, 4],  # will be listed reversed relative to travel
        12: [6, 7],  # not touching way 11: a gap
    }
    way_xml = "".join(
        f'<way id="{w}" version="1">' + "".join(f'<nd ref="{n}"/>' for n in ns) + '<tag k="highway" v="primary"/></way>'
        for w, ns in ways.items()
    )
    members = "".join(f'<member type="way" ref="{w}" role=""/>' for w in way_order) + members_extra
    rel = (
        '<relation id="100" version="1">' + members + '<tag k="type" v="route"/><tag k="route" v="bus"/>'
        '<tag k="ref" v="X1"/><tag k="interval" v="every ten"/></relation>'
    )
    path.write_text(f'<?xml version="1.0"?><osm version="0.6">{nodes}{way_xml}{rel}</osm>')
    return path


def test_unordered_ways_and_gaps_are_reported_but_built(tmp_path: Path) -> None:
    osm = read_osm(_write_osm(tmp_path / "r.osm", [10, 11, 12]))
    feed = gtfs_from_osm(osm)
    assert len(feed["trips"]) == 1
    assert any("1 gap(s)" in p for p in feed.problems)
    assert any("interval" in p and "default used" in p for p in feed.problems)
    assert feed["frequencies"]["headway_secs"].iloc[0] == "900"
    assert check_gtfs(write_gtfs(feed, tmp_path / "x.zip")) == []


def test_reversed_first_way_is_turned(tmp_path: Path) -> None:
    osm = read_osm(_write_osm(tmp_path / "r.osm", [11, 10]))
    feed = gtfs_from_osm(osm)
    shape = feed["shapes"]["shape_pt_lon"].astype(float).to_numpy()
    assert np.allclose(shape, [39.204, 39.203, 39.202, 39.201])
    assert not any("gap" in p for p in feed.problems)


def test_missing_members_reported_and_relation_skipped(tmp_path: Path) -> None:
    extra = '<member type="way" ref="999" role=""/><member type="node" ref="998" role="stop"/>'
    osm = read_osm(_write_osm(tmp_path / "r.osm", [10, 11], members_extra=extra))
    with pytest.raises(InputError, match="no route relation could be built"):
        gtfs_from_osm(osm)
    feed = gtfs_from_osm(osm, options=OSMGTFSOptions(skip_incomplete=False))
    assert any("missing" in p for p in feed.problems) and len(feed["trips"]) == 1


@pytest.mark.parametrize(
    ("text", "seconds"), [("15", 900), ("00:10", 600), ("PT10M", 600), ("1:00:30", 3630), (None, None), ("", None)]
)
def test_interval_forms(text: str | None, seconds: float | None) -> None:
    assert parse_duration_s(text) == seconds


def test_opening_hours_forms() -> None:
    assert parse_opening_hours("Mo-Su 05:00-22:00") == (5 * 3600, 22 * 3600)
    assert parse_opening_hours("24/7") == (0, 24 * 3600)
    assert parse_opening_hours("22:00-02:00") == (22 * 3600, 26 * 3600)
    with pytest.raises(InputError, match="opening_hours"):
        parse_opening_hours("sunrise-sunset")
    assert pd.isna(parse_opening_hours(None))
