"""SQL of the SQLite intake store (private to :mod:`civicmap.intake.store`): schema, statements, rows <-> records."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from civicmap.intake.base import (
    AttachmentRecord,
    FormRecord,
    FormSettings,
    NewSubmission,
    StagedAttachment,
    SubmissionRecord,
    carried_attachments,
    edit_check,
    edit_duplicate,
    receipt_for,
    utc_now,
)

__all__ = [
    "EDIT_COLUMNS",
    "EDIT_SCHEMA",
    "SCHEMA",
    "SUB_COLUMNS",
    "add_edit_columns",
    "attachments",
    "audit",
    "filters",
    "form_record",
    "insert_attachment",
    "insert_submission",
    "json_value",
    "replaced",
    "submission_record",
    "supersede",
]

log = logging.getLogger("civicmap.intake.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS forms (
  form_id TEXT NOT NULL, version TEXT NOT NULL, title TEXT, xlsform BLOB, schema TEXT NOT NULL,
  xform_xml TEXT NOT NULL, settings TEXT NOT NULL, published_at TEXT NOT NULL,
  open INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (form_id, version));
CREATE TABLE IF NOT EXISTS submissions (
  id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL UNIQUE, form_id TEXT NOT NULL, version TEXT NOT NULL,
  answers TEXT NOT NULL, edited_answers TEXT, geometry TEXT, public_geometry TEXT, lon REAL, lat REAL,
  category TEXT, state TEXT NOT NULL DEFAULT 'pending'
    CHECK (state IN ('pending', 'approved', 'rejected', 'needs_changes')),
  content_hash TEXT NOT NULL, submitted_at TEXT NOT NULL, submitter TEXT NOT NULL, source TEXT NOT NULL,
  duplicate_of TEXT, duplicate_score REAL, row_version INTEGER NOT NULL DEFAULT 1, receipt TEXT NOT NULL,
  reviewed_at TEXT, reviewed_by TEXT, deprecated_id TEXT, superseded_by TEXT, root_id TEXT);
CREATE INDEX IF NOT EXISTS submissions_form_state ON submissions (form_id, state);
CREATE INDEX IF NOT EXISTS submissions_form_time ON submissions (form_id, submitted_at);
CREATE TABLE IF NOT EXISTS attachments (
  instance_id TEXT NOT NULL REFERENCES submissions (instance_id), name TEXT NOT NULL, sha256 TEXT NOT NULL,
  size INTEGER NOT NULL, media_type TEXT NOT NULL, path TEXT NOT NULL, PRIMARY KEY (instance_id, name));
CREATE TABLE IF NOT EXISTS audit_log (
  id INTEGER PRIMARY KEY, who TEXT NOT NULL, at TEXT NOT NULL, action TEXT NOT NULL, instance_id TEXT,
  reason TEXT, before TEXT, after TEXT);
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY, hash TEXT NOT NULL, role TEXT NOT NULL, project TEXT NOT NULL, form_id TEXT,
  created_at TEXT NOT NULL, expires_at TEXT, revoked_at TEXT, label TEXT);
"""
#: Columns added since the first schema (edits from the field), added to older files when opened.
EDIT_COLUMNS = ("deprecated_id", "superseded_by", "root_id")
EDIT_SCHEMA = """
CREATE UNIQUE INDEX IF NOT EXISTS submissions_deprecated ON submissions (deprecated_id) WHERE deprecated_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS submissions_root ON submissions (root_id);
"""
SUB_COLUMNS = (
    "instance_id, form_id, version, answers, edited_answers, geometry, public_geometry, lon, lat, state, "
    "content_hash, submitted_at, submitter, source, category, duplicate_of, duplicate_score, row_version, receipt, "
    "reviewed_at, reviewed_by, deprecated_id, superseded_by, root_id"
)


def add_edit_columns(con: sqlite3.Connection) -> None:
    """Add the edit columns to a file made before them (``root_id`` of old rows: their own ID), then their indexes."""
    have = {r["name"] for r in con.execute("PRAGMA table_info(submissions)")}
    for column in EDIT_COLUMNS:
        if column not in have:
            con.execute(f"ALTER TABLE submissions ADD COLUMN {column} TEXT")
            log.info("intake store: column submissions.%s added", column)
    if "root_id" not in have:
        con.execute("UPDATE submissions SET root_id = instance_id WHERE root_id IS NULL")
    for statement in filter(str.strip, EDIT_SCHEMA.split(";")):
        con.execute(statement)


