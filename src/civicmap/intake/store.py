"""The SQLite intake store: one file, WAL journal, ``synchronous=FULL``, a busy timeout.

Durability: every write is one ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction and with
``synchronous=FULL`` in WAL mode the commit returns only after the WAL is fsynced, so a
submission acknowledged with 201 survives a kill or power loss (sqlite.org/pragma.html).
Attachments are written and fsynced first (:mod:`civicmap.intake.attachments`), the row second.

Idempotency is the ``UNIQUE`` constraint on ``submissions.instance_id``: the INSERT is tried and
a constraint violation is answered by comparing content hashes (same: the stored one is
returned and new attachments merged; other: :class:`ConflictError`). An edit from the field
(``deprecated_id``) is checked (:func:`~civicmap.intake.base.edit_check`), inserted and marks the
version it replaces ``superseded_by`` in the same transaction; a partial ``UNIQUE`` index on
``deprecated_id`` keeps every version to one successor. Files made before edits existed get the
columns ``deprecated_id``, ``superseded_by`` and ``root_id`` added when opened. ``BEGIN IMMEDIATE`` takes
the write lock first, so two processes on the same file are serialised (``SQLITE_BUSY`` is
waited out for ``busy_timeout_s``). WAL is refused on network file systems (NFS, SMB/CIFS),
where its shared-memory index is unsafe.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from civicmap.errors import NotFoundError, StoreError
from civicmap.intake import _sqlite_sql as db
from civicmap.intake.attachments import delete_unreferenced
from civicmap.intake.base import (
    AttachmentRecord,
    AuditEntry,
    FormRecord,
    NearbySubmission,
    NewSubmission,
    PutResult,
    StagedAttachment,
    SubmissionRecord,
    TokenRecord,
    moderation_change,
    put_audit,
    put_result,
    resubmission_check,
    utc_now,
)
from civicmap.types import BBox

__all__ = ["SQLiteIntakeStore"]

log = logging.getLogger(__name__)

_NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs")


def _filesystem_type(path: Path) -> str | None:
    """The file system type of ``path`` from /proc/mounts (Linux), else None."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    best, kind = "", None
    resolved = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) > 2 and resolved.startswith(parts[1]) and len(parts[1]) >= len(best):
            best, kind = parts[1], parts[2]
    return kind


