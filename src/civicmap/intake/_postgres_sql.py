"""SQL of the PostgreSQL intake store (private to :mod:`civicmap.intake.postgres`): URL, schema, rows -> records."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from civicmap.intake.base import FormRecord, FormSettings, SubmissionRecord
from civicmap.store.postgis import _parse_url

__all__ = [
    "ATTACHMENTS_OF",
    "EDIT_COLUMNS",
    "FORM_COLUMNS",
    "INDEXES",
    "SCHEMA",
    "SUB_COLUMNS",
    "TABLES",
    "default_attachments_dir",
    "form_record",
    "split_url",
    "submission_record",
]

TABLES = ("forms", "submissions", "attachments", "audit_log", "tokens")
SCHEMA = """
CREATE TABLE IF NOT EXISTS {forms} (
  form_id text NOT NULL, version text NOT NULL, title text, xlsform bytea, schema json NOT NULL,
  xform_xml text NOT NULL, settings json NOT NULL, published_at text NOT NULL,
  open boolean NOT NULL DEFAULT true, PRIMARY KEY (form_id, version));
CREATE TABLE IF NOT EXISTS {submissions} (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, instance_id text NOT NULL UNIQUE, form_id text NOT NULL,
  version text NOT NULL, answers json NOT NULL, edited_answers json, geometry text, public_geometry text,
  lon double precision, lat double precision, category text, state text NOT NULL DEFAULT 'pending'
    CHECK (state IN ('pending', 'approved', 'rejected', 'needs_changes')),
  content_hash text NOT NULL, submitted_at text NOT NULL, submitter text NOT NULL, source text NOT NULL,
  duplicate_of text, duplicate_score double precision, row_version integer NOT NULL DEFAULT 1,
  receipt text NOT NULL, reviewed_at text, reviewed_by text, deprecated_id text, superseded_by text, root_id text);
{edit_columns}
CREATE UNIQUE INDEX IF NOT EXISTS {submissions_deprecated} ON {submissions} (deprecated_id)
  WHERE deprecated_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS {submissions_root} ON {submissions} (root_id);
CREATE INDEX IF NOT EXISTS {submissions_form_state} ON {submissions} (form_id, state);
CREATE INDEX IF NOT EXISTS {submissions_form_time} ON {submissions} (form_id, submitted_at);
CREATE TABLE IF NOT EXISTS {attachments} (
  instance_id text NOT NULL REFERENCES {submissions} (instance_id), name text NOT NULL, sha256 text NOT NULL,
  size bigint NOT NULL, media_type text NOT NULL, path text NOT NULL, PRIMARY KEY (instance_id, name));
CREATE TABLE IF NOT EXISTS {audit_log} (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, who text NOT NULL, at text NOT NULL, action text NOT NULL,
  instance_id text, reason text, before json, after json);
CREATE TABLE IF NOT EXISTS {tokens} (
  id text PRIMARY KEY, hash text NOT NULL, role text NOT NULL, project text NOT NULL, form_id text,
  created_at text NOT NULL, expires_at text, revoked_at text, label text);
"""
SUB_COLUMNS = (
    "instance_id, form_id, version, answers, edited_answers, geometry, public_geometry, lon, lat, state, "
    "content_hash, submitted_at, submitter, source, category, duplicate_of, duplicate_score, row_version, receipt, "
    "reviewed_at, reviewed_by, deprecated_id, superseded_by, root_id"
)
#: For tables made before edits from the field existed; only run when a column is missing (ALTER locks the table).
EDIT_COLUMNS = """
ALTER TABLE {submissions} ADD COLUMN IF NOT EXISTS deprecated_id text;
ALTER TABLE {submissions} ADD COLUMN IF NOT EXISTS superseded_by text;
ALTER TABLE {submissions} ADD COLUMN IF NOT EXISTS root_id text;
UPDATE {submissions} SET root_id = instance_id WHERE root_id IS NULL;
"""
INDEXES = ("submissions_form_state", "submissions_form_time", "submissions_deprecated", "submissions_root")
ATTACHMENTS_OF = (
    "SELECT name, sha256, size, media_type, path, instance_id FROM {attachments} WHERE instance_id = %s ORDER BY name"
)
FORM_COLUMNS = "form_id, version, title, xlsform, schema, xform_xml, settings, published_at, open"


def split_url(url: str) -> tuple[str, str, str | None, str | None]:
    """The libpq connection string, schema, raster folder and attachments folder of a store URL.

    ``options`` is taken out before the shared parser (which would turn its spaces into ``+``) and
    put back with ``-c synchronous_commit=on`` last, so it wins.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in query if k in ("attachments_dir", "options")}
    rest = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k not in own])))
    conninfo, schema, raster_dir = _parse_url(rest)
    options = psycopg.conninfo.conninfo_to_dict(conninfo).get("options") or ""
    options = f"{own.get('options', '')} {options} -c synchronous_commit=on".strip()
    return psycopg.conninfo.make_conninfo(conninfo, options=options), schema, raster_dir, own.get("attachments_dir")


def default_attachments_dir(schema: str, raster_dir: str | None) -> Path:
    if raster_dir:
        return Path(raster_dir).expanduser().resolve().parent / "intake_attachments" / schema
    return Path.cwd() / ".civicmap" / "intake_attachments" / schema


def form_record(row: Mapping[str, Any]) -> FormRecord:
    return FormRecord(
        form_id=row["form_id"],
        version=row["version"],
        title=row["title"],
        schema=row["schema"],
        xform_xml=row["xform_xml"],
        xlsform=bytes(row["xlsform"] or b""),
        published_at=row["published_at"],
        open=bool(row["open"]),
        settings=FormSettings.from_dict(row["settings"]),
    )


def submission_record(row: Mapping[str, Any]) -> SubmissionRecord:
    data = dict(row)
    data["geometry_wkt"] = data.pop("geometry")
    data["public_geometry_wkt"] = data.pop("public_geometry")
    return SubmissionRecord(**data)
