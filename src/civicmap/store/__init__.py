"""Persistence behind one small interface: a GeoPackage file by default, or PostGIS.

>>> from civicmap.store import open_store
>>> store = open_store("/tmp/project/.civicmap/project.gpkg")   # doctest: +SKIP
>>> store = open_store("postgresql://civicmap@db.example/city?schema=ward_3")   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from civicmap.errors import InputError
from civicmap.store.base import LayerInfo, Store
from civicmap.store.geopackage import GeoPackageStore

if TYPE_CHECKING:
    from civicmap.store.postgis import PostGISStore

__all__ = ["GeoPackageStore", "LayerInfo", "PostGISStore", "Store", "open_store"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(url: str | Path) -> Store:
    """Open the store at ``url``.

    - a ``.gpkg`` path or ``file://`` URL: :class:`GeoPackageStore` (the file is created on first write);
    - ``postgresql://`` or ``postgres://``: :class:`~civicmap.store.postgis.PostGISStore` (needs
      psycopg, ``pip install 'civicmap[postgis]'``; query parameters ``schema`` and ``raster_dir``
      are civicmap's, the rest go to libpq). The connection and the PostGIS extension are checked
      here (:class:`~civicmap.errors.StoreError` if unreachable).
    """
    text = str(url)
    if text.startswith(_POSTGRES_SCHEMES):
        return _postgis_class()(text)
    if text.startswith("file://"):
        text = text.removeprefix("file://")
    if "://" in text:
        raise InputError(
            f"store URL {url!r} has an unknown scheme; use a .gpkg path or a postgresql://user@host/db URL"
        )
    path = Path(text)
    if path.suffix.lower() != ".gpkg":
        raise InputError(f"store path {path} must end in .gpkg (a GeoPackage file)")
    return GeoPackageStore(path)


def _postgis_class() -> type[PostGISStore]:
    """The PostGIS backend, imported on demand so psycopg stays optional."""
    try:
        from civicmap.store.postgis import PostGISStore  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise InputError(
            f"PostGIS stores need psycopg 3 ({exc}); install it with: pip install 'civicmap[postgis]'"
        ) from exc
    return PostGISStore


def __getattr__(name: str) -> Any:
    if name == "PostGISStore":
        return _postgis_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
