from pathlib import Path

import pytest

from civicmap.errors import InputError, NotFoundError
from civicmap.sources.transit import read_gps_traces
from civicmap.types import BBox

AREA = BBox(39.23, -6.825, 39.25, -6.805)


def gpx(points: list[tuple[float, float, str | None]], *, tracks: int = 1) -> str:
    def trkpt(lat: float, lon: float, time: str | None) -> str:
        return f'<trkpt lat="{lat}" lon="{lon}">' + (f"<time>{time}</time>" if time else "") + "</trkpt>"

    track = "<trk><trkseg>" + "".join(trkpt(*p) for p in points) + "</trkseg></trk>"
    return (
        '<?xml version="1.0"?><gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">'
        + track * tracks
        + "</gpx>"
    )


RUN = [
    (-6.81, 39.24, "2026-11-01T04:00:00Z"),
    (-6.811, 39.241, "2026-11-01T04:00:05Z"),
    (-6.812, 39.242, "2026-11-01T04:00:10Z"),
]


def test_gpx_points_are_lon_lat_and_time_ordered(tmp_path: Path):
    (tmp_path / "route_1_run1.gpx").write_text(gpx(list(reversed(RUN))))
    traces = read_gps_traces(tmp_path, area=AREA)
    pts = traces.points
    assert traces.trace_ids == ["route_1_run1"] and traces.problems == ()
    assert pts.crs.to_epsg() == 4326
    assert pts.geometry.x.tolist() == [39.24, 39.241, 39.242]  # x is longitude
    assert pts["seq"].tolist() == [0, 1, 2] and pts["time"].is_monotonic_increasing
    assert str(pts["time"].dt.tz) == "UTC"


def test_csv_traces(tmp_path: Path):
    (tmp_path / "t.csv").write_text("time,latitude,longitude\n" + "\n".join(f"{t},{la},{lo}" for la, lo, t in RUN))
    assert len(read_gps_traces(tmp_path / "t.csv", area=AREA).points) == 3


def test_bad_traces_are_reported_and_good_ones_kept(tmp_path: Path):
    (tmp_path / "good.gpx").write_text(gpx(RUN))
    (tmp_path / "no_time.gpx").write_text(gpx([(la, lo, None) for la, lo, _ in RUN]))
    (tmp_path / "single.gpx").write_text(gpx(RUN[:1]))
    (tmp_path / "swapped.gpx").write_text(gpx([(lo, la, t) for la, lo, t in RUN]))
    (tmp_path / "broken.gpx").write_text("<gpx><trk>")
    (tmp_path / "nocols.csv").write_text("a,b\n1,2\n")
    traces = read_gps_traces(tmp_path, area=AREA)
    assert traces.trace_ids == ["good"]
    text = "\n".join(traces.problems)
    assert "no_time: no timestamps" in text
    assert "single: 1 point(s)" in text
    assert "layer 'swapped' lies in the area of interest only with longitude and latitude swapped" in text
    assert "broken.gpx: not a readable GPX file" in text
    assert "needs lat, lon and time columns" in text


def test_nothing_usable_is_an_error(tmp_path: Path):
    (tmp_path / "single.gpx").write_text(gpx(RUN[:1]))
    with pytest.raises(InputError, match="no usable GPS trace"):
        read_gps_traces(tmp_path)
    with pytest.raises(NotFoundError):
        read_gps_traces(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no \.gpx or \.csv"):
        read_gps_traces(tmp_path / "empty")


def test_several_tracks_in_one_file_are_several_traces(tmp_path: Path):
    (tmp_path / "multi.gpx").write_text(gpx(RUN, tracks=2))
    assert read_gps_traces(tmp_path).trace_ids == ["multi#0", "multi#1"]
