"""Per-format submission readers for :mod:`civicmap.sources.survey`.

Each reader returns a :class:`RawTable`: answers as text in columns named by their raw key
(``group-field`` in ODK Central CSV, ``group/field`` elsewhere), geo answers as ODK text
(``"lat lon alt acc"``, points joined by ``;``), plus reserved ``__*`` meta columns. The
validation against a form happens in ``_survey_validate``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError as XMLParseError
from defusedxml.ElementTree import parse as parse_xml_safely
from pyogrio.errors import DataSourceError
from tqdm.auto import tqdm

from civicmap.crs import to_wgs84
from civicmap.errors import InputError

__all__ = ["META", "RawTable", "flatten_instance", "local_name", "read_raw"]

log = logging.getLogger(__name__)

META = (
    "__instance_id",
    "__submitted_at",
    "__form_version",
    "__form_id",
    "__review_state",
    "__file",
    "__row",
    "__error",
)
_INSTANCE = ("meta-instanceID", "meta/instanceID", "instanceID", "__id", "KEY", "_uuid", "id")
_SUBMITTED = ("SubmissionDate", "__system/submissionDate", "_submission_time")
_VERSION = ("__system/formVersion", "FormVersion", "__version__")
_REVIEW = ("ReviewState", "__system/reviewState")
_CENTRAL_SYSTEM = frozenset(
    {"KEY", "SubmitterID", "SubmitterName", "AttachmentsPresent", "AttachmentsExpected", "Status", "DeviceID", "Edits"}
)
_GEOJSON_KIND = {"Point": "geopoint", "LineString": "geotrace", "Polygon": "geoshape"}
_SUFFIXES = {".csv": "csv", ".json": "json", ".geojson": "geojson", ".xml": "xml"}
_LEADING = {"csv": None, "json": "{[", "geojson": "{", "xml": "<"}


@dataclass
class RawTable:
    """Submissions as read, before validation (see the module docstring)."""

    frame: pd.DataFrame
    source_format: str
    sep: str = "/"
    geo_kinds: dict[str, str] = field(default_factory=dict)
    geometry: gpd.GeoSeries | None = None


def read_raw(path: Path, *, progress: bool = False) -> RawTable:
    """Detect the format of one file or directory and read it (format named in the result)."""
    if path.is_dir():
        return _read_xml_dir(path, progress=progress)
    if not path.is_file():
        raise InputError(f"submissions file {path} does not exist")
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(
            f"{path.name}: unknown submissions format {path.suffix or '(no suffix)'!r}; expected .csv (ODK Central "
            "or plain), .json (ODK Central OData, KoBo), .geojson, .xml (ODK instance) or a folder of .xml instances"
        )
    _check_content(path, kind)
    if kind == "xml":
        return _frame_of([_read_xml(path, path.parent)], "odk_xml")
    if kind == "csv":
        return _read_csv(path)
    if kind == "geojson":
        return _read_geojson(path)
    return _read_json(path)


def _check_content(path: Path, kind: str) -> None:
    """Refuse a file whose first bytes do not fit its extension (a renamed or empty file)."""
    with path.open("rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        raise InputError(f"{path.name} is empty: it contains no submissions (export again from the server)")
    first = chr(head[0])
    expected = _LEADING[kind]
    if expected is not None and first not in expected:
        raise InputError(f"{path.name}: has extension {path.suffix} but its content starts with {first!r}; rename it")
    if expected is None and first in "{[<":
        raise InputError(f"{path.name}: has extension .csv but its content starts with {first!r} (JSON/XML?)")


def _read_csv(path: Path) -> RawTable:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name}: not a readable CSV ({exc}); export it again as UTF-8 CSV") from exc
    if frame.empty:
        raise InputError(f"{path.name}: the CSV has a header but no submissions; check the export filters")
    cols = set(frame.columns)
    central = bool({"KEY", "SubmissionDate", "meta-instanceID"} & cols) or any(c.endswith("-Latitude") for c in cols)
    frame, kinds = _join_split_geopoints(frame)
    frame = _with_meta(frame, path, system=_CENTRAL_SYSTEM if central else frozenset())
    return RawTable(frame, "odk_central_csv" if central else "csv", sep="-" if central else "/", geo_kinds=kinds)


def _join_split_geopoints(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """ODK Central splits a geopoint into ``-Latitude/-Longitude/-Altitude/-Accuracy``: join it as ODK text."""
    kinds: dict[str, str] = {}
    for lat_col in [c for c in frame.columns if c.endswith("-Latitude")]:
        base = lat_col[: -len("-Latitude")]
        lon_col = f"{base}-Longitude"
        if lon_col not in frame:
            continue
        text = frame[lat_col].str.cat(frame[lon_col], sep=" ")
        for extra in ("Altitude", "Accuracy"):
            if f"{base}-{extra}" in frame:
                text = text.str.cat(frame[f"{base}-{extra}"].fillna("0"), sep=" ")
        frame.insert(int(frame.columns.get_loc(lat_col)), base, text)  # type: ignore[arg-type]
        frame = frame.drop(
            columns=[f"{base}-{s}" for s in ("Latitude", "Longitude", "Altitude", "Accuracy")], errors="ignore"
        )
        kinds[base] = "geopoint"
    return frame, kinds


def _read_json(path: Path) -> RawTable:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name}: not valid JSON ({exc})") from exc
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        return _read_geojson(path)
    if isinstance(data, dict) and isinstance(data.get("value"), list):
        return _read_odata(data["value"], path)
    records = data.get("results") if isinstance(data, dict) else data
    if isinstance(records, list) and all(isinstance(r, dict) for r in records):
        return _read_kobo(records, path)
    raise InputError(
        f"{path.name}: JSON of an unknown layout; expected ODK Central OData ({{'value': [...]}}), "
        "a KoBo export (a list of objects, or {'results': [...]}) or a GeoJSON FeatureCollection"
    )


def _read_odata(records: list[dict[str, Any]], path: Path) -> RawTable:
    """ODK Central OData: nested groups, geo answers as GeoJSON geometries."""
    if not records:
        raise InputError(f"{path.name}: the OData export has no submissions ('value' is empty)")
    frame = pd.json_normalize(records, sep="/")
    kinds: dict[str, str] = {}
    for type_col in [c for c in frame.columns if c.endswith("/type") and f"{c[:-5]}/coordinates" in frame]:
        base = type_col[:-5]
        gtype = frame[type_col].dropna()
        if gtype.empty or not gtype.isin(list(_GEOJSON_KIND)).all():
            continue
        acc = frame.get(f"{base}/properties/accuracy")
        frame[base] = _geojson_to_odk(frame[type_col], frame[f"{base}/coordinates"], acc)
        frame = frame.drop(columns=[c for c in frame.columns if c.startswith(f"{base}/")])
        kinds[base] = _GEOJSON_KIND[str(gtype.iloc[0])]
    frame = _drop_lists(frame, path)
    return RawTable(_with_meta(frame, path, system=frozenset()), "odk_central_odata", geo_kinds=kinds)


def _geojson_to_odk(gtype: pd.Series, coords: pd.Series, accuracy: pd.Series | None) -> pd.Series:
    """GeoJSON coordinates (lon, lat[, alt]) -> ODK text (``lat lon alt acc``; ``;`` between points)."""
    depth = gtype.map({"Point": 0, "LineString": 1, "Polygon": 2})
    present = coords.notna()
    rings = coords[(depth == 2) & present].explode()
    parts = [
        coords[(depth == 0) & present],
        coords[(depth == 1) & present].explode(),
        rings[~rings.index.duplicated()].explode(),  # the outer ring of a polygon only
    ]
    vertices = pd.concat(parts).dropna()
    if vertices.empty:
        return pd.Series(pd.NA, index=coords.index, dtype="string")
    xyz = pd.DataFrame(vertices.tolist(), index=vertices.index).astype(float)
    text = xyz[1].astype(str) + " " + xyz[0].astype(str)
    if 2 in xyz:
        text = text + " " + xyz[2].fillna(0).astype(str)
        if accuracy is not None:
            acc = pd.to_numeric(accuracy, errors="coerce").reindex(text.index).fillna(0).astype(str)
            text = text.where(depth.reindex(text.index) != 0, text + " " + acc)
    return text.groupby(level=0).agg(";".join).reindex(coords.index).astype("string")


def _read_kobo(records: list[dict[str, Any]], path: Path) -> RawTable:
    """KoBo JSON: flat ``group/field`` keys, ``_geolocation: [lat, lon]``, ``_submission_time``."""
    if not records:
        raise InputError(f"{path.name}: the KoBo export has no submissions (empty list)")
    frame = pd.DataFrame.from_records(records)
    kinds: dict[str, str] = {}
    if "_geolocation" in frame:
        latlon = pd.DataFrame(
            [v if isinstance(v, list) and len(v) == 2 else [None, None] for v in frame["_geolocation"]],
            index=frame.index,
        )
        frame["_geolocation"] = _as_text(latlon[0]).str.cat(_as_text(latlon[1]), sep=" ")
        kinds["_geolocation"] = "geopoint"
    if "_uuid" in frame:
        uuid = _as_text(frame["_uuid"])
        frame["_uuid"] = uuid.where(uuid.str.startswith("uuid:"), "uuid:" + uuid)
    frame = _drop_lists(frame, path)
    return RawTable(_with_meta(frame, path, system=frozenset()), "kobo_json", geo_kinds=kinds)


def _read_geojson(path: Path) -> RawTable:
    """GeoJSON FeatureCollection through pyogrio, which honours a legacy ``crs`` member; then to EPSG:4326."""
    try:
        gdf = gpd.read_file(path, engine="pyogrio")
    except DataSourceError as exc:
        raise InputError(f"{path.name}: not a readable GeoJSON FeatureCollection ({exc})") from exc
    if gdf.empty:
        raise InputError(f"{path.name}: the FeatureCollection has no features, so no submissions")
    if gdf.crs is None:
        gdf = gdf.set_crs("EPSG:4326")
    crs_name = gdf.crs.to_string()
    gdf = to_wgs84(gdf, name=path.name)
    log.info("%s: GeoJSON read in %s, now EPSG:4326", path.name, crs_name)
    geometry = gdf.geometry.reset_index(drop=True)
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name)).reset_index(drop=True)
    return RawTable(_with_meta(frame, path, system=frozenset()), "geojson", geometry=geometry)


def _read_xml_dir(path: Path, *, progress: bool) -> RawTable:
    """A folder of ODK XML instances, flat or as ``<uuid>/submission.xml`` folders (ODK Briefcase)."""
    files = sorted(p for p in path.rglob("*.xml") if p.is_file())
    if not files:
        raise InputError(
            f"folder {path} holds no .xml submission instances; give an export file or an instances folder"
        )
    records = [_read_xml(p, path) for p in tqdm(files, disable=not progress, desc="ODK instances", unit="file")]
    return _frame_of(records, "odk_xml")


def _read_xml(path: Path, root_dir: Path) -> dict[str, Any]:
    """One ODK XML instance parsed with defusedxml (no DTD, entities or external references)."""
    rel = path.relative_to(root_dir).as_posix()
    record: dict[str, Any] = {"__file": rel, "__row": None}
    try:
        root = parse_xml_safely(path, forbid_dtd=True, forbid_entities=True, forbid_external=True).getroot()
    except DefusedXmlException as exc:
        record["__error"] = f"unsafe XML refused, not expanded ({type(exc).__name__}): remove the DTD/entities"
        return record
    except XMLParseError as exc:
        record["__error"] = f"not well-formed XML ({exc})"
        return record
    if root is None or local_name(root.tag) == "html":
        record["__error"] = "this is an XForm (form definition), not a submission instance"
        return record
    record["__form_id"] = root.get("id")
    record["__form_version"] = root.get("version")
    flatten_instance(root, "", record)
    record["__instance_id"] = record.get("meta/instanceID")
    return record


def flatten_instance(elem: Any, prefix: str, record: dict[str, Any]) -> None:
    """ODK XML instance leaves as ``group/field`` keys, in document order (later repeat items are not read)."""
    for child in elem:
        key = f"{prefix}{local_name(child.tag)}"
        if len(child):
            flatten_instance(child, f"{key}/", record)
        elif key not in record:
            record[key] = (child.text or "").strip() or None


def _frame_of(records: list[dict[str, Any]], source_format: str) -> RawTable:
    frame = pd.DataFrame.from_records(records)
    for col in META:
        if col not in frame:
            frame[col] = pd.NA
    return RawTable(frame, source_format)


def _with_meta(frame: pd.DataFrame, path: Path, *, system: frozenset[str]) -> pd.DataFrame:
    """Move instance id, submission time, version and review state to ``__*`` columns; drop system columns."""
    frame = frame.reset_index(drop=True)
    meta = {
        "__instance_id": _first_of(frame, _INSTANCE),
        "__submitted_at": _first_of(frame, _SUBMITTED),
        "__form_version": _first_of(frame, _VERSION),
        "__form_id": None,
        "__review_state": _first_of(frame, _REVIEW),
        "__file": path.name,
        "__row": pd.RangeIndex(1, len(frame) + 1),
        "__error": None,
    }
    drop = [c for c in frame.columns if c in system or c.startswith("_") or c in _INSTANCE or c in _SUBMITTED]
    drop += [c for c in frame.columns if c in _VERSION or c in _REVIEW or c == "formhub/uuid"]
    answers = frame.drop(columns=[c for c in dict.fromkeys(drop) if c != "_geolocation"])
    answers = answers.apply(_as_text) if len(answers.columns) else answers
    for key, value in meta.items():
        answers[key] = pd.NA if value is None else value
    return answers


def _first_of(frame: pd.DataFrame, names: tuple[str, ...]) -> pd.Series | None:
    """The first of ``names`` present, gaps filled from the later ones."""
    present = [_as_text(frame[n]) for n in names if n in frame]
    if not present:
        return None
    out = present[0]
    for more in present[1:]:
        out = out.fillna(more)
    return out


def _as_text(col: pd.Series) -> pd.Series:
    """Answers as pandas strings (whole numbers from JSON without a trailing ``.0``)."""
    if pd.api.types.is_bool_dtype(col):
        return col.map({True: "true", False: "false"}).astype("string")
    if pd.api.types.is_float_dtype(col) and ((col.dropna() % 1) == 0).all():
        return col.astype("Int64").astype("string")
    text = col.astype("string")
    return text.where(text.str.strip() != "", pd.NA)


def _drop_lists(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Drop columns holding lists (repeat groups, attachments): not part of a one-row-per-submission frame."""
    lists = [c for c in frame.columns if c != "_geolocation" and frame[c].map(lambda v: isinstance(v, list)).any()]
    if lists:
        log.info("%s: columns holding lists (repeats, attachments) not read: %s", path.name, ", ".join(lists))
    return frame.drop(columns=lists)


def local_name(tag: Any) -> str:
    """An XML tag without its ``{namespace}``."""
    return str(tag).rsplit("}", 1)[-1]
