"""Moderation (state changes, edits that keep the original) and the approved-submissions layer.

:func:`moderate` validates edits with the form's rules, changes the state under optimistic
concurrency (a stale ``expected_version`` is a :class:`ConflictError`, like ODK Central's
409.9) and writes the audit log; it returns a :class:`ChangeEvent` when the set of approved
submissions changed, with the lon/lat box of the submissions concerned, so the caller can
rebuild layers and invalidate tiles.

:func:`approved_submissions` is the layer: a GeoDataFrame in EPSG:4326 (x = longitude) with
the moderators' edits applied, typed by the same code that reads submission files. Versions
replaced by an edit from the field (``superseded_by`` set) are never in it, nor in exports;
:func:`superseded_event` is the event to send when such an edit pulls an approved version out.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely

from civicmap.errors import InputError, SubmissionError
from civicmap.intake.base import STATES, ChangeEvent, IntakeStore, PutResult, SubmissionRecord
from civicmap.intake.forms import form_schema
from civicmap.sources.survey import read_submissions, validate_submission
from civicmap.types import BBox

__all__ = [
    "approved_submissions",
    "change_event",
    "moderate",
    "submission_document",
    "submissions_frame",
    "superseded_event",
]

#: Columns of the layer besides the form's answers.
META_COLUMNS = ("state", "receipt", "duplicate_of", "duplicate_score", "reviewed_at")


def moderate(
    store: IntakeStore,
    instance_id: str,
    *,
    state: str,
    who: str,
    reason: str | None = None,
    edits: Mapping[str, Any] | None = None,
    expected_version: int | None = None,
) -> tuple[SubmissionRecord, ChangeEvent | None]:
    """Set a submission's state (``approved``/``rejected``/``needs_changes``/``pending``), edits kept apart.

    Raises :class:`InputError` (unknown state), :class:`SubmissionError` (edits break the form's
    rules; every problem listed), :class:`ConflictError` (stale ``expected_version``).
    """
    if state not in STATES:
        raise InputError(f"state {state!r} unknown; expected one of {', '.join(STATES)}")
    current = store.submission(instance_id)
    if edits:
        form = store.form(current.form_id, current.version)
        merged = {**current.current_answers, **edits}
        _, errors = validate_submission(merged, form_schema(form), instance_id=instance_id)
        if errors:
            raise SubmissionError(f"edits to {instance_id} break the form's rules", errors)
    updated = store.moderate(
        instance_id, state=state, who=who, reason=reason, edits=edits, expected_version=expected_version
    )
    changed = "approved" in (current.state, updated.state) and (current.state != updated.state or bool(edits))
    return updated, change_event([current, updated], state) if changed else None


def change_event(records: Sequence[SubmissionRecord], state: str) -> ChangeEvent:
    """The event for ``records`` (one form): their instance ids and the lon/lat box of their geometries."""
    geoms = shapely.from_wkt([r.geometry_wkt for r in records if r.geometry_wkt])
    box = BBox(*map(float, shapely.total_bounds(geoms))) if len(geoms) else None
    ids = tuple(dict.fromkeys(r.instance_id for r in records))
    return ChangeEvent(records[0].form_id, ids, box, state)


def superseded_event(result: PutResult) -> ChangeEvent | None:
    """The event of an edit from the field that replaced an approved version (it left the layer), else None.

    Its ids are the replaced version and the edit; its box covers both geometries (lon/lat degrees).
    """
    old = result.superseded
    if old is None or old.state != "approved":
        return None
    return change_event([old, result.record], "superseded")


def submission_document(record: SubmissionRecord, *, include_private: bool) -> dict[str, Any]:
    """A submission as JSON for moderators (``include_private``) or its submitter's receipt view."""
    doc: dict[str, Any] = {
        "instance_id": record.instance_id,
        "receipt": record.receipt,
        "form_id": record.form_id,
        "version": record.version,
        "state": record.state,
        "row_version": record.row_version,
        "submitted_at": record.submitted_at,
    }
    if include_private:
        doc |= {
            "answers": record.answers,
            "edited_answers": record.edited_answers,
            "geometry": record.geometry_wkt,
            "public_geometry": record.public_geometry_wkt,
            "submitter": record.submitter,
            "source": record.source,
            "duplicate_of": record.duplicate_of,
            "duplicate_score": record.duplicate_score,
            "reviewed_at": record.reviewed_at,
            "reviewed_by": record.reviewed_by,
            "deprecated_id": record.deprecated_id,
            "superseded_by": record.superseded_by,
            "root_id": record.root_id,
        }
    return doc


def approved_submissions(store: IntakeStore, form_id: str, *, include_private: bool = False) -> gpd.GeoDataFrame:
    """Approved submissions of ``form_id`` as a layer (EPSG:4326, lon/lat), moderators' edits applied.

    Without ``include_private`` the private answers are dropped and the geometry is the public one
    (coarsened when the form asks); with it, every answer and the exact geometry.
    """
    return submissions_frame(store, form_id, state="approved", include_private=include_private)


def submissions_frame(
    store: IntakeStore, form_id: str, *, state: str | None = "approved", include_private: bool = False
) -> gpd.GeoDataFrame:
    """Submissions of ``form_id`` (``state`` None = all) typed by the form's rules; see :func:`approved_submissions`."""
    form = store.form(form_id)
    schema = form_schema(form)
    records = store.submissions(form_id=form_id, state=state)
    private = [f.column for f in schema.private_fields]
    if not records:
        columns = [f.column for f in schema.fields if f.has_value and f.key != "meta/instanceID"]
        keep = [c for c in columns if include_private or c not in private]
        return gpd.GeoDataFrame(columns=[*keep, *META_COLUMNS], geometry=[], crs="EPSG:4326")
    rows = [{**r.current_answers, "meta/instanceID": r.instance_id} for r in records]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{form_id}.json"
        path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        subs = read_submissions(path, schema)
    if subs.errors:
        raise SubmissionError(f"stored submissions of {form_id!r} no longer pass the form's rules", subs.errors)
    frame = subs.frame.drop(columns=["source_format", "source_file", "source_row", "form_version"], errors="ignore")
    meta = pd.DataFrame(
        [{c: getattr(r, c) for c in META_COLUMNS} for r in records], index=[r.instance_id for r in records]
    )
    frame = frame.join(meta)
    frame["submitted_at"] = pd.to_datetime(pd.Series({r.instance_id: r.submitted_at for r in records}), utc=True)
    if not include_private:
        public = shapely.from_wkt([r.public_geometry_wkt for r in records])
        frame = frame.drop(columns=[c for c in private if c in frame]).set_geometry(
            gpd.GeoSeries(public, index=[r.instance_id for r in records], crs="EPSG:4326").reindex(frame.index)
        )
    return frame
