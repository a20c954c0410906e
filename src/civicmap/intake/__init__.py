"""Survey intake: submissions from phones and the web form, durably stored, moderated, then mapped.

>>> from civicmap.intake import open_intake, publish_form, approved_submissions
>>> intake = open_intake("sample_data/demo")                                   # doctest: +SKIP
>>> publish_form(intake.store, "sample_data/demo/forms/building_survey.xlsx")  # doctest: +SKIP
>>> intake.on_change(lambda event: print(event.form_id, event.bbox))          # doctest: +SKIP
>>> approved_submissions(intake.store, "building_survey")                      # doctest: +SKIP

The store follows the workspace store (:func:`open_intake_store`): beside a GeoPackage it is one
SQLite file (``<store folder>/intake.sqlite``, attachments in ``intake_attachments/``); a workspace
whose store URL is ``postgresql://`` keeps its intake in the same database and schema
(:class:`~civicmap.intake.postgres.PostgresIntakeStore`, tables ``intake_*``, attachment files on disk).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from civicmap.config import ProjectConfig, read_project_config
from civicmap.errors import AuthError, InputError, RateLimitError
from civicmap.intake.base import (
    ChangeEvent,
    FormRecord,
    FormSettings,
    IntakeLimits,
    IntakeStore,
    PutResult,
    SubmissionRecord,
)
from civicmap.intake.exports import export_bytes, write_export
from civicmap.intake.forms import publish_form
from civicmap.intake.moderation import approved_submissions, moderate, superseded_event
from civicmap.intake.store import SQLiteIntakeStore
from civicmap.intake.submissions import FormKey, Incoming, Pending, submit_many
from civicmap.intake.tokens import CAN_MODERATE, Principal, authenticate, issue_token, require
from civicmap.types import BBox

__all__ = [
    "INTAKE_FILE",
    "ChangeEvent",
    "FormRecord",
    "FormSettings",
    "Intake",
    "IntakeLimits",
    "IntakeStore",
    "SQLiteIntakeStore",
    "SubmissionRequest",
    "approved_submissions",
    "export_bytes",
    "intake_path",
    "issue_token",
    "open_intake",
    "open_intake_store",
    "publish_form",
    "write_export",
]

log = logging.getLogger(__name__)

INTAKE_FILE = "intake.sqlite"


@dataclass(frozen=True)
class SubmissionRequest:
    """One submission as a caller sends it: parsed answers, attachment files, who, and from where (rate limit)."""

    incoming: Incoming
    files: Mapping[str, bytes]
    principal: Principal
    client: str = ""


class Intake:
    """One project's intake: the store, the project area (lat/lon swap check), limits and change hooks.

    ``write_concurrency`` is how many batches of submissions a server process works on at once
    (the web service queues the others, first come first served, and hands everything queued to
    the next :meth:`submit_many` call). The default is 1 for both backends: validation holds the
    GIL, so a second batch in another thread only makes both batches smaller and the threads
    contend (measured with PostgreSQL: 3.0 ms of server CPU per submission with 1, 6.3 with 2,
    7.0 with 4); with SQLite, threads that race for the file's one write lock also wait in its
    busy handler (sleeps of 1 to 100 ms). Each submission of a batch still commits on its own.
    """

    def __init__(
        self,
        store: IntakeStore,
        *,
        project: str,
        area: BBox | None = None,
        limits: IntakeLimits | None = None,
        write_concurrency: int | None = None,
    ) -> None:
        self.store = store
        self.project = project
        self.area = area
        self.limits = limits or IntakeLimits()
        self.write_concurrency = 1 if write_concurrency is None else write_concurrency
        if self.write_concurrency < 1:
            raise InputError(f"write_concurrency {write_concurrency!r} must be at least 1 (submissions at once)")
        self._callbacks: list[Callable[[ChangeEvent], None]] = []
        self._hits: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def on_change(self, callback: Callable[[ChangeEvent], None]) -> None:
        """Call ``callback(event)`` whenever the approved submissions of a form change."""
        self._callbacks.append(callback)

    def authenticate(self, token: str | None) -> Principal:
        """The caller of a request with ``token`` (None = anonymous)."""
        return authenticate(self.store, token, project=self.project)

    def submit(
        self, incoming: Incoming, files: Mapping[str, bytes], *, principal: Principal, client: str = ""
    ) -> PutResult:
        """Store a submission if ``principal`` may submit to its form (anonymous only where the form allows)."""
        [outcome] = self.submit_many([SubmissionRequest(incoming, files, principal, client)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def submit_many(self, requests: Sequence[SubmissionRequest]) -> list[PutResult | Exception]:
        """Several :meth:`submit` calls at once: per request, its :class:`PutResult` or the exception it raises.

        Each form version is read once; access and the anonymous rate limit are checked per
        request, in order; the answers to one form are validated together, then each submission
        is stored in its own transaction (see :func:`~civicmap.intake.submissions.submit_many`).
        One request's failure never affects another's outcome.
        """
        forms: dict[FormKey, FormRecord] = {}
        outcomes: list[PutResult | Exception | None] = [None] * len(requests)
        allowed: list[int] = []
        for pos, r in enumerate(requests):
            try:
                self._allow(r, forms)
                allowed.append(pos)
            except Exception as exc:  # refused or unknown form: this request only
                outcomes[pos] = exc
        pending = [Pending(requests[p].incoming, requests[p].files, requests[p].principal.who) for p in allowed]
        stored = submit_many(self.store, pending, area=self.area, limits=self.limits, forms=forms)
        for pos, outcome in zip(allowed, stored, strict=True):
            outcomes[pos] = outcome
            if not isinstance(outcome, Exception):
                self._tell(superseded_event(outcome))  # an edit from the field pulled an approved version out
        return cast(list[PutResult | Exception], outcomes)  # every position was filled above

    def _allow(self, request: SubmissionRequest, forms: dict[FormKey, FormRecord]) -> None:
        """Raise unless ``request.principal`` may submit to its form (read into ``forms`` once); counts anonymous."""
        key = (request.incoming.form_id, request.incoming.version)
        if key not in forms:
            forms[key] = self.store.form(*key)
        form = forms[key]
        if request.principal.anonymous:
            if not form.settings.anonymous:
                raise AuthError(f"form {form.form_id!r} does not take anonymous submissions; send a mapper token")
            self._count(request.client)
        else:
            require(
                request.principal,
                frozenset({"mapper", "moderator", "analyst", "admin"}),
                form_id=form.form_id,
                action="submit",
            )

    def moderate(self, instance_id: str, *, principal: Principal, **change: Any) -> SubmissionRecord:
        """Moderate (see :func:`civicmap.intake.moderation.moderate`) and tell the change hooks."""
        form_id = self.store.submission(instance_id).form_id
        require(principal, CAN_MODERATE, form_id=form_id if principal.form_id else None, action="moderation")
        record, event = moderate(self.store, instance_id, who=principal.who, **change)
        self._tell(event)
        return record

    def _tell(self, event: ChangeEvent | None) -> None:
        """Call the change hooks with ``event`` (nothing when None); a failing hook is logged, not raised."""
        if event is None:
            return
        for callback in self._callbacks:
            try:
                callback(event)
            except Exception:
                log.exception("change hook %r failed for %s", callback, event)

    def _count(self, client: str) -> None:
        """Anonymous rate limit per client address (fixed one-minute windows, this process only)."""
        limit = self.limits.rate_per_minute
        if limit <= 0:
            return
        minute = int(time.time() // 60)
        with self._lock:
            start, count = self._hits.get(client, (minute, 0))
            count = count + 1 if start == minute else 1
            self._hits[client] = (minute, count)
        if count > limit:
            raise RateLimitError(
                f"too many anonymous submissions from {client or 'this client'}: at most {limit} a minute"
            )


_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def intake_path(config: ProjectConfig) -> Path | None:
    """Where a project's intake SQLite file lives; None when the intake is in PostgreSQL (see the module docstring)."""
    url = config.store_url
    if url.startswith(_POSTGRES_SCHEMES):
        return None
    path = Path(url.removeprefix("file://"))
    return (path if path.is_absolute() else config.root / path).parent / INTAKE_FILE


