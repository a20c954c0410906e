"""The PostgreSQL intake store: the same :class:`~civicmap.intake.base.IntakeStore` for PostGIS workspaces.

URL: the workspace's store URL (see :mod:`civicmap.store.postgis`), e.g.
``postgresql://user@host/db?schema=city_a&raster_dir=/srv/rasters&attachments_dir=/srv/intake``.
Tables live in ``schema`` (default ``public``, created if missing) and are named ``intake_forms``,
``intake_submissions``, ``intake_attachments``, ``intake_audit_log`` and ``intake_tokens``.
Attachment files stay on disk: ``attachments_dir`` if given, else ``<raster_dir>/../intake_attachments/<schema>``
(``./.civicmap/intake_attachments/<schema>`` without a raster folder), one folder per schema so
:meth:`PostgresIntakeStore.gc` never sees another schema's files.

Durability: every write is one transaction; each session runs with ``synchronous_commit = on``
(PostgreSQL's default, forced here so a database-level ``off`` cannot weaken it), so ``COMMIT``
returns only after the WAL record is flushed to disk. Attachments are staged and fsynced first
(:func:`civicmap.intake.attachments.stage_attachment`, called by
:func:`civicmap.intake.submissions.submit`), the row committed second. A server with ``fsync = off``
is logged as a warning when the store opens.

Idempotency is the ``UNIQUE`` constraint on ``intake_submissions.instance_id``:
``INSERT ... ON CONFLICT (instance_id) DO NOTHING``; when nothing was inserted, the stored content
hash is compared (same: the stored submission is returned and new attachments merged; other:
:class:`ConflictError`). A concurrent insert of the same ID waits for the first transaction and then
does nothing, so N simultaneous identical posts store one row. An edit from the field
(``deprecated_id``) first locks the version it replaces (``SELECT ... FOR UPDATE``), so of two
edits of one version the second sees the first's ``superseded_by`` and gets :class:`ConflictError`
(:func:`~civicmap.intake.base.edit_check`). Tables made before edits existed get the columns
``deprecated_id``, ``superseded_by`` and ``root_id`` (``ADD COLUMN IF NOT EXISTS``) when opened.
Moderation locks the row (``SELECT ... FOR UPDATE``) and checks ``row_version`` (optimistic
concurrency for people).
Times are UTC ISO 8601 text as in the SQLite store; answers and audit values are ``json`` (key
order kept). Driver errors become :class:`~civicmap.errors.StoreError` (the driver's error as cause).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Json

from civicmap.errors import NotFoundError, StoreError
from civicmap.intake import _postgres_sql as pg
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
    carried_attachments,
    edit_check,
    edit_duplicate,
    moderation_change,
    put_audit,
    put_result,
    receipt_for,
    resubmission_check,
    utc_now,
)
from civicmap.store.postgis import _public_url
from civicmap.types import BBox

__all__ = ["TABLE_PREFIX", "PostgresIntakeStore"]

log = logging.getLogger(__name__)

#: Every intake table's name starts with this.
TABLE_PREFIX = "intake_"


class PostgresIntakeStore:
    """:class:`~civicmap.intake.base.IntakeStore` in PostgreSQL (see the module docstring for the URL).

    One connection per thread (autocommit; writes in explicit transactions), closed by :meth:`close`.
    Opening creates the schema and tables if missing and raises :class:`StoreError` with the fix when
    the server cannot be reached.
    """

    def __init__(self, url: str, *, attachments_dir: Path | None = None) -> None:
        self._conninfo, self.schema, raster_dir, attachments = pg.split_url(url)
        self.url = _public_url(url)
        folder = attachments_dir or (Path(attachments) if attachments else None)
        self.attachments_dir = (folder or pg.default_attachments_dir(self.schema, raster_dir)).expanduser().resolve()
        self.attachments_dir.mkdir(parents=True, exist_ok=True)
        self._t = {name: sql.Identifier(self.schema, TABLE_PREFIX + name) for name in pg.TABLES}
        self._local = threading.local()
        self._all: list[psycopg.Connection[dict[str, Any]]] = []
        self._lock = threading.Lock()
        # a store dropped without close() (e.g. ``open_intake(p).store.forms()``) still closes its connections
        weakref.finalize(self, _close_all, self._all, self._lock)
        self._create_tables()

    def __repr__(self) -> str:
        return f"PostgresIntakeStore({self.url!r})"

    # -- connections ---------------------------------------------------------------------
    def _con(self) -> psycopg.Connection[dict[str, Any]]:
        """The calling thread's connection (reopened if it was closed or broken)."""
        con: psycopg.Connection[dict[str, Any]] | None = getattr(self._local, "con", None)
        if con is not None and not con.closed and not con.broken:
            return con
        try:
            con = psycopg.connect(self._conninfo, autocommit=True, row_factory=dict_row)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to PostgreSQL at {self.url}: {str(exc).strip()}; check the URL and that "
                'the server is running (for the tests: eval "$(scripts/postgis)")'
            ) from exc
        self._local.con = con
        with self._lock:
            self._all.append(con)
        return con

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """One durable transaction (rolled back on any error); driver errors become StoreError."""
        con = self._con()
        try:
            with con.transaction():
                yield con
        except psycopg.Error as exc:
            raise StoreError(f"intake store {self.url}: {str(exc).strip()}") from exc

    def _query(self, query: sql.SQL | sql.Composed, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of one read (its own snapshot)."""
        with self._transaction() as con:
            return con.execute(query, args).fetchall()

    def _sql(self, text: str) -> sql.Composed:
        """``text`` with ``{forms}``, ``{submissions}``, ... replaced by the quoted, schema-qualified tables."""
        return sql.SQL(text).format(**self._t)

    def _create_tables(self) -> None:
        names = {k: sql.Identifier(f"{TABLE_PREFIX}{k}") for k in pg.INDEXES}
        with self._transaction() as con:
            con.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"civicmap-intake:{self.schema}",))
            con.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            have = con.execute(
                "SELECT count(*) AS n FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                "AND column_name IN ('deprecated_id', 'superseded_by', 'root_id')",
                (self.schema, f"{TABLE_PREFIX}submissions"),
            ).fetchone()
            schema = pg.SCHEMA.replace("{edit_columns}", "" if have and have["n"] == 3 else pg.EDIT_COLUMNS)
            for statement in filter(str.strip, schema.split(";")):
                con.execute(sql.SQL(statement).format(**self._t, **names))
            fsync = con.execute("SHOW fsync").fetchone()
        if fsync and fsync["fsync"] != "on":
            log.warning("PostgreSQL at %s runs with fsync=off: acknowledged submissions can be lost", self.url)

    def close(self) -> None:
        """Close every connection this object opened (a later call opens new ones)."""
        _close_all(self._all, self._lock)
        self._local = threading.local()

    # -- forms -----------------------------------------------------------------------------
    def publish_form(self, record: FormRecord) -> FormRecord:
        """Store a form version; publishing the same form_id + version again returns the stored one."""
        with self._transaction() as con:
            con.execute(
                self._sql(f"INSERT INTO {{forms}} ({pg.FORM_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                          "ON CONFLICT (form_id, version) DO NOTHING"),
                (
                    record.form_id, record.version, record.title, record.xlsform, Json(record.schema),
                    record.xform_xml, Json(record.settings.to_dict()), record.published_at, record.open,
                ),
            )  # fmt: skip
            self._audit(
                con, "cli", "publish_form", None, None, None, {"form_id": record.form_id, "version": record.version}
            )
        return self.form(record.form_id, record.version)

    def forms(self) -> list[FormRecord]:
        """The latest version of every form, by form id."""
        rows = self._query(
            self._sql(
                f"SELECT {pg.FORM_COLUMNS} FROM {{forms}} f WHERE published_at = (SELECT max(published_at) "
                "FROM {forms} g WHERE g.form_id = f.form_id) ORDER BY form_id"
            )
        )
        return [pg.form_record(r) for r in rows]

    def form(self, form_id: str, version: str | None = None) -> FormRecord:
        """One form version (the latest published when ``version`` is None)."""
        if version is None:
            query = f"SELECT {pg.FORM_COLUMNS} FROM {{forms}} WHERE form_id = %s ORDER BY published_at DESC LIMIT 1"
            rows = self._query(self._sql(query), (form_id,))
        else:
            query = f"SELECT {pg.FORM_COLUMNS} FROM {{forms}} WHERE form_id = %s AND version = %s"
            rows = self._query(self._sql(query), (form_id, version))
        if not rows:
            known = [r["form_id"] for r in self._query(self._sql("SELECT DISTINCT form_id FROM {forms} ORDER BY 1"))]
            what = f"form {form_id!r}" + (f" version {version!r}" if version else "")
            raise NotFoundError(f"{what} is not published here; published forms: {', '.join(known) or 'none'}")
        return pg.form_record(rows[0])

    def set_form_open(self, form_id: str, *, open_: bool, who: str) -> None:
        """Open or close every version of a form."""
        self.form(form_id)
        with self._transaction() as con:
            con.execute(self._sql("UPDATE {forms} SET open = %s WHERE form_id = %s"), (open_, form_id))
            self._audit(con, who, "open_form" if open_ else "close_form", None, None, None, {"form_id": form_id})

    # -- submissions -----------------------------------------------------------------------
    def put_submission(self, new: NewSubmission, attachments: Sequence[StagedAttachment]) -> PutResult:
        """Insert a submission and its attachments in one transaction (idempotent; see the module docstring)."""
        with self._transaction() as con:
            old = self._replaced(con, new)
            created = self._insert_submission(con, new, old)
            if not created:
                stored = con.execute(
                    self._sql("SELECT content_hash, form_id, deprecated_id FROM {submissions} WHERE instance_id = %s"),
                    (new.instance_id,),
                ).fetchone()
                resubmission_check(stored or {"content_hash": None, "form_id": None, "deprecated_id": None}, new)
            added = [a.name for a in attachments if self._insert_attachment(con, new.instance_id, a)]
            carried = self._supersede(con, old, new, attachments) if old is not None and created else []
            line = put_audit(new, old, created=created, carried=carried, added=added)
            if line is not None:
                self._audit(con, new.submitter, line[0], new.instance_id, None, None, line[1])
        return put_result(self, new, old, created=created, added=added)

    def _replaced(self, con: psycopg.Connection[dict[str, Any]], new: NewSubmission) -> SubmissionRecord | None:
        """The version an edit replaces, locked and checked by :func:`edit_check`; None for a first version."""
        if new.deprecated_id is None:
            return None
        row = con.execute(
            self._sql(f"SELECT {pg.SUB_COLUMNS} FROM {{submissions}} WHERE instance_id = %s FOR UPDATE"),
            (new.deprecated_id,),
        ).fetchone()
        old = None if row is None else pg.submission_record(row)
        edit_check(old, new)
        return old

    def _insert_submission(
        self, con: psycopg.Connection[dict[str, Any]], new: NewSubmission, old: SubmissionRecord | None
    ) -> bool:
        """INSERT ... ON CONFLICT DO NOTHING; True when the row is new."""
        dup_of, dup_score = edit_duplicate(old, new)
        root = new.instance_id if old is None else (old.root_id or old.instance_id)
        inserted = con.execute(
            self._sql(
                "INSERT INTO {submissions} (instance_id, form_id, version, answers, geometry, public_geometry, "
                "lon, lat, category, content_hash, submitted_at, submitter, source, duplicate_of, "
                "duplicate_score, receipt, deprecated_id, root_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                "%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (instance_id) DO NOTHING RETURNING id"
            ),
            (
                new.instance_id, new.form_id, new.version, Json(new.answers), new.geometry_wkt,
                new.public_geometry_wkt, new.lon, new.lat, new.category, new.content_hash,
                new.submitted_at or utc_now(), new.submitter, new.source, dup_of, dup_score,
                receipt_for(new.instance_id), new.deprecated_id, root,
            ),
        ).fetchone()  # fmt: skip
        return inserted is not None

    def _supersede(
        self,
        con: psycopg.Connection[dict[str, Any]],
        old: SubmissionRecord,
        new: NewSubmission,
        uploaded: Sequence[StagedAttachment],
    ) -> list[str]:
        """Mark ``old`` replaced by ``new``, carry over the attachments ``new`` names but did not send; their names."""
        con.execute(
            self._sql("UPDATE {submissions} SET superseded_by = %s WHERE instance_id = %s"),
            (new.instance_id, old.instance_id),
        )
        rows = con.execute(self._sql(pg.ATTACHMENTS_OF), (old.instance_id,)).fetchall()
        carried = carried_attachments([AttachmentRecord(**r) for r in rows], new, uploaded)
        for a in carried:
            self._insert_attachment(con, new.instance_id, a)
        before, after = (
            {"state": old.state, "superseded_by": None},
            {"state": old.state, "superseded_by": new.instance_id},
        )
        self._audit(con, new.submitter, "superseded", old.instance_id, None, before, after)
        return [a.name for a in carried]

    def _insert_attachment(
        self, con: psycopg.Connection[dict[str, Any]], instance_id: str, a: StagedAttachment
    ) -> bool:
        cur = con.execute(
            self._sql(
                "INSERT INTO {attachments} (instance_id, name, sha256, size, media_type, path) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (instance_id, name) DO NOTHING"
            ),
            (instance_id, a.name, a.sha256, a.size, a.media_type, a.path),
        )
        return cur.rowcount > 0

    def submission(self, instance_id: str) -> SubmissionRecord:
        """One submission by instanceID."""
        rows = self._query(
            self._sql(f"SELECT {pg.SUB_COLUMNS} FROM {{submissions}} WHERE instance_id = %s"), (instance_id,)
        )
        if not rows:
            raise NotFoundError(f"no submission with instanceID {instance_id!r}")
        return pg.submission_record(rows[0])

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
        given = {k: v for k, v in {"form_id": form_id, "state": state}.items() if v is not None}
        tests: list[sql.Composable] = [sql.SQL("{} = %s").format(sql.Identifier(k)) for k in given]
        tests += [] if include_superseded else [sql.SQL("superseded_by IS NULL")]
        query = sql.SQL("SELECT {} FROM {}{}{} ORDER BY id LIMIT %s OFFSET %s").format(
            sql.SQL(pg.SUB_COLUMNS),
            self._t["submissions"],
            sql.SQL(" WHERE " if tests else ""),
            sql.SQL(" AND ").join(tests),
        )
        return [pg.submission_record(r) for r in self._query(query, (*given.values(), limit, offset))]

    def versions(self, instance_id: str) -> list[SubmissionRecord]:
        """Every version of the submission ``instance_id`` belongs to (its edits from the field), oldest first."""
        query = self._sql(
            f"SELECT {pg.SUB_COLUMNS} FROM {{submissions}} WHERE root_id = "
            "(SELECT root_id FROM {submissions} WHERE instance_id = %s) ORDER BY id"
        )
        found = [pg.submission_record(r) for r in self._query(query, (instance_id,))]
        if not found:
            raise NotFoundError(f"no submission with instanceID {instance_id!r}")
        return found

    def recent_near(self, form_id: str, *, since: str, bbox: BBox, category: str | None) -> list[NearbySubmission]:
        """Submissions of ``form_id`` since ``since`` with their point in ``bbox`` (lon/lat) and this category."""
        query = self._sql(
            "SELECT instance_id, lon, lat, submitted_at FROM {submissions} WHERE form_id = %s AND submitted_at >= %s "
            "AND lon BETWEEN %s AND %s AND lat BETWEEN %s AND %s AND category IS NOT DISTINCT FROM %s "
            "AND superseded_by IS NULL ORDER BY id"
        )
        args = (form_id, since, bbox.west, bbox.east, bbox.south, bbox.north, category)
        return [NearbySubmission(**r) for r in self._query(query, args)]

    def attachments(self, instance_id: str) -> list[AttachmentRecord]:
        """The attachments of one submission, by name."""
        return [AttachmentRecord(**r) for r in self._query(self._sql(pg.ATTACHMENTS_OF), (instance_id,))]

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
        with self._transaction() as con:
            row = con.execute(
                self._sql(f"SELECT {pg.SUB_COLUMNS} FROM {{submissions}} WHERE instance_id = %s FOR UPDATE"),
                (instance_id,),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no submission with instanceID {instance_id!r}")
            change = moderation_change(
                pg.submission_record(row), state=state, edits=edits, expected_version=expected_version
            )
            edited = change.edited_answers
            con.execute(
                self._sql(
                    "UPDATE {submissions} SET state = %s, edited_answers = %s, row_version = row_version + 1, "
                    "reviewed_at = %s, reviewed_by = %s WHERE instance_id = %s"
                ),
                (state, None if edited is None else Json(edited), utc_now(), who, instance_id),
            )
            self._audit(con, who, f"moderate:{state}", instance_id, reason, change.before, change.after)
        return self.submission(instance_id)

    def audit(self, instance_id: str | None = None) -> list[AuditEntry]:
        """Audit log lines (of one submission when given), oldest first."""
        columns = "id, who, at, action, instance_id, reason, before, after"
        if instance_id:
            rows = self._query(
                self._sql(f"SELECT {columns} FROM {{audit_log}} WHERE instance_id = %s ORDER BY id"), (instance_id,)
            )
        else:
            rows = self._query(self._sql(f"SELECT {columns} FROM {{audit_log}} ORDER BY id"))
        return [AuditEntry(**r) for r in rows]

    def _audit(
        self,
        con: psycopg.Connection[dict[str, Any]],
        who: str,
        action: str,
        instance_id: str | None,
        reason: str | None,
        before: Any,
        after: Any,
    ) -> None:
        con.execute(
            self._sql(
                "INSERT INTO {audit_log} (who, at, action, instance_id, reason, before, after) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)"
            ),
            (
                who, utc_now(), action, instance_id, reason,
                None if before is None else Json(before), None if after is None else Json(after),
            ),
        )  # fmt: skip

    # -- tokens ----------------------------------------------------------------------------
    def add_token(self, record: TokenRecord, token_hash: str) -> None:
        """Store a token record with its hash (never the token)."""
        with self._transaction() as con:
            con.execute(
                self._sql(
                    "INSERT INTO {tokens} (id, hash, role, project, form_id, created_at, expires_at, revoked_at, "
                    "label) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                ),
                (
                    record.id, token_hash, record.role, record.project, record.form_id, record.created_at,
                    record.expires_at, record.revoked_at, record.label,
                ),
            )  # fmt: skip
            self._audit(con, "cli", "issue_token", None, None, None, {"id": record.id, "role": record.role})

    def token(self, token_id: str) -> tuple[TokenRecord, str]:
        """A token's record and stored hash."""
        rows = self._query(self._sql("SELECT * FROM {tokens} WHERE id = %s"), (token_id,))
        if not rows:
            raise NotFoundError(f"no token with id {token_id!r}")
        data = rows[0]
        return TokenRecord(**{k: v for k, v in data.items() if k != "hash"}), data["hash"]

    def tokens(self) -> list[TokenRecord]:
        """Every token record (no hashes)."""
        rows = self._query(self._sql("SELECT * FROM {tokens} ORDER BY created_at"))
        return [TokenRecord(**{k: v for k, v in r.items() if k != "hash"}) for r in rows]

    def revoke_token(self, token_id: str, *, who: str) -> TokenRecord:
        """Revoke a token (revoking twice keeps the first time)."""
        self.token(token_id)
        with self._transaction() as con:
            con.execute(
                self._sql("UPDATE {tokens} SET revoked_at = coalesce(revoked_at, %s) WHERE id = %s"),
                (utc_now(), token_id),
            )
            self._audit(con, who, "revoke_token", None, None, None, {"id": token_id})
        return self.token(token_id)[0]

    # -- maintenance -----------------------------------------------------------------------
    def gc(self, *, min_age_s: float = 3600.0) -> int:
        """Delete attachment files (and temporary files) no row refers to, older than ``min_age_s`` seconds."""
        referenced = {r["path"] for r in self._query(self._sql("SELECT DISTINCT path FROM {attachments}"))}
        return delete_unreferenced(self.attachments_dir, referenced, min_age_s=min_age_s)

    def integrity_check(self) -> str:
        """``"ok"``, or the problems: commits not durable, attachment rows whose file is missing or of another size."""
        problems: list[str] = []
        setting = self._query(sql.SQL("SHOW synchronous_commit"))[0]["synchronous_commit"]
        if setting == "off":
            problems.append("synchronous_commit is off: acknowledged submissions can be lost")
        for r in self._query(self._sql("SELECT instance_id, name, size, path FROM {attachments} ORDER BY 1, 2")):
            file = self.attachments_dir / r["path"]
            if not file.is_file() or file.stat().st_size != r["size"]:
                problems.append(f"attachment {r['name']} of {r['instance_id']}: file {r['path']} missing or changed")
        return "; ".join(problems) or "ok"


def _close_all(connections: list[psycopg.Connection[dict[str, Any]]], lock: threading.Lock) -> None:
    with lock:
        for con in connections:
            con.close()
        connections.clear()