def replaced(con: sqlite3.Connection, new: NewSubmission) -> SubmissionRecord | None:
    """The version an edit replaces, checked by :func:`edit_check`; None for a first version."""
    if new.deprecated_id is None:
        return None
    row = con.execute(f"SELECT {SUB_COLUMNS} FROM submissions WHERE instance_id = ?", (new.deprecated_id,)).fetchone()
    old = None if row is None else submission_record(row)
    edit_check(old, new)
    return old


def insert_submission(con: sqlite3.Connection, new: NewSubmission, old: SubmissionRecord | None) -> None:
    dup_of, dup_score = edit_duplicate(old, new)
    root = new.instance_id if old is None else (old.root_id or old.instance_id)
    con.execute(
        "INSERT INTO submissions (instance_id, form_id, version, answers, geometry, public_geometry, lon, lat, "
        "category, content_hash, submitted_at, submitter, source, duplicate_of, duplicate_score, receipt, "
        "deprecated_id, root_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            new.instance_id, new.form_id, new.version, json.dumps(new.answers, ensure_ascii=False),
            new.geometry_wkt, new.public_geometry_wkt, new.lon, new.lat, new.category, new.content_hash,
            new.submitted_at or utc_now(), new.submitter, new.source, dup_of, dup_score,
            receipt_for(new.instance_id), new.deprecated_id, root,
        ),
    )  # fmt: skip


def supersede(
    con: sqlite3.Connection, old: SubmissionRecord, new: NewSubmission, uploaded: Sequence[StagedAttachment]
) -> list[str]:
    """Mark ``old`` replaced by ``new``, carry over the attachments ``new`` names but did not send; their names."""
    con.execute("UPDATE submissions SET superseded_by = ? WHERE instance_id = ?", (new.instance_id, old.instance_id))
    carried = carried_attachments(attachments(con, old.instance_id), new, uploaded)
    for a in carried:
        insert_attachment(con, new.instance_id, a)
    before = {"state": old.state, "superseded_by": None}
    audit(con, new.submitter, "superseded", old.instance_id, None, before, {**before, "superseded_by": new.instance_id})
    return [a.name for a in carried]


def attachments(con: sqlite3.Connection, instance_id: str) -> list[AttachmentRecord]:
    rows = con.execute(
        "SELECT name, sha256, size, media_type, path, instance_id FROM attachments WHERE instance_id = ? ORDER BY name",
        (instance_id,),
    )
    return [AttachmentRecord(**dict(r)) for r in rows]


def insert_attachment(con: sqlite3.Connection, instance_id: str, a: StagedAttachment) -> bool:
    cur = con.execute(
        "INSERT OR IGNORE INTO attachments VALUES (?, ?, ?, ?, ?, ?)",
        (instance_id, a.name, a.sha256, a.size, a.media_type, a.path),
    )
    return cur.rowcount > 0


def audit(
    con: sqlite3.Connection,
    who: str,
    action: str,
    instance_id: str | None,
    reason: str | None,
    before: Any,
    after: Any,
) -> None:
    con.execute(
        "INSERT INTO audit_log (who, at, action, instance_id, reason, before, after) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            who, utc_now(), action, instance_id, reason,
            None if before is None else json.dumps(before, ensure_ascii=False),
            None if after is None else json.dumps(after, ensure_ascii=False),
        ),
    )  # fmt: skip


def filters(**eq: str | None) -> tuple[str, tuple[str, ...]]:
    given = {k: v for k, v in eq.items() if v is not None}
    if not given:
        return "", ()
    return " WHERE " + " AND ".join(f"{k} = ?" for k in given), tuple(given.values())


def json_value(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def form_record(row: sqlite3.Row) -> FormRecord:
    return FormRecord(
        form_id=row["form_id"],
        version=row["version"],
        title=row["title"],
        schema=json.loads(row["schema"]),
        xform_xml=row["xform_xml"],
        xlsform=bytes(row["xlsform"] or b""),
        published_at=row["published_at"],
        open=bool(row["open"]),
        settings=FormSettings.from_dict(json.loads(row["settings"])),
    )


def submission_record(row: sqlite3.Row) -> SubmissionRecord:
    data = dict(row)
    data["answers"] = json.loads(data["answers"])
    data["edited_answers"] = json_value(data["edited_answers"])
    data["geometry_wkt"] = data.pop("geometry")
    data["public_geometry_wkt"] = data.pop("public_geometry")
    return SubmissionRecord(**data)
