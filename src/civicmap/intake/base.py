"""Value types of survey intake and the :class:`IntakeStore` interface every backend offers.

Times are UTC ISO 8601 strings (``2026-11-02T09:03:52.262000+00:00``); geometries are WKT in
EPSG:4326 with **longitude first** (x = lon, y = lat), whatever order the client sent.

**Edits from the field** (ODK Collect, Enketo, the web form) arrive as a new instance whose
``meta/deprecatedID`` (JSON: ``deprecated_id``) names the version they replace, as in ODK
Central: every version is stored under its own instanceID, the first version's ID is the
``root_id`` of all of them, and the replaced version gets ``superseded_by``. A superseded
version stays stored (audit, :meth:`IntakeStore.versions`) but leaves the queue, the layers,
the exports and the approved set; the new version starts ``pending``. :func:`edit_check`
states the rules both stores apply inside their write transaction.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from civicmap.errors import ConfigError, ConflictError, ForbiddenError, InputError, NotFoundError
from civicmap.types import BBox

__all__ = [
    "ROLES",
    "STATES",
    "AttachmentRecord",
    "AuditEntry",
    "ChangeEvent",
    "FormRecord",
    "FormSettings",
    "IntakeLimits",
    "IntakeStore",
    "ModerationChange",
    "NearbySubmission",
    "NewSubmission",
    "PutResult",
    "Role",
    "StagedAttachment",
    "State",
    "SubmissionRecord",
    "TokenRecord",
    "carried_attachments",
    "edit_check",
    "edit_duplicate",
    "moderation_change",
    "put_audit",
    "put_result",
    "receipt_for",
    "resubmission_check",
    "utc_now",
]

State = Literal["pending", "approved", "rejected", "needs_changes"]
Role = Literal["anonymous_submitter", "mapper", "moderator", "analyst", "admin"]
#: Review states; every submission starts ``pending``.
STATES: tuple[str, ...] = ("pending", "approved", "rejected", "needs_changes")
#: Token roles (C4 of the conventions).
ROLES: tuple[str, ...] = ("anonymous_submitter", "mapper", "moderator", "analyst", "admin")


@dataclass(frozen=True)
class FormSettings:
    """Per-form intake settings, chosen when the form is published.

    ``anonymous``: submissions without a token are accepted. ``coarsen_m``: the public
    geometry is the centre of a ``coarsen_m`` metre grid cell (0 = exact). Possible duplicates:
    reports with the same ``duplicate_field`` answer within ``duplicate_radius_m`` metres and
    ``duplicate_window_h`` hours (no field = the same form is enough). ``keep_exif_fields``:
    image questions whose photos keep their EXIF (GPS) data.
    """

    anonymous: bool = True
    coarsen_m: float = 0.0
    duplicate_field: str | None = None
    duplicate_radius_m: float = 25.0
    duplicate_window_h: float = 72.0
    keep_exif_fields: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**self.__dict__, "keep_exif_fields": list(self.keep_exif_fields)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FormSettings:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "keep_exif_fields" in known:
            known["keep_exif_fields"] = tuple(known["keep_exif_fields"])
        return cls(**known)


@dataclass(frozen=True)
class FormRecord:
    """One published form version: the XLSForm bytes, the schema (JSON), the XForm and settings."""

    form_id: str
    version: str
    title: str | None
    schema: dict[str, Any]
    """The :class:`~civicmap.sources.survey.FormSchema` as JSON (see ``civicmap.intake.forms``)."""
    xform_xml: str
    xlsform: bytes
    published_at: str
    open: bool = True
    settings: FormSettings = field(default_factory=FormSettings)


@dataclass(frozen=True)
class StagedAttachment:
    """An attachment already written durably to the attachments folder, not yet referenced by a row."""

    name: str
    """The file name the submission refers to (safe: no folders)."""
    sha256: str
    size: int
    media_type: str
    path: str
    """Path relative to the attachments folder (content addressed: ``ab/abcdef...``)."""


@dataclass(frozen=True)
class AttachmentRecord(StagedAttachment):
    """A stored attachment of a submission."""

    instance_id: str = ""


@dataclass(frozen=True)
class NewSubmission:
    """A validated submission ready to be stored (``answers`` keyed by field path, as text)."""

    instance_id: str
    form_id: str
    version: str
    answers: dict[str, Any]
    geometry_wkt: str | None
    public_geometry_wkt: str | None
    lon: float | None
    lat: float | None
    """A representative point (lon/lat degrees) for duplicate search and change boxes."""
    content_hash: str
    submitter: str
    source: Literal["json", "openrosa", "file"]
    category: str | None = None
    submitted_at: str = ""
    duplicate_of: str | None = None
    duplicate_score: float | None = None
    deprecated_id: str | None = None
    """The instanceID of the version this one edits (ODK ``meta/deprecatedID``); None for a first version."""


@dataclass(frozen=True)
class SubmissionRecord:
    """A stored submission; ``edited_answers`` (moderators' edits) never overwrite ``answers``."""

    instance_id: str
    form_id: str
    version: str
    answers: dict[str, Any]
    edited_answers: dict[str, Any] | None
    geometry_wkt: str | None
    public_geometry_wkt: str | None
    lon: float | None
    lat: float | None
    state: str
    content_hash: str
    submitted_at: str
    submitter: str
    source: str
    category: str | None
    duplicate_of: str | None
    duplicate_score: float | None
    row_version: int
    """Grows by one at each moderation (optimistic concurrency: ``expected_version``)."""
    receipt: str
    reviewed_at: str | None = None
    reviewed_by: str | None = None
    deprecated_id: str | None = None
    """The version this one replaced (an edit from the field), None for a first version."""
    superseded_by: str | None = None
    """The version that replaced this one; None while this is the current version."""
    root_id: str | None = None
    """The instanceID of the first version: the logical submission every version belongs to."""

    @property
    def current_answers(self) -> dict[str, Any]:
        """The answers with the moderators' edits applied."""
        return {**self.answers, **(self.edited_answers or {})}

    @property
    def is_current(self) -> bool:
        """True unless an edit from the field replaced this version."""
        return self.superseded_by is None


@dataclass(frozen=True)
class NearbySubmission:
    """What the duplicate search needs of an earlier submission: its id, point (lon/lat degrees) and time."""

    instance_id: str
    lon: float
    lat: float
    submitted_at: str


@dataclass(frozen=True)
class ModerationChange:
    """What one moderation does to a submission, the same for every store backend."""

    edited_answers: dict[str, Any] | None
    """The moderators' edits after this one (the original answers are never changed)."""
    before: dict[str, Any]
    after: dict[str, Any]
    """State, edits and row version before and after: the audit line's two sides."""


def moderation_change(
    old: SubmissionRecord, *, state: str, edits: Mapping[str, Any] | None, expected_version: int | None
) -> ModerationChange:
    """The change a moderation makes; :class:`ConflictError` when ``expected_version`` is stale or it was replaced."""
    if old.superseded_by is not None:
        raise ConflictError(
            f"submission {old.instance_id} was replaced by the edit {old.superseded_by} sent from the field; "
            "moderate that version instead"
        )
    if expected_version is not None and expected_version != old.row_version:
        raise ConflictError(
            f"submission {old.instance_id} is at version {old.row_version}, not {expected_version}: someone "
            "moderated it meanwhile; reload it and decide again"
        )
    edited = {**(old.edited_answers or {}), **edits} if edits else old.edited_answers
    before = {"state": old.state, "edited_answers": old.edited_answers, "row_version": old.row_version}
    after = {"state": state, "edited_answers": edited, "row_version": old.row_version + 1}
    return ModerationChange(edited, before, after)


def edit_check(old: SubmissionRecord | None, new: NewSubmission) -> None:
    """Whether ``new`` may replace the version ``old`` it names as ``deprecated_id`` (inside the write transaction).

    :class:`InputError` when it names itself; :class:`NotFoundError` when ``old`` is not stored
    (ODK Central 404.5); :class:`ConflictError` when ``old`` belongs to another form or another
    edit replaced it already (Central 409.9; the one that replaced it may be ``new`` itself: a
    retry); :class:`ForbiddenError` when another submitter sends it, or when an anonymous edit
    would replace an approved version (anyone could otherwise pull approved reports off the map).
    """
    wanted = new.deprecated_id
    if wanted == new.instance_id:
        raise InputError(f"instanceID {new.instance_id!r} names itself as deprecatedID; an edit needs a new instanceID")
    if old is None:
        raise NotFoundError(
            f"the edit {new.instance_id} replaces {wanted!r}, which is not stored here; send it as a new submission "
            "(without deprecatedID)"
        )
    if old.form_id != new.form_id:
        raise ConflictError(
            f"the edit {new.instance_id} is of form {new.form_id!r} but {wanted} is of form {old.form_id!r}; "
            "an edit must use the same form"
        )
    if old.superseded_by not in (None, new.instance_id):
        raise ConflictError(
            f"the copy you edited ({wanted}) is out of date: it was already replaced by {old.superseded_by}; "
            "get the current version and make your edits again"
        )
    if old.submitter != new.submitter:
        raise ForbiddenError(
            f"submission {wanted} was sent by another submitter; only the token that sent it may send an edit "
            "(moderators correct it with moderation edits)"
        )
    if old.submitter == "anonymous" and old.state == "approved":
        raise ForbiddenError(
            f"submission {wanted} is approved and was sent anonymously: an anonymous edit cannot replace it; "
            "ask a moderator to correct it"
        )


def resubmission_check(stored: Mapping[str, Any], new: NewSubmission) -> None:
    """A stored instanceID arriving again must bring its content, form and deprecatedID (else ConflictError)."""
    same = (stored["content_hash"], stored["form_id"], stored["deprecated_id"])
    if same != (new.content_hash, new.form_id, new.deprecated_id):
        raise ConflictError(
            f"A submission already exists with this ID ({new.instance_id}), but with different content; "
            "give an edited submission a new instanceID (ODK: meta/deprecatedID)"
        )


def edit_duplicate(old: SubmissionRecord | None, new: NewSubmission) -> tuple[str | None, float | None]:
    """The possible duplicate of ``new``: never the version it edits (that one's own duplicate instead)."""
    if old is not None and new.duplicate_of == old.instance_id:
        return old.duplicate_of, old.duplicate_score
    return new.duplicate_of, new.duplicate_score


def carried_attachments(
    old: Sequence[AttachmentRecord], new: NewSubmission, uploaded: Sequence[StagedAttachment]
) -> list[StagedAttachment]:
    """The replaced version's attachments the edit still names but did not send again (Enketo sends only new ones)."""
    named = {str(v) for v in new.answers.values() if v is not None}
    sent = {a.name for a in uploaded}
    return [
        StagedAttachment(a.name, a.sha256, a.size, a.media_type, a.path)
        for a in old
        if a.name in named and a.name not in sent
    ]


@dataclass(frozen=True)
class PutResult:
    """What storing a submission did: the stored record, whether it is new, attachments added.

    ``superseded`` is the version an edit replaced (as it is now stored), None otherwise.
    """

    record: SubmissionRecord
    created: bool
    attachments: tuple[AttachmentRecord, ...]
    added_attachments: tuple[str, ...] = ()
    superseded: SubmissionRecord | None = None


def put_audit(
    new: NewSubmission, old: SubmissionRecord | None, *, created: bool, carried: Sequence[str], added: Sequence[str]
) -> tuple[str, dict[str, Any]] | None:
    """The audit line (action, after) that storing ``new`` writes, or None (an identical retry adding nothing)."""
    if created:
        after = {"source": new.source} | ({"deprecated_id": old.instance_id, "carried": list(carried)} if old else {})
        return ("edit" if old else "submit"), after
    if added:
        return "add_attachments", {"names": list(added)}
    return None


def put_result(
    store: IntakeStore, new: NewSubmission, old: SubmissionRecord | None, *, created: bool, added: Sequence[str]
) -> PutResult:
    """What :meth:`IntakeStore.put_submission` returns, read back after the commit."""
    superseded = store.submission(old.instance_id) if old is not None and created else None
    attachments = tuple(store.attachments(new.instance_id))
    return PutResult(store.submission(new.instance_id), created, attachments, tuple(added), superseded)


@dataclass(frozen=True)
class TokenRecord:
    """An API token (only its hash is stored)."""

    id: str
    role: str
    project: str
    form_id: str | None
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    label: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log."""

    id: int
    who: str
    at: str
    action: str
    instance_id: str | None
    reason: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True)
class ChangeEvent:
    """Submissions of ``form_id`` entered or left the approved set (or were edited while approved).

    ``bbox`` is the lon/lat box (EPSG:4326 degrees) of their exact geometries, None if none has one.
    """

    form_id: str
    instance_ids: tuple[str, ...]
    bbox: BBox | None
    state: str


@dataclass(frozen=True)
class IntakeLimits:
    """Size limits of intake (bytes); read from ``CIVICMAP_INTAKE_MAX_REQUEST`` / ``..._MAX_ATTACHMENT``.

    ``max_request_bytes`` is also sent as ``X-OpenRosa-Accept-Content-Length``.
    """

    max_request_bytes: int = 50 * 1024 * 1024
    max_attachment_bytes: int = 10 * 1024 * 1024
    rate_per_minute: int = 0
    """Anonymous submissions per client address and minute (0 = unlimited), per server process."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IntakeLimits:
        """Limits from ``CIVICMAP_INTAKE_MAX_REQUEST``, ``_MAX_ATTACHMENT`` and ``_RATE_PER_MINUTE``."""
        env = os.environ if environ is None else environ
        names = {"max_request_bytes": "MAX_REQUEST", "max_attachment_bytes": "MAX_ATTACHMENT"}
        names["rate_per_minute"] = "RATE_PER_MINUTE"
        values: dict[str, int] = {}
        for attr, name in names.items():
            text = env.get(f"CIVICMAP_INTAKE_{name}")
            if text is None:
                continue
            if not text.isdigit():
                raise ConfigError(f"CIVICMAP_INTAKE_{name}={text!r}: expected a whole number of bytes (or per minute)")
            values[attr] = int(text)
        return cls(**values)


@runtime_checkable
class IntakeStore(Protocol):
    """Durable storage of forms, submissions, attachments, tokens and the audit log."""

    url: str
    attachments_dir: Path

    def publish_form(self, record: FormRecord) -> FormRecord:
        """Store a form version (the same form_id + version again: the stored one is returned)."""
        ...

    def forms(self) -> list[FormRecord]:
        """Every form's latest version."""
        ...

    def form(self, form_id: str, version: str | None = None) -> FormRecord:
        """A form version (latest when None); :class:`NotFoundError` if absent."""
        ...

    def set_form_open(self, form_id: str, *, open_: bool, who: str) -> None:
        """Open or close a form for submissions (all its versions)."""
        ...

    def put_submission(self, new: NewSubmission, attachments: Sequence[StagedAttachment]) -> PutResult:
        """Insert (idempotent on instance_id) and merge attachments, in one durable transaction.

        An edit (``new.deprecated_id``) passes :func:`edit_check` and marks the version it replaces
        ``superseded_by`` in the same transaction; attachments it names but did not resend are carried over.
        """
        ...

    def submission(self, instance_id: str) -> SubmissionRecord:
        """One submission; :class:`NotFoundError` if absent."""
        ...

    def submissions(
        self,
        *,
        form_id: str | None = None,
        state: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        include_superseded: bool = False,
    ) -> list[SubmissionRecord]:
        """Submissions in arrival order, filtered by form and state; current versions only unless asked."""
        ...

    def versions(self, instance_id: str) -> list[SubmissionRecord]:
        """Every version of the submission ``instance_id`` belongs to, oldest first (NotFoundError if absent)."""
        ...

    def recent_near(self, form_id: str, *, since: str, bbox: BBox, category: str | None) -> list[NearbySubmission]:
        """Current submissions of ``form_id`` since ``since`` whose point lies in ``bbox`` (duplicate candidates)."""
        ...

    def attachments(self, instance_id: str) -> list[AttachmentRecord]:
        """The attachments of a submission."""
        ...

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
        """Change state and/or edits with optimistic concurrency; writes the audit log."""
        ...

    def audit(self, instance_id: str | None = None) -> list[AuditEntry]:
        """Audit log lines, oldest first."""
        ...

    def add_token(self, record: TokenRecord, token_hash: str) -> None:
        """Store a token's record and hash."""
        ...

    def token(self, token_id: str) -> tuple[TokenRecord, str]:
        """A token's record and stored hash; :class:`NotFoundError` if absent."""
        ...

    def tokens(self) -> list[TokenRecord]:
        """Every token (never the hashes)."""
        ...

    def revoke_token(self, token_id: str, *, who: str) -> TokenRecord:
        """Revoke a token now."""
        ...

    def gc(self, *, min_age_s: float = 3600.0) -> int:
        """Delete attachment files no row refers to, older than ``min_age_s``; returns how many."""
        ...

    def integrity_check(self) -> str:
        """The backend's own consistency check (``"ok"`` when healthy)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def utc_now() -> str:
    """Now, UTC, ISO 8601 with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def receipt_for(instance_id: str) -> str:
    """A short receipt for people (8 letters/digits), the same for every retry of one submission."""
    digest = hashlib.sha256(instance_id.encode()).digest()
    return base64.b32encode(digest)[:8].decode()
