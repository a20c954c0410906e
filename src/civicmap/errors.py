"""The one error tree of civicmap.

Every error civicmap raises on purpose is a :class:`CivicmapError`. Each branch also
inherits the builtin a caller would naturally catch, so ``except ValueError`` keeps
working for code that does not know civicmap::

    CivicmapError(Exception)
    ├── InputError(ValueError)          bad data handed in: files, frames, values
    │   ├── CRSError                    missing, wrong or mismatched CRS; swapped lon/lat
    │   ├── GeometryError               geometries that cannot be repaired
    │   ├── FormError                   an XLSForm that cannot be turned into a schema
    │   └── ConfigError                 a civicmap.toml that is wrong (names the key path)
    ├── NotFoundError(LookupError)      a file, layer, form or feature that does not exist
    └── StoreError(RuntimeError)        the store could not read or write

Messages name the bad value, what was expected and the fix. HTTP status codes are mapped
from this tree in ``civicmap.serve`` only.
"""

from __future__ import annotations

__all__ = [
    "CRSError",
    "CivicmapError",
    "ConfigError",
    "FormError",
    "GeometryError",
    "InputError",
    "NotFoundError",
    "StoreError",
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
