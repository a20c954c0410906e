"""Taking submissions in: parse (JSON or OpenRosa XML), validate, attachments, duplicates, store.

Validation is :func:`civicmap.sources.survey.validate_submissions`, the same rules as for
submission files; every problem is reported at once (:class:`SubmissionError`, HTTP 422).
:func:`submit_many` validates the submissions to one form together (one table: several times
cheaper per submission than one by one) and then stores each in its own transaction;
:func:`submit` is one of them. Nothing is written before the answers and every attachment have
passed their checks; then attachments are written durably, then the row is committed (see
``civicmap.intake.store``).

**Idempotency** (ODK Central semantics): the same instanceID with the same content returns the
stored submission (``PutResult.created`` is False; HTTP 201 again, so OpenRosa clients stop
retrying) and adds attachments it did not have yet (clients split big submissions into several
POSTs repeating the same XML); other content under a stored instanceID is a
:class:`ConflictError` (HTTP 409). The content hash is the SHA-256 of the canonical JSON of form
id and answers (text), so whitespace in the XML does not matter.

**Possible duplicates** (never merged): an earlier submission of the same form, with the same
answer in the form's ``duplicate_field`` (when set), at most ``R = duplicate_radius_m`` metres
(great-circle distance between representative points) and ``W = duplicate_window_h`` hours
older gets ``score = (1 - d / R) * (1 - dt / W)`` in [0, 1]; the best-scoring one is recorded
as ``duplicate_of`` with its score for moderators.

**Coordinates**: ``location`` may be GeoJSON (``[longitude, latitude]``) or ODK text
(``"latitude longitude altitude accuracy"``, **latitude first**); geometries are stored as WKT
lon/lat (EPSG:4326). When the form asks (``coarsen_m``), the public geometry is the centre of
a grid cell of about ``coarsen_m`` metres (cell height ``coarsen_m / 111 320`` degrees of
latitude, width scaled by ``1 / cos(latitude)``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import numpy as np
import shapely
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError as XMLParseError
from defusedxml.ElementTree import fromstring as parse_xml_safely

from civicmap.errors import ConflictError, InputError, SubmissionError
from civicmap.intake.attachments import check_attachment, stage_attachment, strip_exif
from civicmap.intake.base import (
    FormRecord,
    IntakeLimits,
    IntakeStore,
    NewSubmission,
    PutResult,
    StagedAttachment,
    utc_now,
)
from civicmap.intake.forms import form_schema
from civicmap.sources._survey_formats import flatten_instance, local_name
from civicmap.sources.survey import FormSchema, flat_answers, validate_submissions
from civicmap.types import BBox, RowError

__all__ = ["FormKey", "Incoming", "Pending", "parse_json_submission", "parse_openrosa_xml", "submit", "submit_many"]

log = logging.getLogger(__name__)

_EARTH_RADIUS_M = 6_371_008.8
_M_PER_DEG = 111_320.0
_INSTANCE_ID = re.compile(r"^[A-Za-z0-9:._-]{1,128}$")


@dataclass(frozen=True)
class Incoming:
    """A parsed submission before validation: answers keyed by field path, as sent."""

    form_id: str
    instance_id: str
    answers: dict[str, Any]
    version: str | None = None
    location: Any = None
    source: Literal["json", "openrosa", "file"] = "json"
    deprecated_id: str | None = None
    """The instanceID this submission edits (ODK ``meta/deprecatedID``, JSON ``deprecated_id``)."""


def parse_json_submission(form_id: str, payload: Any, *, idempotency_key: str | None = None) -> Incoming:
    """``{"instance_id", "answers", "location"?, "version"?}`` -> :class:`Incoming` (InputError if malformed)."""
    if not isinstance(payload, Mapping):
        raise InputError("the submission must be a JSON object with 'instance_id', 'answers' and optional 'location'")
    unknown = sorted(set(payload) - {"instance_id", "answers", "location", "version", "deprecated_id"})
    if unknown:
        raise InputError(
            f"unknown submission keys {unknown}; expected instance_id, answers, location, version, deprecated_id"
        )
    answers = payload.get("answers")
    if not isinstance(answers, Mapping):
        raise InputError("'answers' must be a JSON object mapping question names to answers")
    instance_id = payload.get("instance_id") or idempotency_key
    return Incoming(
        form_id=form_id,
        instance_id=_check_instance_id(instance_id),
        answers=flat_answers(answers),
        version=None if payload.get("version") is None else str(payload["version"]),
        location=payload.get("location"),
        source="json",
        deprecated_id=None if payload.get("deprecated_id") is None else _check_instance_id(payload["deprecated_id"]),
    )


def parse_openrosa_xml(data: bytes) -> Incoming:
    """An ODK XML instance (parsed with defusedxml: DTDs, entities, external references refused)."""
    try:
        root = parse_xml_safely(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise InputError(
            f"unsafe XML refused ({type(exc).__name__}): submissions must not carry a DTD or entities"
        ) from exc
    except XMLParseError as exc:
        raise InputError(f"xml_submission_file is not well-formed XML ({exc})") from exc
    if local_name(root.tag) == "html":
        raise InputError("xml_submission_file holds an XForm (form definition), not a filled-in instance")
    form_id = root.get("id")
    if not form_id:
        raise InputError(f"the instance root <{local_name(root.tag)}> has no id attribute naming its form")
    answers: dict[str, Any] = {}
    flatten_instance(root, "", answers)
    instance_id = answers.pop("meta/instanceID", None)
    if not instance_id:
        raise InputError("the instance has no meta/instanceID; ODK forms add it (pyxform does by default)")
    deprecated = answers.pop("meta/deprecatedID", None) or None  # an edit of that instance (see civicmap.intake.base)
    return Incoming(
        form_id, _check_instance_id(instance_id), answers, root.get("version"), None, "openrosa",
        None if deprecated is None else _check_instance_id(deprecated),
    )  # fmt: skip


def _check_instance_id(value: Any) -> str:
    if not isinstance(value, str) or not _INSTANCE_ID.match(value):
        raise InputError(
            f"instance id {value!r} missing or malformed: give 'instance_id' (e.g. 'uuid:<uuid4>') or an "
            "Idempotency-Key header; at most 128 letters, digits and ':._-'"
        )
    return value


def location_to_odk(location: Any) -> str:
    """GeoJSON Point/LineString/Polygon (lon, lat) or ODK text -> ODK text (``lat lon``; ``;`` between points)."""
    if isinstance(location, str):
        return location
    if not isinstance(location, Mapping) or "coordinates" not in location:
        raise InputError(
            f"location {str(location)[:80]!r} must be a GeoJSON Point, LineString or Polygon, or ODK text 'lat lon'"
        )
    kind, coords = str(location.get("type")), location["coordinates"]
    try:
        points = {"Point": lambda c: [c], "LineString": list, "Polygon": lambda c: list(c[0])}[kind](coords)
        return ";".join(" ".join(str(float(v)) for v in (p[1], p[0], *p[2:3])) for p in points)
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise InputError(
            f"location of type {kind!r}: expected a GeoJSON Point, LineString or Polygon with [lon, lat] positions"
        ) from exc


def content_hash(form_id: str, answers: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the form id and the answers as text."""
    text = {k: None if v is None else str(v) for k, v in answers.items()}
    body = json.dumps({"form_id": form_id, "answers": text}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class Pending:
    """One submission waiting to be stored: what was sent, its attachment files, who sends it."""

    incoming: Incoming
    files: Mapping[str, bytes]
    submitter: str


FormKey = tuple[str, str | None]
"""A form version as a submission names it: ``(form_id, version)``, version None for the latest."""


def submit(
    store: IntakeStore,
    incoming: Incoming,
    files: Mapping[str, bytes],
    *,
    submitter: str,
    area: BBox | None = None,
    limits: IntakeLimits | None = None,
    form: FormRecord | None = None,
) -> PutResult:
    """Validate ``incoming`` against its published form and store it with its attachments.

    ``form`` is the form version ``incoming`` names when the caller has just read it (saves a
    second read of the store); by default it is read here.
    Raises :class:`NotFoundError` (unknown form/version), :class:`ConflictError` (closed form; same
    instanceID with other content), :class:`SubmissionError` (every answer problem) and the
    attachment errors (:class:`InputError`, :class:`TooLargeError`, :class:`MediaTypeError`).
    """
    forms = None
    if form is not None and (form.form_id, form.version) == (incoming.form_id, incoming.version or form.version):
        forms = {(incoming.form_id, incoming.version): form}
    [outcome] = submit_many(store, [Pending(incoming, files, submitter)], area=area, limits=limits, forms=forms)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def submit_many(
    store: IntakeStore,
    items: Sequence[Pending],
    *,
    area: BBox | None = None,
    limits: IntakeLimits | None = None,
    forms: Mapping[FormKey, FormRecord] | None = None,
) -> list[PutResult | Exception]:
    """Validate and store several submissions: per item, what :func:`submit` returns or raises.

    Each form version is read once (``forms`` holds the ones the caller has read already) and
    the answers to one form are validated together (:func:`~civicmap.sources.survey.validate_submissions`,
    same rules and problems as one by one); then each submission is stored in its OWN
    transaction, in order, exactly as :func:`submit` stores it (attachments, duplicates, edits,
    idempotent retries: an identical item repeated in ``items`` is stored once, the repeat gets
    ``created`` False). A bad item gets its exception in its place and does not affect the others.
    """
    limits = limits or IntakeLimits()
    known: dict[FormKey, FormRecord] = dict(forms or {})
    schemas: dict[FormKey, FormSchema] = {}
    outcomes: list[PutResult | Exception | None] = [None] * len(items)
    groups: dict[FormKey, list[int]] = {}
    answers: dict[int, dict[str, Any]] = {}
    for pos, item in enumerate(items):
        try:
            key, answers[pos] = _checked_answers(store, item.incoming, known, schemas)
            groups.setdefault(key, []).append(pos)
        except Exception as exc:  # this item only: its neighbours go on
            outcomes[pos] = exc
    rows = _validated_groups(items, answers, groups, schemas, area)
    for pos, item in enumerate(items):
        if outcomes[pos] is not None:
            continue
        row = rows[pos]
        if isinstance(row, Exception):
            outcomes[pos] = row
            continue
        key = (item.incoming.form_id, item.incoming.version)
        try:
            outcomes[pos] = _store(store, known[key], schemas[key], item, answers[pos], row, limits=limits)
        except Exception as exc:  # a failed write fails its own request only
            outcomes[pos] = exc
    return cast(list[PutResult | Exception], outcomes)  # every position was filled above


def _checked_answers(
    store: IntakeStore, incoming: Incoming, known: dict[FormKey, FormRecord], schemas: dict[FormKey, FormSchema]
) -> tuple[FormKey, dict[str, Any]]:
    """The form key of ``incoming`` (its form read once into ``known``, schema into ``schemas``) and its answers."""
    key = (incoming.form_id, incoming.version)
    if key not in known:
        known[key] = store.form(incoming.form_id, incoming.version)
    form = known[key]
    if not form.open:
        raise ConflictError(f"form {form.form_id!r} is closed: it is not accepting submissions")
    if key not in schemas:
        schemas[key] = form_schema(form)
    return key, _answers_with_location(incoming, schemas[key])


def _validated_groups(
    items: Sequence[Pending],
    answers: Mapping[int, dict[str, Any]],
    groups: Mapping[FormKey, list[int]],
    schemas: Mapping[FormKey, FormSchema],
    area: BBox | None,
) -> dict[int, Any]:
    """Per item position: its validated row (GeoDataFrame), or the :class:`SubmissionError` listing its problems."""
    rows: dict[int, Any] = {}
    for key, positions in groups.items():
        records = [(answers[p], items[p].incoming.instance_id) for p in positions]
        try:
            checked = validate_submissions(records, schemas[key], area=area)
        except Exception as exc:  # a failure of the validator itself: every item of this form gets it
            rows |= dict.fromkeys(positions, exc)
            continue
        for pos, (row, errors) in zip(positions, checked, strict=True):
            rows[pos] = row if not errors and row is not None else _problems(items[pos].incoming.instance_id, errors)
    return rows


def _problems(instance_id: str, errors: list[RowError]) -> SubmissionError:
    return SubmissionError(
        f"submission {instance_id} has {len(errors)} problem(s): " + "; ".join(str(e) for e in errors[:5]), errors
    )


def _store(
    store: IntakeStore,
    form: FormRecord,
    schema: FormSchema,
    item: Pending,
    answers: dict[str, Any],
    row: Any,
    *,
    limits: IntakeLimits,
) -> PutResult:
    """Check the attachments of one validated submission, then write them and commit its row (one transaction)."""
    incoming = item.incoming
    wanted, ignored = _referenced_files(answers, item.files)
    checked = {
        name: check_attachment(name, data, max_bytes=limits.max_attachment_bytes) for name, data in wanted.items()
    }
    if ignored:
        log.info("submission %s: attachments not referenced by any answer ignored: %s", incoming.instance_id, ignored)
    new = _new_submission(store, form, schema, incoming, answers, row, submitter=item.submitter)
    staged = _stage(store, form, schema, answers, wanted, checked)
    result = store.put_submission(new, staged)
    log.info(
        "submission %s stored (created=%s, +%d attachments)",
        new.instance_id,
        result.created,
        len(result.added_attachments),
    )
    return result


def _answers_with_location(incoming: Incoming, schema: FormSchema) -> dict[str, Any]:
    answers = {k: v for k, v in incoming.answers.items() if not k.startswith("meta/") and v is not None}
    if incoming.location is not None:
        if not schema.geo_fields:
            raise SubmissionError(
                "form has no geo question",
                [
                    RowError(
                        1,
                        "location",
                        incoming.location,
                        f"form {schema.form_id!r} has no geopoint/geotrace/geoshape question",
                    )
                ],
            )
        answers[schema.geo_fields[0].key] = location_to_odk(incoming.location)
    return answers


def _referenced_files(answers: Mapping[str, Any], files: Mapping[str, bytes]) -> tuple[dict[str, bytes], list[str]]:
    values = {str(v) for v in answers.values() if v is not None}
    wanted = {name: data for name, data in files.items() if name in values}
    return wanted, sorted(set(files) - set(wanted))


def _stage(
    store: IntakeStore,
    form: FormRecord,
    schema: FormSchema,
    answers: Mapping[str, Any],
    wanted: Mapping[str, bytes],
    media: Mapping[str, str],
) -> list[StagedAttachment]:
    keep = {
        f.key
        for f in schema.fields
        if f.name in form.settings.keep_exif_fields or f.key in form.settings.keep_exif_fields
    }
    keep_names = {str(answers[k]) for k in keep if k in answers}
    staged = []
    for name, data in wanted.items():
        clean = data if name in keep_names else strip_exif(data, media[name])
        staged.append(stage_attachment(store.attachments_dir, name, clean, media[name]))
    return staged


def _new_submission(
    store: IntakeStore,
    form: FormRecord,
    schema: FormSchema,
    incoming: Incoming,
    answers: dict[str, Any],
    row: Any,
    *,
    submitter: str,
) -> NewSubmission:
    geom = row.geometry.iloc[0] if len(row) else None
    lon, lat = _representative_lonlat(geom)
    s = form.settings
    category = (
        None
        if s.duplicate_field is None
        else _text(answers.get(s.duplicate_field) or answers.get(schema.field(s.duplicate_field).key))
    )
    now = utc_now()
    dup_of, score = (
        (None, None)
        if lon is None or lat is None
        else _possible_duplicate(store, form, incoming.instance_id, lon, lat, category, now)
    )
    return NewSubmission(
        instance_id=incoming.instance_id,
        form_id=form.form_id,
        version=form.version,
        answers=answers,
        geometry_wkt=None if geom is None else shapely.to_wkt(geom, rounding_precision=-1),
        public_geometry_wkt=_public_wkt(geom, lon, lat, s.coarsen_m),
        lon=lon,
        lat=lat,
        content_hash=content_hash(form.form_id, answers),
        submitter=submitter,
        source=incoming.source,
        category=category,
        submitted_at=now,
        duplicate_of=dup_of,
        duplicate_score=score,
        deprecated_id=incoming.deprecated_id,
    )


def _representative_lonlat(geom: Any) -> tuple[float | None, float | None]:
    """The point itself, or a point inside a line or polygon (lon, lat degrees)."""
    if geom is None or geom.is_empty:
        return None, None
    point = geom if geom.geom_type == "Point" else geom.representative_point()
    return float(point.x), float(point.y)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _public_wkt(geom: Any, lon: float | None, lat: float | None, coarsen_m: float) -> str | None:
    """The exact WKT, or the centre of a ``coarsen_m`` grid cell (see the module docstring)."""
    if geom is None or lon is None or lat is None:
        return None
    if coarsen_m <= 0:
        return shapely.to_wkt(geom, rounding_precision=-1)
    dlat = coarsen_m / _M_PER_DEG
    clat = (math.floor(lat / dlat) + 0.5) * dlat
    dlon = coarsen_m / (_M_PER_DEG * max(math.cos(math.radians(clat)), 1e-6))
    clon = (math.floor(lon / dlon) + 0.5) * dlon
    return shapely.to_wkt(shapely.Point(round(clon, 6), round(clat, 6)), rounding_precision=-1)


def _possible_duplicate(
    store: IntakeStore, form: FormRecord, instance_id: str, lon: float, lat: float, category: str | None, now: str
) -> tuple[str | None, float | None]:
    """The best earlier match and its score (module docstring formula), or (None, None)."""
    s = form.settings
    if s.duplicate_radius_m <= 0 or s.duplicate_window_h <= 0:
        return None, None
    t_now = datetime.fromisoformat(now)
    since = (t_now - timedelta(hours=s.duplicate_window_h)).isoformat(timespec="microseconds")
    dlat = s.duplicate_radius_m / _M_PER_DEG
    dlon = dlat / max(math.cos(math.radians(lat)), 1e-6)
    box = BBox(lon - dlon, lat - dlat, lon + dlon, lat + dlat)
    found = [
        c
        for c in store.recent_near(form.form_id, since=since, bbox=box, category=category)
        if c.instance_id != instance_id
    ]
    if not found:
        return None, None
    lons = np.radians(np.array([c.lon for c in found], dtype=np.float64))
    lats = np.radians(np.array([c.lat for c in found], dtype=np.float64))
    a = (
        np.sin((lats - math.radians(lat)) / 2) ** 2
        + np.cos(lats) * math.cos(math.radians(lat)) * np.sin((lons - math.radians(lon)) / 2) ** 2
    )
    dist_m = 2 * _EARTH_RADIUS_M * np.arcsin(np.sqrt(a))
    age_h = np.array(
        [(t_now - datetime.fromisoformat(c.submitted_at).astimezone(UTC)).total_seconds() / 3600 for c in found]
    )
    score = np.clip(1 - dist_m / s.duplicate_radius_m, 0, None) * np.clip(1 - age_h / s.duplicate_window_h, 0, None)
    best = int(np.argmax(score))
    if score[best] <= 0:
        return None, None
    return found[best].instance_id, round(float(score[best]), 3)