class SQLiteIntakeStore:
    """:class:`~civicmap.intake.base.IntakeStore` in one SQLite file; attachments in ``<file>.attachments/``."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0, attachments_dir: Path | None = None) -> None:
        self.path = Path(path)
        self.url = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.attachments_dir = attachments_dir or self.path.with_name(self.path.stem + "_attachments")
        self.attachments_dir.mkdir(parents=True, exist_ok=True)
        fs = _filesystem_type(self.path.parent)
        if fs in _NETWORK_FS:
            raise StoreError(
                f"intake store {self.path} is on a network file system ({fs}); SQLite WAL is unsafe there: "
                "put the project on a local disk or use a PostgreSQL store"
            )
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        with self._write() as con:
            for statement in filter(str.strip, db.SCHEMA.split(";")):
                con.execute(statement)
            db.add_edit_columns(con)

    # -- connections ---------------------------------------------------------------------
    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False)
            con.row_factory = sqlite3.Row
            con.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"intake store {self.path}: could not switch to WAL (journal_mode is {mode})")
            con.execute("PRAGMA synchronous = FULL")
            con.execute("PRAGMA foreign_keys = ON")
            self._local.con = con
            with self._lock:
                self._all.append(con)
        return con

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One durable write transaction (``BEGIN IMMEDIATE``; rolled back on any error)."""
        con = self._con()
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"intake store {self.path} is busy or unwritable ({exc}); retry") from exc
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this object opened."""
        with self._lock:
            for con in self._all:
                con.close()
            self._all.clear()
        self._local = threading.local()

    # -- forms -----------------------------------------------------------------------------
    def publish_form(self, record: FormRecord) -> FormRecord:
        """Store a form version; publishing the same form_id + version again returns the stored one."""
        with self._write() as con:
            con.execute(
                "INSERT OR IGNORE INTO forms VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.form_id, record.version, record.title, record.xlsform, json.dumps(record.schema),
                    record.xform_xml, json.dumps(record.settings.to_dict()), record.published_at, int(record.open),
                ),
            )  # fmt: skip
            db.audit(
                con, "cli", "publish_form", None, None, None, {"form_id": record.form_id, "version": record.version}
            )
        return self.form(record.form_id, record.version)

    def forms(self) -> list[FormRecord]:
        """The latest version of every form, by form id."""
        rows = self._con().execute(
            "SELECT * FROM forms f WHERE published_at = (SELECT max(published_at) FROM forms g "
            "WHERE g.form_id = f.form_id) ORDER BY form_id"
        )
        return [db.form_record(r) for r in rows]

    def form(self, form_id: str, version: str | None = None) -> FormRecord:
        """One form version (the latest published when ``version`` is None)."""
        con = self._con()
        if version is None:
            row = con.execute(
                "SELECT * FROM forms WHERE form_id = ? ORDER BY published_at DESC LIMIT 1", (form_id,)
            ).fetchone()
        else:
            row = con.execute("SELECT * FROM forms WHERE form_id = ? AND version = ?", (form_id, version)).fetchone()
        if row is None:
            known = [r[0] for r in con.execute("SELECT DISTINCT form_id FROM forms ORDER BY 1")]
            what = f"form {form_id!r}" + (f" version {version!r}" if version else "")
            raise NotFoundError(f"{what} is not published here; published forms: {', '.join(known) or 'none'}")
        return db.form_record(row)

    def set_form_open(self, form_id: str, *, open_: bool, who: str) -> None:
        """Open or close every version of a form."""
        self.form(form_id)
        with self._write() as con:
            con.execute("UPDATE forms SET open = ? WHERE form_id = ?", (int(open_), form_id))
            db.audit(con, who, "open_form" if open_ else "close_form", None, None, None, {"form_id": form_id})

    # -- submissions -----------------------------------------------------------------------
    def put_submission(self, new: NewSubmission, attachments: Sequence[StagedAttachment]) -> PutResult:
        """Insert a submission and its attachments in one transaction (idempotent; see the module docstring)."""
        with self._write() as con:
            old = db.replaced(con, new)
            try:
                db.insert_submission(con, new, old)
                created = True
            except sqlite3.IntegrityError:
                created = False
                row = con.execute(
                    "SELECT content_hash, form_id, deprecated_id FROM submissions WHERE instance_id = ?",
                    (new.instance_id,),
                ).fetchone()
                if row is None:  # another constraint failed: not a resubmission
                    raise
                resubmission_check(row, new)
            added = [a.name for a in attachments if db.insert_attachment(con, new.instance_id, a)]
            carried = db.supersede(con, old, new, attachments) if old is not None and created else []
            line = put_audit(new, old, created=created, carried=carried, added=added)
            if line is not None:
                db.audit(con, new.submitter, line[0], new.instance_id, None, None, line[1])
        return put_result(self, new, old, created=created, added=added)

    def submission(self, instance_id: str) -> SubmissionRecord:
        """One submission by instanceID."""
        row = (
            self._con()
            .execute(f"SELECT {db.SUB_COLUMNS} FROM submissions WHERE instance_id = ?", (instance_id,))
            .fetchone()
        )
        if row is None:
            raise NotFoundError(f"no submission with instanceID {instance_id!r}")
        return db.submission_record(row)

    def submissions(
        self,
        *,
        form_id: str | None = None,
        state: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        include_superseded: bool = False,
    ) -> list[SubmissionRecord]:
        """Submissions in arrival order, optionally of one form and/or one state; current versions unless asked."""
        where, args = db.filters(form_id=form_id, state=state)
        if not include_superseded:
            where += (" AND" if where else " WHERE") + " superseded_by IS NULL"
        sql = f"SELECT {db.SUB_COLUMNS} FROM submissions{where} ORDER BY id LIMIT ? OFFSET ?"
        rows = self._con().execute(sql, (*args, -1 if limit is None else limit, offset))
        return [db.submission_record(r) for r in rows]

    def versions(self, instance_id: str) -> list[SubmissionRecord]:
        """Every version of the submission ``instance_id`` belongs to (its edits from the field), oldest first."""
        rows = self._con().execute(
            f"SELECT {db.SUB_COLUMNS} FROM submissions WHERE root_id = "
            "(SELECT root_id FROM submissions WHERE instance_id = ?) ORDER BY id",
            (instance_id,),
        )
        found = [db.submission_record(r) for r in rows]
        if not found:
            raise NotFoundError(f"no submission with instanceID {instance_id!r}")
        return found

    def recent_near(self, form_id: str, *, since: str, bbox: BBox, category: str | None) -> list[NearbySubmission]:
        """Submissions of ``form_id`` since ``since`` with their point in ``bbox`` (lon/lat) and this category."""
        sql = (
            "SELECT instance_id, lon, lat, submitted_at FROM submissions WHERE form_id = ? AND submitted_at >= ? "
            "AND lon BETWEEN ? AND ? AND lat BETWEEN ? AND ? AND category IS ? AND superseded_by IS NULL ORDER BY id"
        )
        args = (form_id, since, bbox.west, bbox.east, bbox.south, bbox.north, category)
        return [NearbySubmission(**dict(r)) for r in self._con().execute(sql, args)]

    def attachments(self, instance_id: str) -> list[AttachmentRecord]:
        """The attachments of one submission, by name."""
        return db.attachments(self._con(), instance_id)

    def moderate(
        self,
        instance_id: str,
        *,
        state: str,
        who: str,
        reason: str | None,
        edits: Mapping[str, Any] | None,
        expected_version: int | None,
    ) -> SubmissionRecord:
        """Set the state (and merge edits) if ``expected_version`` is current; one audit line."""
        with self._write() as con:
            row = con.execute(
                f"SELECT {db.SUB_COLUMNS} FROM submissions WHERE instance_id = ?", (instance_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no submission with instanceID {instance_id!r}")
            change = moderation_change(
                db.submission_record(row), state=state, edits=edits, expected_version=expected_version
            )
            edited = change.edited_answers
            now = utc_now()
            con.execute(
                "UPDATE submissions SET state = ?, edited_answers = ?, row_version = row_version + 1, "
                "reviewed_at = ?, reviewed_by = ? WHERE instance_id = ?",
                (state, None if edited is None else json.dumps(edited, ensure_ascii=False), now, who, instance_id),
            )
            db.audit(con, who, f"moderate:{state}", instance_id, reason, change.before, change.after)
        return self.submission(instance_id)

    def audit(self, instance_id: str | None = None) -> list[AuditEntry]:
        """Audit log lines (of one submission when given), oldest first."""
        where, args = (" WHERE instance_id = ?", (instance_id,)) if instance_id else ("", ())
        rows = self._con().execute(f"SELECT * FROM audit_log{where} ORDER BY id", args)
        return [
            AuditEntry(**{**dict(r), "before": db.json_value(r["before"]), "after": db.json_value(r["after"])})
            for r in rows
        ]

    # -- tokens ----------------------------------------------------------------------------
    def add_token(self, record: TokenRecord, token_hash: str) -> None:
        """Store a token record with its hash."""
        with self._write() as con:
            con.execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id, token_hash, record.role, record.project, record.form_id, record.created_at,
                    record.expires_at, record.revoked_at, record.label,
                ),
            )  # fmt: skip
            db.audit(con, "cli", "issue_token", None, None, None, {"id": record.id, "role": record.role})

    def token(self, token_id: str) -> tuple[TokenRecord, str]:
        """A token's record and stored hash."""
        row = self._con().execute("SELECT * FROM tokens WHERE id = ?", (token_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no token with id {token_id!r}")
        data = dict(row)
        return TokenRecord(**{k: v for k, v in data.items() if k != "hash"}), data["hash"]

    def tokens(self) -> list[TokenRecord]:
        """Every token record (no hashes)."""
        rows = self._con().execute("SELECT * FROM tokens ORDER BY created_at")
        return [TokenRecord(**{k: v for k, v in dict(r).items() if k != "hash"}) for r in rows]

    def revoke_token(self, token_id: str, *, who: str) -> TokenRecord:
        """Revoke a token (revoking twice keeps the first time)."""
        self.token(token_id)
        with self._write() as con:
            con.execute("UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", (utc_now(), token_id))
            db.audit(con, who, "revoke_token", None, None, None, {"id": token_id})
        return self.token(token_id)[0]

    # -- maintenance -----------------------------------------------------------------------
    def gc(self, *, min_age_s: float = 3600.0) -> int:
        """Delete attachment files (and temporary files) no row refers to, older than ``min_age_s`` seconds."""
        referenced = {r[0] for r in self._con().execute("SELECT DISTINCT path FROM attachments")}
        return delete_unreferenced(self.attachments_dir, referenced, min_age_s=min_age_s)

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check`` (``"ok"`` when healthy)."""
        return "; ".join(str(r[0]) for r in self._con().execute("PRAGMA integrity_check"))
