"""validate_submissions: several submissions as one table, each judged as validate_submission judges it alone."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from geopandas.testing import assert_geodataframe_equal

from civicmap.sources import survey
from civicmap.sources.survey import FormSchema, read_form, validate_submission, validate_submissions
from civicmap.types import BBox, RowError

REPO = Path(__file__).resolve().parents[2]
DEMO_FORM = REPO / "sample_data" / "demo" / "forms" / "building_survey.xlsx"
DEMO_AREA = BBox(39.229871, -6.824915, 39.249792, -6.805004)
GOOD = {"building": "-6.815 39.24 0 5", "wall_material": "timber", "storeys": 2, "occupants": 4}
GOOD |= {"flood_experience": "no"}

Record = tuple[dict[str, object], str | None]
Outcome = tuple[gpd.GeoDataFrame | None, list[RowError]]


@pytest.fixture(scope="module")
def demo_form() -> FormSchema:
    return read_form(DEMO_FORM)


def _demo_records() -> list[Record]:
    """Good and bad building surveys: every kind of problem, and the ways a batch could mix records up."""
    changes: list[dict[str, object]] = [
        {},
        {"storeys": 40},  # above the maximum
        {"storeys": "two"},  # not an integer
        {"occupants": 3.5},  # not an integer
        {"wall_material": "glass"},  # not in the choice list
        {"building": "39.24 -6.815"},  # lat/lon swapped
        {"building": None},  # required, missing (key present, no value)
        {"floor_height_m": 2.75, "osm_building_id": "w123", "tenure": "owner"},
        {"floor_height_m": "high"},  # not a number
        {"nonsense": "1", "storeys": 50},  # not a question; several problems in one record
        {"building": "-6.815 39.24 0 5; -6.816 39.24"},  # a geopoint of two points
        {"flood_experience": "yes", "flood_depth_last_m": 0.5, "start": "2024-03-01T10:00:00+03:00"},
        {"storeys": True},  # a JSON boolean
        {"storeys": 1, "occupants": 0, "today": "2024-03-01"},
        {"today": "yesterday"},  # not a date
    ]
    records: list[Record] = [(GOOD | change, f"uuid:b-{n}") for n, change in enumerate(changes)]
    records += [(GOOD, None)]  # no instanceID
    records += [(GOOD, "uuid:b-0"), (GOOD | {"storeys": 3}, "uuid:b-0")]  # an ID repeated across records
    records += [({"building": "-6.815 39.24", "meta/instanceID": "uuid:from-meta"} | GOOD, None)]
    return records


def _assert_same(batch: list[Outcome], single: list[Outcome]) -> None:
    assert len(batch) == len(single)
    for n, ((row, errors), (row1, errors1)) in enumerate(zip(batch, single, strict=True)):
        assert errors == errors1, f"record {n}"
        assert (row is None) == (row1 is None), f"record {n}"
        if row is not None and row1 is not None:
            assert_geodataframe_equal(row, row1, check_index_type=True, check_dtype=True)


def test_batch_gives_what_each_record_gives_alone(demo_form: FormSchema) -> None:
    records = _demo_records()
    batch = validate_submissions(records, demo_form, area=DEMO_AREA)
    single = [validate_submission(a, demo_form, instance_id=i, area=DEMO_AREA) for a, i in records]
    _assert_same(batch, single)
    good = [n for n, (row, _) in enumerate(batch) if row is not None]
    assert good == [0, 7, 11, 13, 16, 17, 18]  # a repeated instanceID is no problem between separate records
    assert batch[7][0] is not None
    row = batch[7][0].iloc[0]
    assert (row["floor_height_m"], row["osm_building_id"], row["tenure"]) == (2.75, "w123", "owner")
    assert batch[7][0].index.tolist() == ["uuid:b-7"] and batch[7][0].crs == "EPSG:4326"
    assert (batch[0][0].geometry.x.iloc[0], batch[0][0].geometry.y.iloc[0]) == (39.24, -6.815)
    assert batch[18][0] is not None and batch[18][0].index.tolist() == ["uuid:from-meta"]
    assert batch[1][1] == [
        RowError(1, "storeys", "40", "above the maximum <= 30 (constraint '. >= 1 and . <= 30')", "uuid:b-1")
    ]
    assert [(e.row, e.field, e.value, e.instance_id) for e in batch[9][1]] == [
        (1, "nonsense", "1", "uuid:b-9"),
        (1, "storeys", "50", "uuid:b-9"),
    ]
    assert [e.field for e in batch[15][1]] == ["instanceID"] and batch[15][1][0].instance_id is None
    assert "swapped" in batch[5][1][0].problem
    assert batch[6][1][0].problem.startswith("required answer is missing")


def test_records_naming_questions_differently_are_matched_as_alone(demo_form: FormSchema) -> None:
    """Short names and full keys, nested groups and unknown keys in one batch."""
    records: list[Record] = [
        (GOOD, "uuid:full"),
        ({"building": "-6.815 39.24", "wall_material": "mud", "storeys": "1", "occupants": "2"}, "uuid:x"),
        (GOOD | {"wall_material": None, "extra": {"nested": "1"}}, "uuid:nested"),
        ({}, "uuid:empty"),
    ]
    _assert_same(
        validate_submissions(records, demo_form, area=DEMO_AREA),
        [validate_submission(a, demo_form, instance_id=i, area=DEMO_AREA) for a, i in records],
    )


def test_batch_is_one_table_and_odd_records_go_alone(demo_form: FormSchema, monkeypatch: pytest.MonkeyPatch) -> None:
    tables: list[int] = []
    original = survey._typed_frame

    def typed_frame(rows: pd.DataFrame, *args: object, **kwargs: object) -> gpd.GeoDataFrame:
        tables.append(len(rows))
        return original(rows, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(survey, "_typed_frame", typed_frame)
    records: list[Record] = [(GOOD | {"storeys": n % 40}, f"uuid:t-{n}") for n in range(30)]
    records[11] = (GOOD | {"not_in_form": "x"}, "uuid:t-11")
    out = validate_submissions(records, demo_form, area=DEMO_AREA)
    assert tables == [29, 1]  # one table for all but the record with a key no question has
    assert [n for n, (row, _) in enumerate(out) if row is None] == [0, 11]  # storeys 0, unknown key
    assert validate_submissions([], demo_form) == []


def test_real_form_batch_equals_single(realdata: Path) -> None:
    """HOT's water-point form (osm-fieldwork): groups, geopoint, select_one/select_multiple, required integer."""
    form = read_form(realdata / "survey" / "osmfieldwork_waterpoints_archived.xls")
    typeinfo = {"waterpoint_type": "well", "pump_type": "manual", "power_type": "solar"}
    typeinfo |= {"operational_status": "operational"}
    info = {"primary_usage": "drinking irrigation", "access": "public", "seasonal": "dry", "fee": "no"}
    info |= {"opening_hours": "24/7", "waterpoint_capacity": "200"}
    mgmt = {"operator": "community", "waterpoint_provider": "ngo", "waterpoint_mgmt": "yes"}
    mgmt |= {"maintenc_frequency": "month"}
    groups = {"typeinfo": typeinfo, "waterpointinfo": info, "waterpoint_mgmt_details": mgmt}
    good = {"first_screen": {"gps": {"location": "38.53 -106.0 2100 4"}} | groups}
    salida = BBox(-106.026, 38.513, -105.976, 38.544)
    records: list[Record] = [
        (good, "uuid:w-0"),
        (_with(good, "waterpointinfo", waterpoint_capacity="lots"), "uuid:w-1"),
        (_with(good, "waterpointinfo", primary_usage="drinking swimming"), "uuid:w-2"),
        (_with(good, "typeinfo", waterpoint_type="volcano"), "uuid:w-3"),
        (_with(good, "waterpointinfo", access=None), "uuid:w-4"),
        (_with(good, "gps", location="-106.0 38.53"), "uuid:w-5"),
        (_with(good, "waterpointinfo", waterpoint_capacity="12"), "uuid:w-6"),
        ({"location": "38.52 -106.01"} | typeinfo | info | mgmt, "uuid:w-short"),  # short names (unique in the form)
        (_with(good, "typeinfo", pump_type=None) | {"pump_type": "powered"}, "uuid:w-mixed"),
    ]
    batch = validate_submissions(records, form, area=salida)
    _assert_same(batch, [validate_submission(a, form, instance_id=i, area=salida) for a, i in records])
    assert [n for n, (row, _) in enumerate(batch) if row is not None] == [0, 6, 7]
    assert batch[7][0] is not None and batch[7][0]["waterpoint_capacity"].iloc[0] == 200
    # the full key wins over the short name (as alone): its empty answer is missing, the short one unknown
    assert [(e.field, e.value) for e in batch[8][1]] == [("pump_type", "powered"), ("pump_type", None)]
    assert [e.field for _, errors in batch[1:6] for e in errors] == [
        "waterpoint_capacity",
        "primary_usage",
        "waterpoint_type",
        "access",
        "location",
    ]


def _with(answers: dict[str, object], group: str, **change: object) -> dict[str, object]:
    """``answers`` (nested groups) with ``change`` applied inside the group named ``group``."""
    out: dict[str, object] = {}
    for key, value in answers.items():
        inner = _with(value, group, **change) if isinstance(value, dict) else value
        out[key] = inner | change if key == group and isinstance(inner, dict) else inner
    return out
