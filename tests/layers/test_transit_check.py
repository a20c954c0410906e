"""GTFS checking: real feeds with known defects and hostile feeds built in tmp_path."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from civicmap.errors import InputError, NotFoundError
from civicmap.layers.transit import check_gtfs, read_gtfs

GOOD = {
    "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\nA,Matatu SACCO,https://example.org,Africa/Nairobi\n",
    "stops.txt": "stop_id,stop_name,stop_lat,stop_lon\nS1,One,-1.2900,36.8200\nS2,Two,-1.2950,36.8250\n",
    "routes.txt": "route_id,agency_id,route_short_name,route_type\nR1,A,11,3\n",
    "trips.txt": "route_id,service_id,trip_id,shape_id\nR1,daily,T1,SH1\n",
    "stop_times.txt": (
        "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
        "T1,23:50:00,23:50:00,S1,0\nT1,24:30:00,24:30:00,S2,1\n"
    ),
    "calendar.txt": (
        "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
        "daily,1,1,1,1,1,1,1,20260101,20261231\n"
    ),
    "shapes.txt": (
        "shape_id,shape_pt_lat,shape_pt_lon,shape_pt_sequence\nSH1,-1.2900,36.8200,0\nSH1,-1.2950,36.8250,1\n"
    ),
}


def make_zip(path: Path, files: dict[str, str | bytes], *, folder: str = "") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(folder + name, text)
    return path


def errors(problems: list) -> list:
    return [p for p in problems if p.severity == "error"]


def test_good_feed_has_no_problem_and_times_past_24h_are_valid(tmp_path: Path) -> None:
    assert check_gtfs(make_zip(tmp_path / "ok.zip", GOOD)) == []


def test_folder_feed_is_read(tmp_path: Path) -> None:
    for name, text in GOOD.items():
        (tmp_path / name).write_text(text)
    feed, problems = read_gtfs(tmp_path)
    assert problems == [] and len(feed["stops"]) == 2


def test_subfolder_is_read_with_a_warning(tmp_path: Path) -> None:
    problems = check_gtfs(make_zip(tmp_path / "sub.zip", GOOD, folder="gtfs/"))
    assert [p.severity for p in problems] == ["warning"]
    assert "sub-folder 'gtfs'" in problems[0].message


def test_bom_is_stripped_and_reported(tmp_path: Path) -> None:
    files = dict(GOOD, **{"stops.txt": b"\xef\xbb\xbf" + GOOD["stops.txt"].encode()})
    feed, problems = read_gtfs(make_zip(tmp_path / "bom.zip", files))
    assert "stop_id" in feed["stops"].columns
    assert [(p.severity, p.file) for p in problems] == [("warning", "stops.txt")]


def test_missing_calendar_and_columns_are_errors(tmp_path: Path) -> None:
    files = {k: v for k, v in GOOD.items() if k != "calendar.txt"}
    files["routes.txt"] = "route_id,agency_id,route_short_name\nR1,A,11\n"
    found = {(p.file, p.field) for p in errors(check_gtfs(make_zip(tmp_path / "bad.zip", files)))}
    assert ("calendar.txt", None) in found
    assert ("routes.txt", "route_type") in found


def test_broken_references_bad_times_and_null_island(tmp_path: Path) -> None:
    files = dict(GOOD)
    files["trips.txt"] = "route_id,service_id,trip_id,shape_id\nR9,daily,T1,NOPE\n"
    files["stop_times.txt"] = (
        "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
        "T1,08:10:00,08:10:00,S1,0\nT1,08:05:00,08:05:00,S2,1\nT1,8h30,8h30,S3,2\nT2,09:00:00,09:00:00,S1,0\n"
    )
    files["stops.txt"] = GOOD["stops.txt"] + "S0,Null,0.0,0.0\n"
    found = {(p.file, p.field): p for p in errors(check_gtfs(make_zip(tmp_path / "refs.zip", files)))}
    assert found[("trips.txt", "route_id")].row_count == 1
    assert found[("trips.txt", "shape_id")].row_count == 1
    assert found[("stop_times.txt", "stop_id")].row_count == 1  # S3
    assert found[("stop_times.txt", "trip_id")].row_count == 1  # T2
    assert found[("stop_times.txt", "arrival_time")].row_count == 1  # 8h30 unparseable
    assert "backwards" in next(p.message for p in errors(check_gtfs(tmp_path / "refs.zip")) if "backwards" in p.message)
    assert found[("stops.txt", "stop_lat,stop_lon")].row_count == 1


def test_stop_far_from_shape_is_a_warning(tmp_path: Path) -> None:
    files = dict(
        GOOD, **{"stops.txt": "stop_id,stop_name,stop_lat,stop_lon\nS1,One,-1.2900,36.8200\nS2,Two,-1.2900,36.8300\n"}
    )
    problems = check_gtfs(make_zip(tmp_path / "far.zip", files), max_stop_shape_m=100)
    far = [p for p in problems if "from their trip's shape" in p.message]
    assert len(far) == 1 and far[0].severity == "warning" and far[0].row_count == 1


def test_zip_bomb_is_refused_before_extracting(tmp_path: Path) -> None:
    files = dict(GOOD, **{"shapes.txt": "shape_id\n" + "0" * (20 * 1024**2)})
    with pytest.raises(InputError, match="zip bomb"):
        read_gtfs(make_zip(tmp_path / "bomb.zip", files))


def test_missing_path_and_non_zip(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        check_gtfs(tmp_path / "nope.zip")
    (tmp_path / "fake.zip").write_text("not a zip")
    with pytest.raises(InputError, match="not a readable zip"):
        check_gtfs(tmp_path / "fake.zip")


def test_accra_trips_point_at_missing_shapes(realdata: Path) -> None:
    problems = errors(check_gtfs(realdata / "gtfs" / "accra_trotro_trufi_osm_gtfs.zip"))
    assert [(p.file, p.field, p.row_count) for p in problems] == [("trips.txt", "shape_id", 563)]


@pytest.mark.parametrize(
    "name", ["duitama_trufi_osm_gtfs.zip", "gtfskit_sample_gtfs.zip", "nairobi_digital_matatus_2014_gtfs.zip"]
)
def test_clean_real_feeds_have_no_errors(realdata: Path, name: str) -> None:
    assert errors(check_gtfs(realdata / "gtfs" / name)) == []


def test_amazon_feed_has_times_going_backwards(realdata: Path) -> None:
    feed, _ = read_gtfs(realdata / "gtfs" / "partridge_amazon-2017-08-06.zip")
    assert len(feed["trips"]) == 442
    back = [p for p in check_gtfs(realdata / "gtfs" / "partridge_amazon-2017-08-06.zip") if "backwards" in p.message]
    assert back and back[0].row_count == 3  # e.g. trip 608354: 16:12 then 16:05


def test_caltrain_bom_and_real_counts(realdata: Path) -> None:
    feed, problems = read_gtfs(realdata / "gtfs" / "partridge_caltrain-2017-07-24.zip")
    assert any(p.file == "shapes.txt" and "BOM" in p.message for p in problems)
    assert errors(check_gtfs(realdata / "gtfs" / "partridge_caltrain-2017-07-24.zip")) == []
    assert "shape_id" in feed["shapes"].columns
