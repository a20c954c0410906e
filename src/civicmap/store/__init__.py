"""Persistence behind one small interface: a GeoPackage file by default.

>>> from civicmap.store import open_store
>>> store = open_store("/tmp/project/.civicmap/project.gpkg")   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from civicmap.errors import InputError
from civicmap.store.base import LayerInfo, Store
from civicmap.store.geopackage import GeoPackageStore

__all__ = ["GeoPackageStore", "LayerInfo", "Store", "open_store"]


def open_store(url: str | Path) -> Store:
    """Open the store at ``url``: a ``.gpkg`` path (created if absent) or ``file://`` URL."""
    text = str(url)
    if text.startswith("file://"):
        text = text.removeprefix("file://")
    if text.startswith(("postgresql://", "postgres://")):
        raise InputError(
            f"store URL {url!r}: PostgreSQL/PostGIS stores are not available in this version; "
            "use a GeoPackage path such as '.civicmap/project.gpkg'"
        )
    if "://" in text:
        raise InputError(f"store URL {url!r} has an unknown scheme; use a .gpkg path")
    path = Path(text)
    if path.suffix.lower() != ".gpkg":
        raise InputError(f"store path {path} must end in .gpkg (a GeoPackage file)")
    return GeoPackageStore(path)
