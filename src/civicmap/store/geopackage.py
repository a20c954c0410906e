"""The embedded default store: one GeoPackage file per workspace, SQLite in WAL mode.

Vector layers and tables are ordinary GeoPackage layers (any GIS opens the file);
rasters are Cloud Optimized GeoTIFFs in a ``rasters/`` folder beside it. The catalogue
(``civicmap_layers``) is an attributes table registered in ``gpkg_contents``, so the
file stays a valid GeoPackage.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio

from civicmap.errors import InputError, NotFoundError, StoreError
from civicmap.store.base import (
    CATALOG_TABLE,
    LayerInfo,
    LayerKind,
    StoreBase,
    restore_index,
    storable_frame,
    vector_entry,
)
from civicmap.store.base import check_layer_name as _check_name
from civicmap.types import BBox, Provenance

__all__ = ["GeoPackageStore"]

log = logging.getLogger(__name__)

_CATALOG = CATALOG_TABLE
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_CATALOG} (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, feature_count INTEGER NOT NULL,
    crs TEXT, bounds TEXT, bounds_wgs84 TEXT, geometry_type TEXT,
    version INTEGER NOT NULL, updated_at TEXT NOT NULL,
    provenance TEXT, problems TEXT, path TEXT, meta TEXT
)"""


class GeoPackageStore(StoreBase):
    """A workspace store in one GeoPackage file (created on first write).

    Layers keep the CRS they are written in; the workspace writes its metric CRS.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = str(self.path)
        self.raster_dir = self.path.parent / "rasters"

    def __repr__(self) -> str:
        return f"GeoPackageStore({str(self.path)!r})"

    # -- writing ----------------------------------------------------------------------
    def write_layer(
        self,
        name: str,
        gdf: gpd.GeoDataFrame,
        *,
        provenance: Provenance | None = None,
        problems: tuple[str, ...] = (),
        meta: dict[str, Any] | None = None,
    ) -> LayerInfo:
        """Write (replace) vector layer ``name``; the frame must have a CRS."""
        _check_name(name)
        if gdf.crs is None:
            raise InputError(f"layer {name!r} has no CRS; set one before storing it")
        frame, index_meta = storable_frame(gdf)
        self._prepare()
        pyogrio.write_dataframe(frame, self.path, layer=name, driver="GPKG")
        info = vector_entry(gdf, {**(meta or {}), **index_meta})
        return self._record(name, info, provenance, problems)

    def write_table(self, name: str, df: pd.DataFrame, *, provenance: Provenance | None = None) -> LayerInfo:
        """Write (replace) a table without geometry (e.g. survey row errors)."""
        _check_name(name)
        frame, index_meta = storable_frame(pd.DataFrame(df))
        self._prepare()
        pyogrio.write_dataframe(frame, self.path, layer=name, driver="GPKG")
        info = dict(kind="table", feature_count=len(df), meta=index_meta)
        return self._record(name, info, provenance, ())

    def register_raster(
        self,
        name: str,
        *,
        provenance: Provenance | None = None,
        problems: tuple[str, ...] = (),
        meta: dict[str, Any] | None = None,
    ) -> LayerInfo:
        """Record the COG already written at :meth:`raster_path` in the catalogue."""
        info = self._raster_entry(name, meta)
        self._prepare()
        return self._record(name, info, provenance, problems)

    # -- reading ----------------------------------------------------------------------
    def read_layer(self, name: str, *, bbox: BBox | None = None, columns: list[str] | None = None) -> gpd.GeoDataFrame:
        """Read vector layer ``name`` (``bbox`` in the layer's CRS) with its index restored."""
        info = self.layer_info(name)
        if info.kind != "vector":
            raise InputError(f"layer {name!r} is a {info.kind}, not a vector layer")
        read_columns = (
            None if columns is None else [*columns, *([info.meta["index"]] if info.meta.get("index") else [])]
        )
        gdf = pyogrio.read_dataframe(self.path, layer=name, bbox=tuple(bbox) if bbox else None, columns=read_columns)
        return restore_index(gdf, info)

    def read_table(self, name: str) -> pd.DataFrame:
        """Read table ``name``."""
        info = self.layer_info(name)
        if info.kind != "table":
            raise InputError(f"layer {name!r} is a {info.kind}, not a table")
        return restore_index(pd.DataFrame(pyogrio.read_dataframe(self.path, layer=name, read_geometry=False)), info)

    def layers(self) -> list[LayerInfo]:
        """Every catalogued layer, sorted by name (empty if the file does not exist yet)."""
        if not self.path.exists():
            return []
        with closing(self._connect()) as con:
            if not con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (_CATALOG,)).fetchone():
                return []
            rows = con.execute(f"SELECT * FROM {_CATALOG} ORDER BY name").fetchall()
        return [_info_from_row(r) for r in rows]

    def layer_info(self, name: str) -> LayerInfo:
        """One catalogue entry, or :class:`NotFoundError` listing the layers there are."""
        for info in self.layers():
            if info.name == name:
                return info
        names = [i.name for i in self.layers()]
        raise NotFoundError(f"no layer {name!r} in {self.path}; layers: {', '.join(names) or 'none (build first)'}")

    # -- internals --------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA busy_timeout = 30000")
            con.execute("PRAGMA synchronous = FULL")
            return con
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open GeoPackage {self.path}: {exc}") from exc

    def _prepare(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # an empty attributes table makes GDAL lay down the GeoPackage header and system tables
            pyogrio.write_dataframe(pd.DataFrame({"name": pd.Series([], dtype="str")}), self.path, layer=_CATALOG)
            with closing(self._connect()) as con:
                con.execute(f"DROP TABLE {_CATALOG}")
                con.execute(_SCHEMA)
                con.execute("PRAGMA journal_mode = WAL")

    def _record(
        self, name: str, info: dict[str, Any], provenance: Provenance | None, problems: tuple[str, ...]
    ) -> LayerInfo:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with closing(self._connect()) as con:
            con.execute("BEGIN IMMEDIATE")
            row = con.execute(f"SELECT version FROM {_CATALOG} WHERE name = ?", (name,)).fetchone()
            version = (row["version"] if row else 0) + 1
            values = {
                "name": name,
                "kind": info["kind"],
                "feature_count": int(info["feature_count"]),
                "crs": info.get("crs"),
                "bounds": json.dumps(info.get("bounds")),
                "bounds_wgs84": json.dumps(info.get("bounds_wgs84")),
                "geometry_type": info.get("geometry_type"),
                "version": version,
                "updated_at": now,
                "provenance": json.dumps(provenance.to_dict() if provenance else {}, default=str),
                "problems": json.dumps(list(problems)),
                "path": info.get("path"),
                "meta": json.dumps(info.get("meta") or {}, default=str),
            }
            cols = ", ".join(values)
            con.execute(
                f"INSERT OR REPLACE INTO {_CATALOG} ({cols}) VALUES ({', '.join('?' * len(values))})",
                tuple(values.values()),
            )
            con.execute(
                "INSERT OR REPLACE INTO gpkg_contents (table_name, data_type, identifier, last_change) "
                "VALUES (?, 'attributes', ?, ?)",
                (_CATALOG, _CATALOG, now.replace("+00:00", "Z")),
            )
            con.execute("COMMIT")
        log.debug("stored %s %s v%d", info["kind"], name, version)
        return self.layer_info(name)


def _info_from_row(row: sqlite3.Row) -> LayerInfo:
    def bbox(text: str | None) -> BBox | None:
        value = json.loads(text) if text else None
        return BBox(*value) if value else None

    kind: LayerKind = row["kind"]
    return LayerInfo(
        name=row["name"],
        kind=kind,
        feature_count=row["feature_count"],
        crs=row["crs"],
        bounds=bbox(row["bounds"]),
        bounds_wgs84=bbox(row["bounds_wgs84"]),
        geometry_type=row["geometry_type"],
        version=row["version"],
        updated_at=row["updated_at"],
        provenance=json.loads(row["provenance"] or "{}"),
        problems=tuple(json.loads(row["problems"] or "[]")),
        path=Path(row["path"]) if row["path"] else None,
        meta=json.loads(row["meta"] or "{}"),
    )
