"""civicmap.sources.survey: XLSForms through pyxform, submissions from every export format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
import xlrd

from civicmap.errors import FormError, InputError, NotFoundError
from civicmap.sources.survey import FormSchema, Submissions, read_form, read_submissions
from civicmap.types import BBox

SURVEY = "survey"
FORMS = {
    "osmfieldwork_buildings_archived.xls": ("all/gps/point",),
    "osmfieldwork_waterpoints_archived.xls": ("first_screen/gps/location",),
    "osmfieldwork_toilets_archived.xls": ("location_details/location",),
    "osmfieldwork_solidwaste_archived.xlsx": ("location",),
}
AREA = BBox(36.77, -1.33, 36.80, -1.30)  # around Kibera, Nairobi (lon/lat)
HEADER = "instanceID,respondent_name,respondent_phone,use,occupants,floor_area_m2,survey_date,location\n"


# ---------------------------------------------------------------- helpers


def _sheet_rows(path: Path, sheet: str) -> list[dict[str, object]]:
    """Non-blank rows of one sheet, read independently of pyxform (xlrd / openpyxl)."""
    if path.suffix == ".xls":
        sh = xlrd.open_workbook(path).sheet_by_name(sheet)
        data = [sh.row_values(i) for i in range(sh.nrows)]
    else:
        wb = openpyxl.load_workbook(path, read_only=True)
        data = [list(r) for r in wb[sheet].iter_rows(values_only=True)]
        wb.close()
    head = [str(h or "").strip().replace(" ", "_") for h in data[0]]
    return [dict(zip(head, r, strict=False)) for r in data[1:] if any(str(v or "").strip() for v in r)]


def _write_form(path: Path, survey: list[list[object]], *, choices: bool = True, sheet: str = SURVEY) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    for row in survey:
        ws.append(row)
    if choices:
        ch = wb.create_sheet("choices")
        for row in [
            ["list_name", "name", "label"],
            ["use", "residential", "Residential"],
            ["use", "commercial", "Commercial"],
            ["use", "mixed", "Mixed"],
        ]:
            ch.append(row)
    st = wb.create_sheet("settings")
    st.append(["form_id", "version", "form_title"])
    st.append(["building_survey", "2024-05-01", "Building survey"])
    wb.save(path)
    return path


SURVEY_ROWS = [
    ["type", "name", "label", "required", "constraint", "private"],
    ["note", "intro", "Ask for consent first", "", "", ""],
    ["text", "respondent_name", "Name", "", "", "yes"],
    ["text", "respondent_phone", "Phone", "", "", "TRUE()"],
    ["begin_group", "building", "Building", "", "", ""],
    ["select_one use", "use", "Use", "yes", "", ""],
    ["integer", "occupants", "Occupants", "", ". >= 0 and . <= 30", ""],
    ["decimal", "floor_area_m2", "Floor area", "", ". > 0", ""],
    ["end_group", "", "", "", "", ""],
    ["date", "survey_date", "Date", "", "", ""],
    ["text", "owner_mobile", "Owner's mobile", "", "", ""],
    ["geopoint", "location", "Location", "yes", "", ""],
]


@pytest.fixture
def form(tmp_path: Path) -> FormSchema:
    return read_form(_write_form(tmp_path / "building_survey.xlsx", SURVEY_ROWS))


def _good(i: int, *, lat: float = -1.31, lon: float = 36.78) -> dict[str, str]:
    return {
        "instanceID": f"uuid:{i:04d}",
        "respondent_name": f"Person {i}",
        "respondent_phone": "+254700000000",
        "use": "residential",
        "occupants": str(i % 10),
        "floor_area_m2": "42.5",
        "survey_date": "2024-05-02",
        "location": f"{lat + i * 1e-4} {lon + i * 1e-4} 1700 4.5",
    }


def _csv(path: Path, rows: list[dict[str, str]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _problems(subs: Submissions) -> dict[object, list[str]]:
    out: dict[object, list[str]] = {}
    for e in subs.errors:
        out.setdefault(e.row, []).append(f"{e.field}: {e.problem}")
    return out


# ---------------------------------------------------------------- forms


@pytest.mark.parametrize("name", sorted(FORMS))
def test_real_xlsforms_convert_with_counts_checked_independently(realdata: Path, name: str) -> None:
    path = realdata / "survey" / name
    survey = _sheet_rows(path, "survey")
    choices = _sheet_rows(path, "choices")
    types = [str(r.get("type") or "").strip() for r in survey]
    questions = [t for t in types if t and not re.match(r"(begin|end)[ _]", t)]
    or_other = sum("or_other" in t for t in types)
    has_instance_id = any(str(r.get("name")) == "instanceID" for r in survey)

    form = read_form(path)

    # pyxform adds meta/instanceID (unless present) and an "<name>_other" text per or_other select
    assert len(form.fields) == len(questions) + (0 if has_instance_id else 1) + or_other
    lists = {str(r["list_name"]) for r in choices if r.get("list_name")}
    assert set(form.choices) == lists
    assert sum(len(v) for v in form.choices.values()) == len(choices) + or_other  # + "other" per or_other list
    assert tuple(f.key for f in form.geo_fields) == FORMS[name]
    assert form.xform_xml is not None and "<h:html" in form.xform_xml
    assert form.field("meta/instanceID").type == "calculate"
    assert {f.name for f in form.private_fields} >= {"phonenumber", "deviceid"}


def test_buildings_form_details(realdata: Path) -> None:
    form = read_form(realdata / "survey" / "osmfieldwork_buildings_archived.xls")
    assert (form.form_id, form.version, form.title) == ("buildings", "2023-05-02 10:43:54", "Buildings")
    point = form.field("point")
    assert (point.type, point.path, point.required, point.relevant) == (
        "geopoint",
        "all/gps",
        True,
        "(${xlocation}='')",
    )
    assert form.field("existing").type == "select_one_from_file"
    assert form.field("category").choice_list == "category"
    assert form.field("warmup").type == "start-geopoint"  # not a geometry field
    assert form.field("instructions").type == "note"


def test_toilets_phone_question_private_by_name_pattern(realdata: Path) -> None:
    form = read_form(realdata / "survey" / "osmfieldwork_toilets_archived.xls")
    phone = form.field("mgmt_details/phone")
    assert (phone.private, phone.private_reason) == (True, "name pattern")
    assert not form.field("manager").private


def test_built_form_schema(form: FormSchema) -> None:
    assert (form.form_id, form.version, form.title) == ("building_survey", "2024-05-01", "Building survey")
    assert [f.key for f in form.private_fields] == ["respondent_name", "respondent_phone", "owner_mobile"]
    assert form.field("respondent_name").private_reason == "private column"
    assert form.field("owner_mobile").private_reason == "name pattern"
    occ = form.field("occupants")
    assert (occ.path, occ.type, occ.min_value, occ.max_value, occ.min_exclusive) == (
        "building",
        "integer",
        0,
        30,
        False,
    )
    area = form.field("floor_area_m2")
    assert (area.min_value, area.max_value, area.min_exclusive) == (0, None, True)
    assert form.field("use").choice_list == "use"
    assert [c.name for c in form.choices["use"]] == ["residential", "commercial", "mixed"]
    assert "private" not in (form.xform_xml or "")  # the flag stays out of what phones download
    with pytest.raises(NotFoundError, match="no field 'nope'"):
        form.field("nope")


@pytest.mark.parametrize(
    ("rows", "kwargs", "pattern"),
    [
        ([["type", "name", "label"], ["txet", "a", "A"]], {}, r"row 2: pyxform says: Unknown question type 'txet'"),
        ([["type", "name", "label"], ["text", "a", "A"], ["integer", "a", "B"]], {}, r"\[row : 3\].*unique"),
        ([["type", "name", "label"], ["select_one colours", "c", "C"]], {}, r"List name not in choices.*colours"),
        ([["type", "name", "label"], ["text", "a", "A"]], {"sheet": "questions"}, r"sheet named 'survey'"),
        ([["type", "name", "label", "private"], ["text", "a", "A", "maybe"]], {}, r"'private' is 'maybe'"),
    ],
    ids=["unknown-type", "duplicate-name", "missing-list", "no-survey-sheet", "bad-private"],
)
def test_bad_xlsforms_raise_form_error(tmp_path: Path, rows: list[list[str]], kwargs: dict, pattern: str) -> None:
    path = _write_form(tmp_path / "bad.xlsx", rows, **kwargs)
    with pytest.raises(FormError, match=pattern):
        read_form(path)


def test_form_not_a_spreadsheet(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        read_form(tmp_path / "missing.xlsx")
    (tmp_path / "form.csv").write_text("type,name\n")
    with pytest.raises(FormError, match=r"\.xls or \.xlsx"):
        read_form(tmp_path / "form.csv")


# ---------------------------------------------------------------- real exports


def test_odk_central_csv_export_schemaless(realdata: Path) -> None:
    subs = read_submissions(realdata / "survey" / "osmfieldwork_odk_central_export_buildings.csv", None)
    gdf = subs.frame
    assert len(gdf) == 5 and subs.errors == [] and subs.duplicates == 0
    assert gdf.crs.to_epsg() == 4326
    first = gdf.loc["uuid:fd2f9db8-ffba-4283-8db2-4f1eecac9a20"]
    assert first.geometry.x == pytest.approx(-106.4166233)  # x is longitude
    assert first.geometry.y == pytest.approx(38.4064955)
    assert first["highway_point_accuracy_m"] == pytest.approx(19.84600067138672)
    assert first["buildings/name"] == "Tomichi creek trading post"  # "name" is also in group "more"
    assert first["submitted_at"] == pd.Timestamp("2021-09-25T15:24:14.698Z")
    assert (gdf.geometry.x.between(-108, -106).all(), gdf.geometry.y.between(38, 38.5).all()) == (True, True)
    assert set(gdf["source_format"]) == {"odk_central_csv"}
    assert gdf["source_row"].tolist() == [1, 2, 3, 4, 5]


def test_odk_central_csv_against_the_archived_buildings_form(realdata: Path) -> None:
    # The export is from another version of the buildings form: its questions do not match.
    form = read_form(realdata / "survey" / "osmfieldwork_buildings_archived.xls")
    subs = read_submissions(realdata / "survey" / "osmfieldwork_odk_central_export_buildings.csv", form)
    assert "gps-highway_point" in subs.unread_columns and "buildings-name" in subs.unread_columns
    assert len(subs.frame) == 0
    assert {(e.field, e.problem.split(" (")[0]) for e in subs.errors} == {("category", "required answer is missing")}


def test_odk_central_odata_json(realdata: Path) -> None:
    path = realdata / "survey" / "osmfieldwork_odk_central_odata_camps.json"
    raw = json.loads(path.read_text())["value"]
    subs = read_submissions(path, None, geometry_field="where")
    gdf = subs.frame
    assert len(gdf) == 90 == len(raw) and subs.errors == []
    for rec in (raw[0], raw[57]):
        lon, lat = rec["all"]["second_screen"]["where"]["coordinates"][:2]
        got = gdf.loc[rec["__id"]]
        assert (got.geometry.x, got.geometry.y) == (pytest.approx(lon), pytest.approx(lat))
    assert gdf.loc[raw[1]["__id"], "where_accuracy_m"] == pytest.approx(25.81100082397461)
    assert gdf.loc[raw[0]["__id"], "form_version"] == "2023-07-16 16:06:18"
    assert gdf.loc[raw[0]["__id"], "camptype"] == "camp_pitch"
    # the start-geopoint "warmup" is kept as WKT (lon lat)
    lon, lat = raw[0]["warmup"]["coordinates"][:2]
    assert gdf.loc[raw[0]["__id"], "warmup"] == f"POINT ({lon} {lat})"
    default = read_submissions(path, None)  # without geometry_field: the first geo answer (warmup)
    assert default.frame.geometry.iloc[0].x == pytest.approx(lon)


# ---------------------------------------------------------------- validation, CSV


def test_csv_validation_reports_every_problem_and_keeps_good_rows(tmp_path: Path, form: FormSchema) -> None:
    rows = [_good(i) for i in range(1, 11)]
    rows[1]["occupants"] = "three"  # wrong type
    rows[2]["location"] = "36.7803 -1.3097 1700 5"  # lat/lon swapped
    rows[3]["location"] = "95.0 36.78"  # latitude out of range
    rows[4]["use"] = "church"  # not in the choice list
    rows[5]["use"] = ""  # required missing
    rows[6]["occupants"] = "31"  # above the constraint
    rows[7]["survey_date"] = "02/05/2024"  # not ISO
    rows[7]["floor_area_m2"] = "0"  # ". > 0"
    subs = read_submissions(_csv(tmp_path / "subs.csv", rows), form, area=AREA)

    assert len(subs.frame) == 3 and sorted(subs.frame.index) == ["uuid:0001", "uuid:0009", "uuid:0010"]
    got = _problems(subs)
    assert got == {
        2: ["occupants: not an integer"],
        3: [
            "location: latitude and longitude look swapped (ODK geo answers are 'latitude longitude'; "
            "GeoJSON is [lon, lat])"
        ],
        4: ["location: coordinates out of range: latitude must lie in [-90, 90], longitude in [-180, 180]"],
        5: ["use: not in choice list 'use' (expected one of: residential, commercial, mixed)"],
        6: ["use: required answer is missing (the form marks it required)"],
        7: ["occupants: above the maximum <= 30 (constraint '. >= 0 and . <= 30')"],
        8: [
            "floor_area_m2: below the minimum > 0 (constraint '. > 0')",
            "survey_date: not a date (expected YYYY-MM-DD)",
        ],
    }
    assert next(e for e in subs.errors if e.row == 2).value == "three"
    gdf = subs.frame
    assert gdf["occupants"].dtype == "Int64" and gdf["floor_area_m2"].dtype == "Float64"
    assert str(gdf["survey_date"].dtype).startswith("datetime64")
    assert gdf["use"].dtype == "string"
    assert gdf.loc["uuid:0001", "location_altitude_m"] == 1700
    assert gdf.loc["uuid:0001"].geometry.x == pytest.approx(36.7801)  # lon from the 2nd ODK number
    assert gdf.loc["uuid:0001"].geometry.y == pytest.approx(-1.3099)
    assert list(gdf.columns[:3]) == ["instance_id", "respondent_name", "respondent_phone"]
    assert set(gdf["source_format"]) == {"csv"}
    assert subs.provenance.details["rows_read"] == 10 and subs.provenance.details["rows_kept"] == 3


def test_swap_without_area_only_flags_impossible_latitudes(tmp_path: Path, form: FormSchema) -> None:
    rows = [_good(1), _good(2)]
    rows[0]["location"] = "36.78 -1.31"  # plausible both ways: cannot be told without an area
    rows[1]["location"] = "-106.4 38.4"  # latitude -106: impossible, swapped it is fine
    subs = read_submissions(_csv(tmp_path / "s.csv", rows), form)
    assert list(subs.frame.index) == ["uuid:0001"]
    assert [e.problem.split(" (")[0] for e in subs.errors] == ["latitude and longitude look swapped"]


def test_duplicates_identical_conflicting_and_missing_ids(tmp_path: Path, form: FormSchema) -> None:
    rows = [_good(1), _good(2), _good(1), _good(3), _good(2), _good(4)]
    rows[4]["occupants"] = "7"  # same instanceID as row 2, different answers
    rows[5]["instanceID"] = ""
    subs = read_submissions(_csv(tmp_path / "d.csv", rows), form)
    assert subs.duplicates == 1
    assert sorted(subs.frame.index) == ["uuid:0001", "uuid:0002", "uuid:0003"]
    assert subs.frame.loc["uuid:0002", "occupants"] == 2  # the first kept
    got = _problems(subs)
    assert got[5] == [
        "instanceID: conflicting duplicate: this instanceID was already read (row 2) with different answers; "
        "the first was kept"
    ]
    assert got[6][0].startswith("instanceID: missing meta/instanceID")
    assert set(got) == {5, 6}


def test_same_submission_in_two_files_is_stored_once(tmp_path: Path, form: FormSchema) -> None:
    a = _csv(tmp_path / "a.csv", [_good(1), _good(2)])
    b = _csv(tmp_path / "b.csv", [_good(2), _good(3)])
    subs = read_submissions([a, b], form)
    assert (len(subs.frame), subs.duplicates, subs.errors) == (3, 1, [])
    assert subs.frame.loc["uuid:0003", "source_file"] == "b.csv"


def test_odk_central_style_csv_with_groups_and_split_geopoints(tmp_path: Path, form: FormSchema) -> None:
    text = (
        "SubmissionDate,respondent_name,respondent_phone,building-use,building-occupants,building-floor_area_m2,"
        "survey_date,location-Latitude,location-Longitude,location-Altitude,location-Accuracy,meta-instanceID,KEY,"
        "SubmitterName,ReviewState\n"
        "2024-05-02T10:00:00.000Z,A,1,mixed,4,30.5,2024-05-02,-1.3101,36.7802,1700,3.9,uuid:a,uuid:a,ann,approved\n"
        "2024-05-02T11:00:00.000Z,B,2,mixed,x,30.5,2024-05-02,-1.3102,36.7803,,,uuid:b,uuid:b,ann,rejected\n"
    )
    (tmp_path / "central.csv").write_text(text)
    subs = read_submissions(tmp_path / "central.csv", form, area=AREA)
    assert list(subs.frame.index) == ["uuid:a"]
    row = subs.frame.loc["uuid:a"]
    assert (row["use"], row["occupants"], row["review_state"], row["source_format"]) == (
        "mixed",
        4,
        "approved",
        "odk_central_csv",
    )
    assert (row.geometry.x, row.geometry.y, row["location_accuracy_m"]) == (36.7802, -1.3101, 3.9)
    assert [(e.row, e.field, e.value) for e in subs.errors] == [(2, "occupants", "x")]
    assert subs.unread_columns == ()


def test_empty_inputs_raise_input_error(tmp_path: Path, form: FormSchema) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match=r"empty\.csv is empty"):
        read_submissions(tmp_path / "empty.csv", form)
    (tmp_path / "header.csv").write_text(HEADER)
    with pytest.raises(InputError, match=r"header\.csv: .*no submissions"):
        read_submissions(tmp_path / "header.csv", form)
    (tmp_path / "odata.json").write_text('{"value": []}')
    with pytest.raises(InputError, match="no submissions"):
        read_submissions(tmp_path / "odata.json", form)


def test_unknown_or_mislabelled_formats(tmp_path: Path, form: FormSchema) -> None:
    (tmp_path / "subs.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(InputError, match=r"unknown submissions format '\.xlsx'"):
        read_submissions(tmp_path / "subs.xlsx", form)
    (tmp_path / "subs.csv").write_text('{"value": []}')
    with pytest.raises(InputError, match=r"extension \.csv but its content"):
        read_submissions(tmp_path / "subs.csv", form)
    (tmp_path / "odd.json").write_text('{"rows": 3}')
    with pytest.raises(InputError, match="unknown layout"):
        read_submissions(tmp_path / "odd.json", form)
    with pytest.raises(InputError, match="does not exist"):
        read_submissions(tmp_path / "nope.csv", form)


# ---------------------------------------------------------------- KoBo, GeoJSON, XML


def test_kobo_json_export(tmp_path: Path, form: FormSchema) -> None:
    records = [
        {
            "_id": 101,
            "respondent_name": "A",
            "building/use": "commercial",
            "building/occupants": 12,
            "building/floor_area_m2": 80.25,
            "survey_date": "2024-05-03",
            "location": "-1.3111 36.7811 1699 5",
            "meta/instanceID": "uuid:k1",
            "_geolocation": [-1.3111, 36.7811],
            "_submission_time": "2024-05-03T08:00:00",
            "__version__": "vAbC",
            "_attachments": [],
        },
        {
            "_id": 102,
            "building/use": "residential commercial",
            "building/occupants": 2,
            "location": "-1.3112 36.7812",
            "meta/instanceID": "uuid:k2",
            "_geolocation": [-1.3112, 36.7812],
            "_submission_time": "2024-05-03T09:00:00",
            "__version__": "vAbC",
        },
    ]
    path = tmp_path / "kobo.json"
    path.write_text(json.dumps(records))
    subs = read_submissions(path, form)
    assert list(subs.frame.index) == ["uuid:k1"]
    row = subs.frame.loc["uuid:k1"]
    assert (row["use"], row["occupants"], row["floor_area_m2"], row["form_version"]) == (
        "commercial",
        12,
        80.25,
        "vAbC",
    )
    assert row["submitted_at"] == pd.Timestamp("2024-05-03T08:00:00Z")  # KoBo times are UTC
    assert (row.geometry.x, row.geometry.y) == (36.7811, -1.3111)
    assert [(e.row, e.field) for e in subs.errors] == [(2, "use")]  # select_one given two values


def test_kobo_geolocation_used_when_the_geopoint_key_is_absent(tmp_path: Path, form: FormSchema) -> None:
    rec = {"building/use": "mixed", "meta/instanceID": "uuid:g", "_geolocation": [-1.3, 36.79]}
    (tmp_path / "k.json").write_text(json.dumps({"count": 1, "results": [rec]}))
    subs = read_submissions(tmp_path / "k.json", form)
    assert subs.errors == [] and subs.frame.geometry.iloc[0].coords[0] == (36.79, -1.3)


def _feature(i: int, x: float, y: float, **props: object) -> dict[str, object]:
    good = _good(i)
    base = {k: v for k, v in good.items() if k not in ("location", "instanceID")}
    base["building/use"] = base.pop("use")
    return {
        "type": "Feature",
        "properties": {"instanceID": good["instanceID"], **base, **props},
        "geometry": {"type": "Point", "coordinates": [x, y]},
    }


def test_geojson_with_legacy_crs_member_is_reprojected(tmp_path: Path, form: FormSchema) -> None:
    # EPSG:3857 metres for lon 36.78, lat -1.31 (computed independently with the spherical formula)
    r = 6378137.0
    x, y = np.radians(36.78) * r, r * np.log(np.tan(np.pi / 4 + np.radians(-1.31) / 2))
    fc = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}},
        "features": [_feature(1, x, y), _feature(2, x + 100, y, occupants="x")],
    }
    (tmp_path / "s.geojson").write_text(json.dumps(fc))
    subs = read_submissions(tmp_path / "s.geojson", form, area=AREA)
    assert list(subs.frame.index) == ["uuid:0001"]
    pt = subs.frame.geometry.iloc[0]
    assert (pt.x, pt.y) == (pytest.approx(36.78, abs=1e-9), pytest.approx(-1.31, abs=1e-9))
    assert [(e.row, e.field, e.problem) for e in subs.errors] == [(2, "occupants", "not an integer")]
    assert subs.frame["source_format"].iloc[0] == "geojson"


def test_geojson_swapped_and_wrong_geometry_type(tmp_path: Path, form: FormSchema) -> None:
    line = _feature(3, 0, 0)
    line["geometry"] = {"type": "LineString", "coordinates": [[36.78, -1.31], [36.79, -1.31]]}
    fc = {"type": "FeatureCollection", "features": [_feature(1, 36.78, -1.31), _feature(2, -1.31, 36.78), line]}
    (tmp_path / "s.geojson").write_text(json.dumps(fc))
    subs = read_submissions(tmp_path / "s.geojson", form, area=AREA)
    assert list(subs.frame.index) == ["uuid:0001"]
    got = _problems(subs)
    assert got[2] == [
        "location: latitude and longitude look swapped (ODK geo answers are 'latitude longitude'; "
        "GeoJSON is [lon, lat])"
    ]
    assert got[3][0].startswith("location: geometry type is not Point")


def _xml(i: int, **over: str) -> str:
    g = _good(i) | over
    return (
        '<?xml version="1.0"?>\n'
        '<data xmlns:jr="http://openrosa.org/javarosa" id="building_survey" version="2024-05-01">'
        f"<respondent_name>{g['respondent_name']}</respondent_name><respondent_phone>1</respondent_phone>"
        f"<building><use>{g['use']}</use><occupants>{g['occupants']}</occupants>"
        f"<floor_area_m2>{g['floor_area_m2']}</floor_area_m2></building><survey_date>{g['survey_date']}</survey_date>"
        f"<location>{g['location']}</location>"
        f"<meta><instanceID>{g['instanceID']}</instanceID></meta></data>"
    )


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    "<data><respondent_name>&lol3;</respondent_name><meta><instanceID>uuid:bomb</instanceID></meta></data>"
)
XXE = (
    '<?xml version="1.0"?>\n<!DOCTYPE data [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<data><respondent_name>&xxe;</respondent_name><meta><instanceID>uuid:xxe</instanceID></meta></data>"
)


def test_odk_xml_instance_folders(tmp_path: Path, form: FormSchema) -> None:
    root = tmp_path / "instances"
    for name, text in {
        "uuid-1/submission.xml": _xml(1),
        "uuid-2/submission.xml": _xml(2, use="hotel"),
        "uuid-3/submission.xml": _xml(3).replace(' id="building_survey"', ' id="other_form"'),
        "bomb/submission.xml": BILLION_LAUGHS,
        "xxe/submission.xml": XXE,
        "broken/submission.xml": "<data><unclosed></data>",
        "uuid-4.xml": _xml(4, instanceID=""),
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "uuid-1" / "photo.jpg").write_bytes(b"\xff\xd8")  # attachments are ignored

    subs = read_submissions(root, form)
    assert list(subs.frame.index) == ["uuid:0001"]
    row = subs.frame.loc["uuid:0001"]
    assert (row["occupants"], row["form_version"], row["source_file"]) == (1, "2024-05-01", "uuid-1/submission.xml")
    got = _problems(subs)
    assert got["uuid-2/submission.xml"] == [
        "use: not in choice list 'use' (expected one of: residential, commercial, mixed)"
    ]
    assert got["uuid-3/submission.xml"] == ["form_id: submission is for another form (expected 'building_survey')"]
    for bad in ("bomb/submission.xml", "xxe/submission.xml"):
        assert got[bad] == ["None: unsafe XML refused, not expanded (DTDForbidden): remove the DTD/entities"]
    assert got["broken/submission.xml"][0].startswith("None: not well-formed XML")
    assert got["uuid-4.xml"][0].startswith("instanceID: missing meta/instanceID")
    assert "lol" not in repr(subs.errors) and "root:" not in repr(subs.errors)


def test_single_unsafe_xml_file_is_a_row_error(tmp_path: Path, form: FormSchema) -> None:
    (tmp_path / "bomb.xml").write_text(BILLION_LAUGHS)
    subs = read_submissions(tmp_path / "bomb.xml", form)
    assert len(subs.frame) == 0
    assert [(e.row, e.problem.split(" (")[0]) for e in subs.errors] == [
        ("bomb.xml", "unsafe XML refused, not expanded")
    ]


def test_geotrace_and_geoshape_rules(tmp_path: Path) -> None:
    rows = [
        ["type", "name", "label"],
        ["geoshape", "plot", "Plot outline"],
        ["geotrace", "drain", "Drain"],
    ]
    form = read_form(_write_form(tmp_path / "shapes.xlsx", rows, choices=False))
    ring = "-1.31 36.78 0 0;-1.31 36.79 0 0;-1.32 36.79 0 0;-1.31 36.78 0 0"
    data = [
        {"instanceID": "uuid:1", "plot": ring, "drain": "-1.31 36.78;-1.32 36.78"},
        {"instanceID": "uuid:2", "plot": ring.rsplit(";", 1)[0], "drain": "-1.31 36.78"},
        {"instanceID": "uuid:3", "plot": "-1.31 36.78;-1.31 36.79;-1.32 36.79;-1.33 36.70", "drain": "abc def"},
    ]
    subs = read_submissions(_csv(tmp_path / "g.csv", data), form)
    assert list(subs.frame.index) == ["uuid:1"]
    poly = subs.frame.geometry.iloc[0]
    assert poly.geom_type == "Polygon" and len(poly.exterior.coords) == 4
    assert poly.exterior.coords[1] == (36.79, -1.31)
    assert subs.frame["drain"].iloc[0] == "LINESTRING (36.78 -1.31, 36.78 -1.32)"
    got = _problems(subs)
    assert got[2] == [
        "plot: a geoshape needs at least 4 points (3 corners + the first again)",
        "drain: a geotrace needs at least 2 points",
    ]
    assert got[3][0] == "plot: geoshape is not closed (last point must equal the first)"
    assert got[3][1].startswith("drain: not a geotrace")


def test_geometry_field_must_be_geo(form: FormSchema, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="'use' is a select_one"):
        read_submissions(_csv(tmp_path / "s.csv", [_good(1)]), form, geometry_field="use")
