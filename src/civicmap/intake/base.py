"""Value types of survey intake and the :class:`IntakeStore` interface every backend offers.

Times are UTC ISO 8601 strings (``2026-11-02T09:03:52.262000+00:00``); geometries are WKT in
EPSG:4326 with **longitude first** (x = lon, y = lat), whatever order the client sent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from civicmap.errors import ConfigError, ConflictError
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
    "NewSubmission",
    "PutResult",
    "Role",
    "StagedAttachment",
    "State",
    "SubmissionRecord",
    "TokenRecord",
    "moderation_change",
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

    @property
    def current_answers(self) -> dict[str, Any]:
        """The answers with the moderators' edits applied."""
        return {**self.answers, **(self.edited_answers or {})}


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
    """The change a moderation makes, or :class:`ConflictError` when ``expected_version`` is stale."""
    if expected_version is not None and expected_version != old.row_version:
        raise ConflictError(
            f"submission {old.instance_id} is at version {old.row_version}, not {expected_version}: someone "
            "moderated it meanwhile; reload it and decide again"
        )
    edited = {**(old.edited_answers or {}), **edits} if edits else old.edited_answers
    before = {"state": old.state, "edited_answers": old.edited_answers, "row_version": old.row_version}
    after = {"state": state, "edited_answers": edited, "row_version": old.row_version + 1}
    return ModerationChange(edited, before, after)


@dataclass(frozen=True)
class PutResult:
    """What storing a submission did: the stored record, whether it is new, attachments added."""

    record: SubmissionRecord
    created: bool
    attachments: tuple[AttachmentRecord, ...]
    added_attachments: tuple[str, ...] = ()


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
        """Insert (idempotent on instance_id) and merge attachments, in one durable transaction."""
        ...

    def submission(self, instance_id: str) -> SubmissionRecord:
        """One submission; :class:`NotFoundError` if absent."""
        ...

    def submissions(
        self, *, form_id: str | None = None, state: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[SubmissionRecord]:
        """Submissions in arrival order, filtered by form and state."""
        ...

    def recent_near(self, form_id: str, *, since: str, bbox: BBox, category: str | None) -> list[SubmissionRecord]:
        """Submissions of ``form_id`` since ``since`` whose point lies in ``bbox`` (duplicate candidates)."""
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
