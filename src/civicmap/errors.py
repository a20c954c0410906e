"""The one error tree of civicmap.

Every error civicmap raises on purpose is a :class:`CivicmapError`. Each branch also
inherits the builtin a caller would naturally catch, so ``except ValueError`` keeps
working for code that does not know civicmap::

    CivicmapError(Exception)
    ├── InputError(ValueError)          bad data handed in: files, frames, values
    │   ├── CRSError                    missing, wrong or mismatched CRS; swapped lon/lat
    │   ├── GeometryError               geometries that cannot be repaired
    │   ├── FormError                   an XLSForm that cannot be turned into a schema
    │   ├── ConfigError                 a civicmap.toml that is wrong (names the key path)
    │   ├── SubmissionError             a survey submission with problems (``problems``: every one)
    │   ├── TooLargeError               a request or attachment over its size limit
    │   └── MediaTypeError              an attachment whose bytes are not an accepted type
    ├── NotFoundError(LookupError)      a file, layer, form or feature that does not exist
    ├── ConflictError                   clashes with stored state (same ID, other content; stale
    │                                   version; closed form)
    ├── AuthError(PermissionError)      missing, unknown, expired or revoked token
    │   └── ForbiddenError              a valid token without the right role or scope
    ├── RateLimitError                  too many requests from one client
    └── StoreError(RuntimeError)        the store could not read or write

Messages name the bad value, what was expected and the fix. HTTP status codes are mapped
from this tree in ``civicmap.serve`` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AuthError",
    "CRSError",
    "CivicmapError",
    "ConfigError",
    "ConflictError",
    "ForbiddenError",
    "FormError",
    "GeometryError",
    "InputError",
    "MediaTypeError",
    "NotFoundError",
    "RateLimitError",
    "StoreError",
    "SubmissionError",
    "TooLargeError",
]


class CivicmapError(Exception):
    """Base of every error civicmap raises on purpose."""


class InputError(CivicmapError, ValueError):
    """Input data or an argument is not usable as given."""


class CRSError(InputError):
    """A coordinate reference system is missing, wrong or mismatched."""


class GeometryError(InputError):
    """Geometries are invalid beyond repair, or of the wrong kind."""


class FormError(InputError):
    """An XLSForm cannot be turned into a form schema."""


class ConfigError(InputError):
    """A project file (``civicmap.toml``) is wrong; the message names the key path."""


class NotFoundError(CivicmapError, LookupError):
    """A file, layer, form or feature does not exist."""


class StoreError(CivicmapError, RuntimeError):
    """The store could not read or write."""


class SubmissionError(InputError):
    """A survey submission has problems; ``problems`` lists every one (``RowError``-like objects)."""

    def __init__(self, message: str, problems: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class TooLargeError(InputError):
    """A request body or attachment is larger than the limit named in the message."""


class MediaTypeError(InputError):
    """An attachment's content is not one of the accepted types (checked on its bytes, not its name)."""


class ConflictError(CivicmapError):
    """The request clashes with stored state: same ID with other content, a stale version, a closed form."""


class AuthError(CivicmapError, PermissionError):
    """No usable credentials: the token is missing, unknown, expired or revoked."""


class ForbiddenError(AuthError):
    """The token is valid but its role or scope does not allow this action."""


class RateLimitError(CivicmapError):
    """Too many requests from one client in a time window; the message says the limit."""
