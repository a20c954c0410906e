"""The building/household survey: an XLSForm, an ODK-Central-style CSV export and ODK XML instances.

Submissions describe real buildings of the generated city: the geopoint is a point of the
footprint plus 2-5 m of GPS noise (EPSG:4326 degrees; in the XML instances written
latitude first, as ODK does). Answers are correlated with the area (informal valley floor
or planned grid) and with the designed height above the river. A few rows are deliberately
bad; they are listed in ``expected.json`` and the README.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import openpyxl
import shapely
from openpyxl.writer.excel import ExcelWriter

from .city import City
from .frame import river_stage_m, to_lonlat, valley_v
from .rasters import height_above_river_m

__all__ = [
    "FIELDS",
    "FORM_ID",
    "FORM_VERSION",
    "Submissions",
    "make_submissions",
    "write_csv",
    "write_form",
    "write_instances",
]

FORM_ID = "building_survey"
FORM_VERSION = "2026110101"
_FIXED_TIME = dt.datetime(2026, 11, 1, 0, 0, 0)
_SURVEY = [
    ("start", "start", "", "", "", "", "", ""),
    ("end", "end", "", "", "", "", "", ""),
    ("today", "today", "", "", "", "", "", ""),
    ("geopoint", "building", "Building location", "Stand at the main door", "yes", "", "", ""),
    ("text", "osm_building_id", "OSM building id", "from the building tag", "", "regex(., '^w[0-9]+$')", "", ""),
    ("select_one wall_material", "wall_material", "Main wall material", "", "yes", "", "", ""),
    ("integer", "storeys", "Number of storeys", "", "yes", ". >= 1 and . <= 30", "", ""),
    ("decimal", "floor_height_m", "Raised floor height above ground (m)", "", "", ". >= 0 and . <= 5", "", ""),
    ("integer", "occupants", "People living in the building", "", "yes", ". >= 0 and . <= 200", "", ""),
    ("integer", "children_under_5", "Children under 5", "", "", ". >= 0", "", ""),
    ("integer", "elderly_over_60", "People over 60", "", "", ". >= 0", "", ""),
    ("integer", "people_with_disabilities", "People with disabilities", "", "", ". >= 0", "", ""),
    ("select_one yes_no", "flood_experience", "Has the building been flooded?", "", "yes", "", "", ""),
    ("decimal", "flood_depth_last_m", "Water depth inside at the last flood (m)", "", "", ". >= 0 and . <= 5",
     "${flood_experience} = 'yes'", ""),
    ("select_one tenure", "tenure", "Tenure", "", "", "", "", ""),
    ("select_one water_source", "water_source", "Main drinking-water source", "", "", "", "", ""),
    ("select_one toilet_type", "toilet_type", "Toilet type", "", "", "", "", ""),
    ("text", "respondent_name", "Respondent's name", "", "", "", "", "yes"),
    ("text", "respondent_phone", "Respondent's phone", "", "", "", "", "yes"),
    ("text", "notes", "Notes", "", "", "", "", "yes"),
]  # fmt: skip
_CHOICES = {
    "wall_material": ["concrete_block", "fired_brick", "mud_wood", "iron_sheet", "timber", "other"],
    "yes_no": ["yes", "no"],
    "tenure": ["owner", "tenant", "informal_occupant", "other"],
    "water_source": ["piped_in_house", "piped_yard", "public_tap", "water_kiosk", "well", "vendor", "other"],
    "toilet_type": ["flush_sewer", "flush_septic", "pit_latrine_slab", "pit_latrine_open", "shared_public", "none"],
}
FIELDS = [row[1] for row in _SURVEY if row[0] not in ("geopoint",) and row[1] not in ("start", "end", "today")]
_CSV_HEAD = ["SubmissionDate", "start", "end", "today", "building-Latitude", "building-Longitude",
             "building-Altitude", "building-Accuracy", *FIELDS, "meta-instanceID", "KEY", "SubmitterID",
             "SubmitterName", "AttachmentsPresent", "AttachmentsExpected", "Status", "ReviewState", "DeviceID",
             "Edits", "FormVersion"]  # fmt: skip
_FIRST = ["Amina", "Juma", "Halima", "Baraka", "Neema", "Rehema", "Hassani", "Mwanaidi", "Salma",
          "Joseph", "Grace", "Emmanuel", "Zawadi", "Saidi", "Fatuma", "Elia", "Upendo", "Issa", "Mariamu",
          "Abdallah"]  # fmt: skip
_LAST = ["Mwakyusa", "Mushi", "Kimaro", "Massawe", "Mrema", "Said", "Ally", "Mohamed", "Komba", "Shirima",
         "Lyimo", "Mbwana", "Njau", "Kessy", "Mwinyi", "Chande", "Swai", "Mtui"]  # fmt: skip
_NOTES = ["", "", "", "", "Nyumba iko karibu na mfereji", "Maji yaliingia ndani mwaka jana",
          "Roof leaks in the rainy season", "Owner lives elsewhere; tenant answered", "Choo kinashirikiwa na nyumba 4",
          'Respondent said "the water reached the windows", April 2024', "Floor raised with sandbags, not concrete",
          "Door faces the footpath, not the street"]  # fmt: skip
_TENURE_P = {True: [0.33, 0.45, 0.19, 0.03], False: [0.6, 0.37, 0.0, 0.03]}
_ENUMERATORS = [
    ("5", "Enumerator Amina"),
    ("6", "Enumerator Baraka"),
    ("7", "Enumerator Neema"),
    ("8", "Enumerator Juma"),
]


def _stable_xlsx(wb: openpyxl.Workbook) -> bytes:
    """XLSX bytes with fixed document properties and fixed zip entry times (no wall-clock time)."""
    wb.properties.creator = "civicmap demo generator"
    wb.properties.created = _FIXED_TIME
    wb.properties.modified = _FIXED_TIME
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).write_data()
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=_FIXED_TIME.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


def write_form(path: Path) -> None:
    """Write the XLSForm (sheets survey, choices, settings); unknown column ``private`` marks personal fields."""
    wb = openpyxl.Workbook()
    survey = wb.active
    survey.title = "survey"
    survey.append(["type", "name", "label", "hint", "required", "constraint", "relevant", "private"])
    for row in _SURVEY:
        survey.append(list(row))
    choices = wb.create_sheet("choices")
    choices.append(["list_name", "name", "label"])
    for list_name, names in _CHOICES.items():
        for name in names:
            choices.append([list_name, name, name.replace("_", " ").capitalize()])
    settings = wb.create_sheet("settings")
    settings.append(["form_title", "form_id", "version", "name", "default_language"])
    settings.append(["Mkondo building and household survey", FORM_ID, FORM_VERSION, FORM_ID, "English (en)"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_stable_xlsx(wb))


@dataclass
class Submissions:
    """Rows as dicts (CSV column -> text), plus what was planted in them."""

    csv_rows: list[dict[str, str]]
    xml_rows: list[dict[str, str]]
    bad: dict[str, str]  # kind -> instanceID
    duplicate_in_csv: str
    duplicate_across: str


def _answers(rng: np.random.Generator, zone: str, levels: str, hand_m: float) -> dict[str, str]:
    informal = zone == "informal"
    walls = _CHOICES["wall_material"]
    p_wall = [0.2, 0.12, 0.35, 0.25, 0.06, 0.02] if informal else [0.7, 0.2, 0.02, 0.03, 0.03, 0.02]
    storeys = 1 if informal and rng.random() < 0.95 else int(levels) if levels else int(rng.integers(1, 3))
    occupants = int(rng.poisson(6.5 if informal else 4.5)) + 1
    flooded = rng.random() < float(np.clip(0.95 - 0.22 * hand_m, 0.03, 0.95))
    water = (
        ["public_tap", "water_kiosk", "vendor", "well", "piped_yard"]
        if informal
        else ["piped_in_house", "piped_yard", "water_kiosk"]
    )
    toilets = (
        ["pit_latrine_slab", "pit_latrine_open", "shared_public"]
        if informal
        else ["flush_septic", "flush_sewer", "pit_latrine_slab"]
    )
    return {
        "wall_material": str(rng.choice(walls, p=p_wall)),
        "storeys": str(storeys),
        "floor_height_m": f"{rng.uniform(0.0, 0.6) if informal else rng.uniform(0.3, 1.2):.2f}",
        "occupants": str(occupants),
        "children_under_5": str(int(rng.binomial(occupants, 0.18))),
        "elderly_over_60": str(int(rng.binomial(occupants, 0.08))),
        "people_with_disabilities": str(int(rng.binomial(occupants, 0.03))),
        "flood_experience": "yes" if flooded else "no",
        "flood_depth_last_m": f"{rng.uniform(0.1, 1.4):.2f}" if flooded else "",
        "tenure": str(rng.choice(_CHOICES["tenure"], p=_TENURE_P[informal])),
        "water_source": str(rng.choice(water)),
        "toilet_type": str(rng.choice(toilets)),
    }  # fmt: skip


def _when(rng: np.random.Generator) -> dict[str, str]:
    day = dt.date(2026, 11, 2) + dt.timedelta(days=int(rng.integers(0, 12)))
    start = dt.datetime.combine(day, dt.time(8)) + dt.timedelta(seconds=int(rng.integers(0, 9 * 3600)))
    end = start + dt.timedelta(seconds=int(rng.integers(240, 840)))
    sent = end - dt.timedelta(hours=3) + dt.timedelta(seconds=int(rng.integers(600, 8 * 3600)))
    ms = rng.integers(0, 1000, 3)
    return {
        "SubmissionDate": sent.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms[0]:03d}Z",
        "start": start.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms[1]:03d}+03:00",
        "end": end.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms[2]:03d}+03:00",
        "today": day.isoformat(),
    }


def _person(rng: np.random.Generator) -> dict[str, str]:
    digits = rng.integers(0, 10, 6)
    prefix = rng.choice(["712", "713", "715", "754", "755", "765", "767", "784", "786"])
    return {
        "respondent_name": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
        "respondent_phone": f"+255 {prefix} {''.join(map(str, digits[:3]))} {''.join(map(str, digits[3:]))}",
        "notes": str(rng.choice(_NOTES)),
    }


def _row(city: City, k: int, rng: np.random.Generator, device: dict[str, str]) -> dict[str, str]:
    fp = city.buildings
    centre = shapely.get_coordinates(shapely.centroid(shapely.Polygon(fp.xy[fp.rings[k]])))[0]
    accuracy = rng.uniform(2.0, 5.0)
    angle = rng.uniform(0.0, 2 * np.pi)
    pos = centre + accuracy * np.array([np.cos(angle), np.sin(angle)])
    lon, lat = to_lonlat(pos[None])
    hand = float(height_above_river_m(valley_v(centre[0], centre[1])))
    enumerator = _ENUMERATORS[int(rng.integers(0, 4))]
    iid = "uuid:" + str(uuid.UUID(bytes=rng.bytes(16), version=4))
    row = _when(rng) | {
        "building-Latitude": f"{lat[0]:.7f}", "building-Longitude": f"{lon[0]:.7f}",
        "building-Altitude": f"{float(river_stage_m(centre[0])) + hand + rng.normal(0, 4):.1f}",
        "building-Accuracy": f"{accuracy + rng.uniform(0, 1.5):.1f}", "osm_building_id": f"w{fp.way_ids[k]}",
    }  # fmt: skip
    row |= _answers(rng, fp.zone[k], fp.tags[k].get("building:levels", ""), hand) | _person(rng)
    row |= {"meta-instanceID": iid, "KEY": iid, "SubmitterID": enumerator[0], "SubmitterName": enumerator[1],
            "AttachmentsPresent": "0", "AttachmentsExpected": "0", "Status": "",
            "ReviewState": "approved" if rng.random() < 0.15 else "", "DeviceID": device[enumerator[0]],
            "Edits": "0", "FormVersion": FORM_VERSION}  # fmt: skip
    return row


def _plant_bad(rows: list[dict[str, str]]) -> dict[str, str]:
    """Spoil five rows in five ways; return kind -> instanceID."""
    spoil = {37: "storeys_not_integer", 81: "lat_lon_swapped", 122: "wall_material_not_in_choices",
             166: "no_location", 203: "storeys_out_of_range"}  # fmt: skip
    for k, kind in spoil.items():
        row = rows[k]
        if kind == "storeys_not_integer":
            row["storeys"] = "two"
        elif kind == "lat_lon_swapped":
            row["building-Latitude"], row["building-Longitude"] = row["building-Longitude"], row["building-Latitude"]
        elif kind == "wall_material_not_in_choices":
            row["wall_material"] = "mabati"
        elif kind == "no_location":
            for part in ("Latitude", "Longitude", "Altitude", "Accuracy"):
                row[f"building-{part}"] = ""
        else:
            row["storeys"] = "45"
    return {kind: rows[k]["meta-instanceID"] for k, kind in spoil.items()}


def make_submissions(city: City, rng: np.random.Generator, n_csv: int = 299, n_xml: int = 39) -> Submissions:
    """Draw surveyed buildings and answers; plant the bad rows and the two duplicates."""
    zone = np.array(city.buildings.zone)
    informal = np.flatnonzero(zone == "informal")
    planned = np.flatnonzero(
        (zone == "planned")
        & np.array(["building:levels" in t or t["building"] == "house" for t in city.buildings.tags])
    )
    n_inf = (n_csv + n_xml) * 3 // 5
    chosen = np.concatenate(
        [rng.choice(informal, n_inf, replace=False), rng.choice(planned, n_csv + n_xml - n_inf, replace=False)]
    )
    chosen = rng.permutation(chosen)
    device = {
        sid: "collect:" + "".join(rng.choice(list("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"), 16))
        for sid, _ in _ENUMERATORS
    }
    rows = [_row(city, int(k), rng, device) for k in chosen]
    csv_rows = sorted(rows[:n_csv], key=lambda r: r["SubmissionDate"])
    bad = _plant_bad(csv_rows)
    duplicate = dict(csv_rows[250])
    csv_rows.append(duplicate)
    xml_rows = [dict(csv_rows[10]), *rows[n_csv:]]
    return Submissions(csv_rows, xml_rows, bad, duplicate["meta-instanceID"], csv_rows[10]["meta-instanceID"])


def write_csv(subs: Submissions, path: Path) -> None:
    """Write the rows as ODK Central writes its CSV export (header row, comma, minimal quoting)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=_CSV_HEAD, lineterminator="\n")
        writer.writeheader()
        writer.writerows(subs.csv_rows)


