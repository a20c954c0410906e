"""API tokens: issued once, stored hashed, scoped by role, project and form, expiring, revocable.

A token reads ``cm_<id>_<secret>``: ``id`` (12 hex characters) finds the record, ``secret``
(32 random bytes, URL-safe base64) is checked against its stored SHA-256 with a constant-time
comparison. A plain SHA-256 is enough here (no salt, no scrypt) because the secret is 256
random bits, not a password: there is no dictionary to attack, and verifying stays cheap on
every request. The token is printed once by ``civicmap tokens issue`` and never stored or logged.

Permissions (C4 of the conventions): every role may submit; ``moderator`` and ``admin`` may
moderate; ``moderator``, ``analyst`` and ``admin`` may read raw submissions (with private
answers) and export them. A token with a form scope acts on that form only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from civicmap.errors import AuthError, ForbiddenError, InputError, NotFoundError
from civicmap.intake.base import ROLES, IntakeStore, TokenRecord

__all__ = [
    "ANONYMOUS",
    "CAN_MODERATE",
    "CAN_READ_RAW",
    "IssuedToken",
    "Principal",
    "authenticate",
    "issue_token",
    "require",
]

CAN_MODERATE = frozenset({"moderator", "admin"})
CAN_READ_RAW = frozenset({"moderator", "analyst", "admin"})
_TOKEN = re.compile(r"^cm_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``"anonymous"`` or a token id, with its role and form scope."""

    who: str
    role: str
    form_id: str | None = None

    @property
    def anonymous(self) -> bool:
        """True when no token was given."""
        return self.who == "anonymous"


ANONYMOUS = Principal("anonymous", "anonymous_submitter")


@dataclass(frozen=True)
class IssuedToken:
    """A new token: the record stored, and the secret text shown to the user once."""

    record: TokenRecord
    token: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(
    store: IntakeStore,
    *,
    role: str,
    project: str,
    form_id: str | None = None,
    days: float | None = 90,
    label: str | None = None,
) -> IssuedToken:
    """Create a token with ``role`` (one of :data:`ROLES`), valid ``days`` days (None = no expiry)."""
    if role not in ROLES:
        raise InputError(f"role {role!r} unknown; expected one of {', '.join(ROLES)}")
    if form_id is not None:
        store.form(form_id)  # NotFoundError for a form that is not published
    if days is not None and days <= 0:
        raise InputError(f"days {days} must be positive (or omitted for a token that does not expire)")
    now = datetime.now(UTC)
    token_id, secret = secrets.token_hex(6), secrets.token_hex(32)
    record = TokenRecord(
        id=token_id,
        role=role,
        project=project,
        form_id=form_id,
        created_at=now.isoformat(timespec="seconds"),
        expires_at=None if days is None else (now + timedelta(days=days)).isoformat(timespec="seconds"),
        revoked_at=None,
        label=label,
    )
    store.add_token(record, _hash(secret))
    return IssuedToken(record, f"cm_{token_id}_{secret}")


def authenticate(store: IntakeStore, token: str | None, *, project: str) -> Principal:
    """The caller of a request carrying ``token`` (None: anonymous); :class:`AuthError` for a bad token."""
    if token is None:
        return ANONYMOUS
    m = _TOKEN.match(token.strip())
    if m is None:
        raise AuthError("the token is malformed; expected cm_<id>_<secret> as printed by `civicmap tokens issue`")
    try:
        record, stored = store.token(m.group(1))
    except NotFoundError:
        raise AuthError("unknown token; ask an administrator for a new one") from None
    if not hmac.compare_digest(stored, _hash(m.group(2))):
        raise AuthError("unknown token; ask an administrator for a new one")
    if record.revoked_at is not None:
        raise AuthError(f"token {record.id} was revoked at {record.revoked_at}")
    if record.expires_at is not None and datetime.fromisoformat(record.expires_at) <= datetime.now(UTC):
        raise AuthError(f"token {record.id} expired at {record.expires_at}; ask for a new one")
    if record.project != project:
        raise AuthError(f"token {record.id} belongs to another project")
    return Principal(record.id, record.role, record.form_id)


def require(principal: Principal, roles: frozenset[str], *, form_id: str | None = None, action: str) -> None:
    """Raise :class:`AuthError` (no token) or :class:`ForbiddenError` unless ``principal`` may do ``action``."""
    if principal.anonymous and "anonymous_submitter" not in roles:
        raise AuthError(f"{action} needs a token (Authorization: Bearer <token>)")
    if principal.role not in roles:
        raise ForbiddenError(f"{action} needs the role {' or '.join(sorted(roles))}; this token is {principal.role}")
    if principal.form_id is not None and form_id is not None and principal.form_id != form_id:
        raise ForbiddenError(f"this token is limited to form {principal.form_id!r}, not {form_id!r}")
    if principal.form_id is not None and form_id is None and action != "submit":
        raise ForbiddenError(f"this token is limited to form {principal.form_id!r}; name that form in the request")