def open_intake_store(config: ProjectConfig, path: Path | None = None) -> IntakeStore:
    """The intake store of a project: SQLite at ``path`` if given, else the backend of its store URL.

    A ``postgresql://`` store URL gives a :class:`~civicmap.intake.postgres.PostgresIntakeStore` in the
    URL's schema (needs psycopg: ``pip install 'civicmap[postgis]'``); a file store gives a
    :class:`SQLiteIntakeStore` beside it (:func:`intake_path`).
    """
    if path is not None:
        return SQLiteIntakeStore(path)
    sqlite_path = intake_path(config)
    if sqlite_path is not None:
        return SQLiteIntakeStore(sqlite_path)
    from civicmap.intake.postgres import PostgresIntakeStore  # noqa: PLC0415 - psycopg only for PostgreSQL projects

    return PostgresIntakeStore(config.store_url)


def open_intake(
    project: str | Path | ProjectConfig,
    *,
    area: BBox | None = None,
    limits: IntakeLimits | None = None,
    path: Path | None = None,
) -> Intake:
    """The intake of the project in folder ``project`` (its ``civicmap.toml``), store created if needed.

    ``path`` overrides where the SQLite file lives (default :func:`intake_path`); a workspace
    passes the folder of the store it actually uses. Without it, a ``postgresql://`` store URL
    puts the intake in PostgreSQL (see :func:`open_intake_store`).
    """
    config = project if isinstance(project, ProjectConfig) else read_project_config(project)
    area = area or config.area.bbox
    store = open_intake_store(config, path)
    return Intake(store, project=config.name, area=area, limits=limits or IntakeLimits.from_env())