def _instance_xml(row: dict[str, str]) -> str:
    ns = ('xmlns:h="http://www.w3.org/1999/xhtml" xmlns:jr="http://openrosa.org/javarosa" '
          'xmlns:odk="http://www.opendatakit.org/xforms" xmlns:orx="http://openrosa.org/xforms" '
          'xmlns:ev="http://www.w3.org/2001/xml-events" xmlns:xsd="http://www.w3.org/2001/XMLSchema"')  # fmt: skip
    geo = " ".join(row[f"building-{p}"] for p in ("Latitude", "Longitude", "Altitude", "Accuracy"))
    parts = [f"<{k}>{escape(row[k])}</{k}>" for k in ("start", "end", "today")]
    parts.append(f"<building>{geo}</building>")
    parts += [f"<{k}>{escape(row[k])}</{k}>" if row[k] else f"<{k}/>" for k in FIELDS]
    parts.append(f"<meta><instanceID>{row['meta-instanceID']}</instanceID></meta>")
    head = f'<?xml version=\'1.0\' ?><{FORM_ID} id="{FORM_ID}" version="{FORM_VERSION}" {ns}>'
    return head + "".join(parts) + f"</{FORM_ID}>"


def write_instances(subs: Submissions, folder: Path) -> list[str]:
    """Write one ODK XML instance per row as ``<instanceID with ':' -> '_'>.xml``; return the file names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for row in subs.xml_rows:
        name = row["meta-instanceID"].replace(":", "_") + ".xml"
        (folder / name).write_text(_instance_xml(row), encoding="utf-8")
        names.append(name)
    return sorted(names)
