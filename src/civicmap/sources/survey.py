"""Field surveys: XLSForm -> :class:`FormSchema`; submission files -> validated :class:`Submissions`.

Forms are read with pyxform, the converter ODK Central runs, so a form civicmap accepts is
one ODK Collect accepts; the compiled XForm is kept in ``FormSchema.xform_xml``.

**Private (personal-data) fields.** Mark them in the XLSForm with an extra column named
``private`` on the ``survey`` sheet, truthy values ``yes``/``true``/``1``/``TRUE()``
(falsy: blank, ``no``, ``false``, ``0``; anything else is a :class:`FormError`). pyxform
passes an unknown plain column through to its JSON form without a warning and leaves it out
of the XForm, so the form still converts cleanly and phones never see the flag; a
``bind::``/``instance::`` prefix would instead write it into the XForm. Two safety nets add
to the column: ODK personal metadata (``deviceid``, ``phonenumber``, ``username``,
``email``...; reason ``"personal metadata (<type>)"``) and names that look personal
(respondent/owner... *name*, phone, telephone, mobile, email, national id, passport; reason
``"name pattern"``).

**Submissions.** :func:`read_submissions` reads, detecting the format by extension and
content (named in ``source_format``; anything else is an :class:`InputError`):

* ``odk_central_csv``: ODK Central CSV export (``group-field`` columns, geopoints split into
  ``-Latitude/-Longitude/-Altitude/-Accuracy``, ``KEY``, ``SubmissionDate``, ``ReviewState``);
* ``csv``: plain CSV, geo answers as ODK text ``"lat lon alt acc"`` (**latitude first**);
* ``odk_central_odata``: ODK Central OData JSON (``{"value": [...]}``, GeoJSON geo answers);
* ``kobo_json``: KoBo JSON (``group/field`` keys, ``_geolocation``, ``_submission_time``);
* ``geojson``: a FeatureCollection read with pyogrio, which honours a legacy ``crs`` member,
  then reprojected to EPSG:4326; the feature geometry is the form's geometry field;
* ``odk_xml``: ODK XML instances (one file, a folder, or ``<uuid>/submission.xml`` folders
  as ODK Briefcase lays them out), parsed with defusedxml: a DTD, entity or external
  reference makes that file a :class:`RowError`, never expanded.

Rules: every problem of a row is reported (type, choice, required, min/max constraint, geo
parse/range/swap/vertex count, missing instanceID, conflicting duplicate, form id of an XML
instance) and **any** problem makes the row bad (dropped from the frame): a half-valid
record is quarantined rather than mapped. ``required`` is enforced only for fields without a
``relevant`` condition (civicmap does not evaluate XPath). A repeated instanceID with the same
answers is stored once and counted in ``duplicates``; with different answers it is a
"conflicting duplicate" error and the first is kept (ODK Central's 409.1). Columns in column
names starting with ``_`` are system fields (KoBo/OData) and are not read as answers; fields
inside repeat groups are not read (one row per submission). An input holding no submission
at all (empty file, header-only CSV, empty list) is an :class:`InputError` rather than an
empty frame, so a wrong export is noticed. With ``form=None`` every answer column is kept as
text and geo columns are recognised from ODK Central's split columns, GeoJSON answers or ODK
geo text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from civicmap.crs import WGS84
from civicmap.errors import InputError
from civicmap.sources._survey_formats import META, RawTable, read_raw
from civicmap.sources._survey_schema import GEO_TYPES, Choice, FormField, FormSchema, read_form
from civicmap.sources._survey_validate import (
    Problems,
    as_string,
    build_geometry,
    check_geo,
    infer_schema,
    long_from_shapes,
    normalise,
    parse_geo,
    typed_column,
)
from civicmap.types import BBox, Provenance, RowError

__all__ = [
    "Choice",
    "FormField",
    "FormSchema",
    "Submissions",
    "flat_answers",
    "read_form",
    "read_submissions",
    "validate_submission",
    "validate_submissions",
]

log = logging.getLogger(__name__)

_STRING = pd.StringDtype()
_SHAPE_KIND = {"Point": "geopoint", "LineString": "geotrace", "Polygon": "geoshape"}


@dataclass(frozen=True)
class Submissions:
    """Validated submissions: good rows in ``frame``, every problem in ``errors``.

    ``frame`` is a GeoDataFrame in EPSG:4326 (x = longitude, y = latitude), indexed by
    instanceID, one row per good submission, with one column per form field (see
    :attr:`FormField.column`), ``instance_id``, ``submitted_at`` (UTC), ``form_version``,
    ``review_state`` (when present), ``source_format``, ``source_file``, ``source_row``,
    ``<geo>_altitude_m``/``<geo>_accuracy_m`` for a geopoint, and ``geometry`` from the
    form's first geo field (other geo fields as WKT text, lon lat order).
    """

    frame: gpd.GeoDataFrame
    errors: list[RowError]
    duplicates: int
    provenance: Provenance
    form: FormSchema | None = None
    unread_columns: tuple[str, ...] = field(default=())


def read_submissions(
    path: str | Path | Sequence[str | Path],
    form: FormSchema | None,
    *,
    area: BBox | None = None,
    geometry_field: str | None = None,
    progress: bool = False,
) -> Submissions:
    """Read and validate submissions from one or more files or folders (see the module docstring).

    ``area`` is a lon/lat bbox (EPSG:4326 degrees) used to flag swapped latitude/longitude.
    ``geometry_field`` names the geo field giving the geometry (default: the form's first).
    """
    paths = [Path(path)] if isinstance(path, str | Path) else [Path(p) for p in path]
    if not paths:
        raise InputError("no submissions path given; pass a file, a folder or a list of them")
    raws = [read_raw(p, progress=progress) for p in paths]
    for p, raw in zip(paths, raws, strict=True):
        log.info("%s: read %d records as %s", p.name, len(raw.frame), raw.source_format)
    schema = form if form is not None else infer_schema(raws)
    geo = _geometry_field(schema, geometry_field)
    parts, unread = [], []
    for raw in raws:
        part, unused = normalise(raw, schema, geo_field=geo)
        parts.append(part)
        unread += [c for c in unused if c not in unread]
    if unread:
        log.info("columns not in the form, not read: %s", ", ".join(unread))
    rows = pd.concat(parts, ignore_index=True)
    labels = _labels(rows, several=len(raws) > 1)
    problems = Problems()
    duplicates = _identity(rows, problems, form)
    frame = _typed_frame(rows[rows["__keep"]], schema, geo, area=area, problems=problems)
    good = frame.loc[~frame.index.isin(list(problems.bad_positions()))]
    good = good.set_index(good["instance_id"].to_numpy())
    errors = problems.row_errors(labels, rows["__instance_id"])
    formats = sorted({r.source_format for r in raws})
    prov = Provenance(
        source=", ".join(str(p) for p in paths),
        details={
            "formats": formats,
            "form_id": form.form_id if form else None,
            "rows_read": len(rows),
            "rows_kept": len(good),
            "rows_with_errors": len({e.row for e in errors}),
            "duplicates": duplicates,
            "unread_columns": unread,
        },
    )
    log.info("submissions: %d read, %d kept, %d errors, %d duplicates", len(rows), len(good), len(errors), duplicates)
    return Submissions(good, errors, duplicates, prov, form, tuple(unread))


def validate_submission(
    answers: Mapping[str, object],
    form: FormSchema,
    *,
    instance_id: str | None = None,
    area: BBox | None = None,
    source_format: str = "json",
) -> tuple[gpd.GeoDataFrame | None, list[RowError]]:
    """Validate ONE submission with the same rules as :func:`read_submissions` (one-row table).

    ``answers`` maps field keys (``"group/field"``, or nested mappings) to values; geo answers
    are ODK text (``"lat lon alt acc"``, **latitude first**). ``instance_id`` defaults to
    ``answers["meta/instanceID"]``. Keys that are not questions of ``form`` are problems too.
    Returns the typed row (GeoDataFrame in EPSG:4326, index = instanceID) or None, and every
    problem found (an empty list when the row is good). A one-record :func:`validate_submissions`.
    """
    return validate_submissions([(answers, instance_id)], form, area=area, source_format=source_format)[0]


def validate_submissions(
    records: Sequence[tuple[Mapping[str, object], str | None]],
    form: FormSchema,
    *,
    area: BBox | None = None,
    source_format: str = "json",
) -> list[tuple[gpd.GeoDataFrame | None, list[RowError]]]:
    """Validate several independent submissions at once: per record, what :func:`validate_submission` gives.

    ``records`` are ``(answers, instance_id)`` pairs (see :func:`validate_submission`). They are
    typed and checked as one table (much faster than one by one), yet judged independently: a
    repeated instanceID across records is not a duplicate here, and each :class:`RowError` has
    ``row`` 1 and its own record's instanceID, as a one-record call gives it. A record that names
    a question differently from the others (another accepted alias, or a key no question has) is
    validated on its own, so the column matching is exactly the one-record one. Returns one
    ``(row, errors)`` per record, in order: the typed row (GeoDataFrame in EPSG:4326, index =
    instanceID) and ``[]``, or None and every problem.
    """
    if not records:
        return []
    flats = [flat_answers(answers) for answers, _ in records]
    ids = [
        instance_id or flat.get("meta/instanceID") or pd.NA
        for (_, instance_id), flat in zip(records, flats, strict=True)
    ]
    results, alone = _validate_together(flats, ids, form, area=area, source_format=source_format)
    for pos in alone:
        results[pos] = _validate_together([flats[pos]], [ids[pos]], form, area=area, source_format=source_format)[0][0]
    return [r for r in results if r is not None]


def _validate_together(
    flats: list[dict[str, object]], ids: list[object], form: FormSchema, *, area: BBox | None, source_format: str
) -> tuple[list[tuple[gpd.GeoDataFrame | None, list[RowError]] | None], list[int]]:
    """Validate flat records as one table; also the positions left out (None in the list) to validate alone."""
    texts = [{k: _answer_text(v) for k, v in flat.items()} for flat in flats]
    geo = _geometry_field(form, None)
    raw = _raw_frame(texts, ids)
    rows, unused = normalise(RawTable(raw, source_format), form, geo_field=geo)
    alone = _own_columns(texts, unused) if len(texts) > 1 else []
    if alone:
        keep = ~np.isin(np.arange(len(texts)), alone)
        rows, raw = rows.loc[keep].reset_index(drop=True), raw.loc[keep].reset_index(drop=True)
        texts = [t for t, k in zip(texts, keep, strict=True) if k]
    problems = Problems()
    known = {"meta/instanceID", "meta/deprecatedID", "meta/instanceName"}
    for key in (k for k in unused if k not in known and not k.startswith("meta/")):
        has = np.array([key in t for t in texts], dtype=bool)
        problems.add(has, key, raw[key], f"not a question of form {form.form_id!r}")
    _identity(rows, problems, form, duplicates=False)
    frame = _typed_frame(rows, form, geo, area=area, problems=problems)
    together = iter(_per_record(frame, problems, rows["__instance_id"]))
    return [None if pos in alone else next(together) for pos in range(len(flats))], alone


def _raw_frame(texts: list[dict[str, object]], ids: list[object]) -> pd.DataFrame:
    """Records as one raw table (META, then answer keys in first-seen order), pandas strings but ``__row`` = 1."""
    n = len(texts)
    values: dict[str, list[object]] = dict.fromkeys(META, [pd.NA] * n)
    values |= {k: [t.get(k, pd.NA) for t in texts] for k in dict.fromkeys(k for t in texts for k in t)}
    values |= {"__instance_id": ids, "__file": ["submission"] * n}
    frame: dict[str, object] = {
        k: pd.array(np.array(v, dtype=object), dtype=_STRING) for k, v in values.items() if k != "__row"
    }
    frame["__row"] = pd.array(np.ones(n, dtype=np.int64), dtype="Int64")
    return pd.DataFrame(frame, columns=list(values))


def _own_columns(texts: list[dict[str, object]], unused: list[str]) -> list[int]:
    """Records holding a key the table matched to no question: validated alone, as alone it might match."""
    odd = (set(unused) - {"meta/instanceID"}) | {"_geolocation"}
    return [pos for pos, t in enumerate(texts) if not odd.isdisjoint(t)]


def _per_record(
    frame: gpd.GeoDataFrame, problems: Problems, instance_ids: pd.Series
) -> list[tuple[gpd.GeoDataFrame | None, list[RowError]]]:
    """Split a validated table (positional index) into one ``(row, errors)`` per record, errors as a lone record's."""
    frame = frame.set_index(frame["instance_id"].to_numpy())
    found: dict[int, list[tuple[int, str | None, object, str]]] = {}
    for pos, name, value, message in problems.items:
        found.setdefault(pos, []).append((0, name, value, message))
    one = pd.Series([1])
    out: list[tuple[gpd.GeoDataFrame | None, list[RowError]]] = []
    for pos in range(len(frame)):
        if pos in found:
            ids = instance_ids.iloc[pos : pos + 1].reset_index(drop=True)
            out.append((None, Problems(found[pos]).row_errors(one, ids)))
        else:
            out.append((frame if len(frame) == 1 else frame.iloc[pos : pos + 1], []))
    return out


def flat_answers(answers: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """Nested answers (groups as mappings) as one mapping of ``group/field`` keys to values."""
    out: dict[str, object] = {}
    for key, value in answers.items():
        if isinstance(value, Mapping):
            out |= flat_answers(value, f"{prefix}{key}/")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _answer_text(value: object) -> object:
    """An answer as the text the validators read (JSON numbers without a trailing ``.0``, lists space-joined)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return pd.NA
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def _geometry_field(schema: FormSchema, name: str | None) -> FormField | None:
    if name is None:
        return schema.geo_fields[0] if schema.geo_fields else None
    f = schema.field(name)
    if f.type not in GEO_TYPES:
        raise InputError(f"geometry_field {name!r} is a {f.type} question; choose one of geopoint/geotrace/geoshape")
    return f


def _labels(rows: pd.DataFrame, *, several: bool) -> pd.Series:
    """How errors name a row: the record number (1-based), ``file:number`` for several files, or the XML file."""
    number = rows["__row"].astype("Int64").astype("string")
    file = as_string(rows["__file"])
    if several:
        label = (file + ":" + number).fillna(file)
        return label.astype(object)
    return rows["__row"].astype(object).where(rows["__row"].notna(), file.astype(object))


def _identity(rows: pd.DataFrame, problems: Problems, form: FormSchema | None, *, duplicates: bool = True) -> int:
    """Unreadable files, missing instanceID, duplicate IDs, wrong form id; sets ``__keep``; returns duplicates.

    ``duplicates=False``: the rows are independent submissions, a repeated instanceID is not compared.
    """
    ids = as_string(rows["__instance_id"])
    unreadable = rows["__error"].notna().to_numpy()
    problems.add(unreadable, None, rows["__file"], rows["__error"].astype(object))
    missing = ids.isna().to_numpy() & ~unreadable
    problems.add(
        missing,
        "instanceID",
        ids,
        "missing meta/instanceID: without it a resubmission cannot be told from a new one; "
        "use a form with meta/instanceID (pyxform adds it by default)",
    )
    repeated = ids.notna().to_numpy() & ids.duplicated(keep="first").to_numpy() & duplicates
    same = _duplicates(rows, ids, repeated, problems)
    if form is not None:
        wrong = rows["__form_id"].notna() & (rows["__form_id"].astype("string") != form.form_id)
        problems.add(wrong, "form_id", rows["__form_id"], f"submission is for another form (expected {form.form_id!r})")
    rows["__keep"] = ~(same | unreadable)
    return int(same.sum())


def _duplicates(rows: pd.DataFrame, ids: pd.Series, repeated: np.ndarray, problems: Problems) -> np.ndarray:
    """Repeated instanceIDs: the same answers (returned mask) or conflicting ones (a problem)."""
    if not repeated.any():  # no repeated ID: nothing to compare
        return repeated
    answers = rows.drop(columns=[c for c in rows.columns if c.startswith("__")])
    digest = pd.util.hash_pandas_object(answers.astype("string").fillna("\x00"), index=False)
    first = digest.groupby(ids).transform("first")
    same = repeated & (digest == first).to_numpy()
    conflict = repeated & (digest != first).to_numpy()
    first_label = rows["__row"].astype("string").fillna(as_string(rows["__file"])).groupby(ids).transform("first")
    problems.add(
        conflict,
        "instanceID",
        ids,
        "conflicting duplicate: this instanceID was already read (row " + first_label + ") with different answers; "
        "the first was kept",
    )
    return same


def _typed_frame(
    rows: pd.DataFrame, schema: FormSchema, geo: FormField | None, *, area: BBox | None, problems: Problems
) -> gpd.GeoDataFrame:
    """Typed answer columns, meta columns and geometry for every row (positional index)."""
    columns: dict[str, pd.Series] = {"instance_id": as_string(rows["__instance_id"])}
    empty = pd.Series(pd.NA, index=rows.index, dtype="string")
    geometry = np.full(len(rows), None, dtype=object)
    for f in schema.fields:
        if not f.has_value or f.key == "meta/instanceID":
            continue
        text = as_string(rows[f.key]) if f.key in rows else empty
        if f.type in GEO_TYPES:
            has_shape = rows["__geometry"].notna() if "__geometry" in rows and f is geo else None
            geoms, extra = _geo_column(f, text, area=area, problems=problems, is_geometry=f is geo, has_shape=has_shape)
            if f is geo:
                geometry = geoms
                columns |= extra
            else:
                columns[f.column] = pd.Series(
                    shapely.to_wkt(geoms, rounding_precision=-1), index=rows.index, dtype="string"
                )
            continue
        columns[f.column] = _microseconds(typed_column(f, text, schema, problems))
    if "__geometry" in rows:
        geometry = _shapes(rows, geo, geometry, area=area, problems=problems)
    columns |= _meta_columns(rows)
    return gpd.GeoDataFrame(pd.DataFrame(columns, index=rows.index), geometry=geometry, crs=WGS84)


def _microseconds(values: pd.Series) -> pd.Series:
    """Date-times in microseconds, as pandas parses answers: it gives seconds to an all-empty column.

    So that a row has the same dtypes whichever rows it is validated with.
    """
    if values.dtype.kind != "M" or values.array.unit == "us":
        return values
    return pd.Series(values.array.as_unit("us"), index=values.index, name=values.name, copy=False)


def _geo_column(
    f: FormField,
    text: pd.Series,
    *,
    area: BBox | None,
    problems: Problems,
    is_geometry: bool,
    has_shape: pd.Series | None = None,
) -> tuple[np.ndarray, dict[str, pd.Series]]:
    """Parse, check and build one geo field given as ODK text (``has_shape``: rows with a GeoJSON geometry)."""
    if f.required and not f.relevant:
        missing = text.isna() if has_shape is None else text.isna() & ~has_shape
        problems.add(missing, f.column, text, "required answer is missing (the form marks it required)")
    long, unparsed = parse_geo(text)
    problems.add(
        unparsed, f.column, text, f"not a {f.type}: expected 'latitude longitude [altitude [accuracy]]' points"
    )
    long = long.take(~unparsed[long.slots(text.index)])
    check_geo(long, f.type, text, area=area, problems=problems, name=f.column)
    extra: dict[str, pd.Series] = {}
    if is_geometry and f.type == "geopoint":
        first, _, counts = long.ends(text.index)
        has = counts > 0
        extra = {
            f"{f.column}_{name}_m": pd.Series(
                pd.array(np.where(has, values[first] if len(values) else np.nan, np.nan), dtype="Float64"),
                index=text.index,
            )
            for name, values in (("altitude", long.alt), ("accuracy", long.acc))
        }
    return build_geometry(long, f.type, text.index), extra


def _shapes(
    rows: pd.DataFrame, geo: FormField | None, geometry: np.ndarray, *, area: BBox | None, problems: Problems
) -> np.ndarray:
    """Geometry of GeoJSON features (already EPSG:4326) for the rows that came with one."""
    shapes = rows["__geometry"].where(rows["__geometry"].notna(), None)
    has = shapes.notna()
    name = geo.column if geo is not None else "geometry"
    kind = geo.type if geo is not None else None
    if kind is None and has.any():
        kind = _SHAPE_KIND.get(shapes[has].iloc[0].geom_type)
    wkt = pd.Series(shapely.to_wkt(np.asarray(shapes.to_numpy(), dtype=object)), index=rows.index, dtype="string")
    long = long_from_shapes(shapes, kind, problems, name)
    check_geo(long, kind, wkt.where(has), area=area, problems=problems, name=name)
    built = build_geometry(long, kind, rows.index)
    return np.where(has.to_numpy(), built, geometry)


def _meta_columns(rows: pd.DataFrame) -> dict[str, pd.Series]:
    out: dict[str, pd.Series] = {
        "submitted_at": _microseconds(
            pd.to_datetime(rows["__submitted_at"], errors="coerce", utc=True, format="ISO8601")
        ),
        "form_version": as_string(rows["__form_version"]),
    }
    if rows["__review_state"].notna().any():
        out["review_state"] = as_string(rows["__review_state"])
    out |= {
        "source_format": as_string(rows["__format"]),
        "source_file": as_string(rows["__file"]),
        "source_row": rows["__row"].astype("Int64"),
    }
    return out
