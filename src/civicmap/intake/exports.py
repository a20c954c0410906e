"""Exports of submissions for moderators: GeoJSON (RFC 7946), CSV (injection-safe) and GeoPackage.

CSV cells of text columns that start with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
get a leading ``'`` so spreadsheets show them as text instead of running them as formulas
(OWASP "CSV injection"); numbers are written as numbers. The geometry is a WKT column (lon lat).
GeoPackages are written in rollback-journal mode (single file, nothing left beside it).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import geopandas as gpd
import pandas as pd
import shapely

from civicmap.errors import InputError
from civicmap.intake.base import IntakeStore
from civicmap.intake.moderation import submissions_frame

__all__ = ["EXPORT_FORMATS", "export_bytes", "safe_csv_frame", "write_export"]

EXPORT_FORMATS = {
    "geojson": "application/geo+json",
    "csv": "text/csv; charset=utf-8",
    "gpkg": "application/geopackage+sqlite3",
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_csv_frame(frame: gpd.GeoDataFrame) -> pd.DataFrame:
    """The frame with geometry as WKT and text cells that look like formulas prefixed with ``'``."""
    out = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    out.insert(0, "instance_id", out.pop("instance_id")) if "instance_id" in out else None
    out["geometry_wkt"] = shapely.to_wkt(frame.geometry.to_numpy(), rounding_precision=7)
    for col in out.columns:
        if pd.api.types.is_object_dtype(out[col]) or pd.api.types.is_string_dtype(out[col]):
            text = out[col].astype("string")
            risky = text.str.startswith(_FORMULA_START).fillna(False)
            out[col] = text.where(~risky, "'" + text)
    return out


def _typed_for_file(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Datetimes as ISO text for GeoJSON/GeoPackage writers; index dropped (instance_id is a column)."""
    out = frame.reset_index(drop=True).copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].astype("string")
    return out


def write_export(
    store: IntakeStore,
    form_id: str,
    path: str | Path,
    *,
    state: str | None = "approved",
    include_private: bool = True,
) -> Path:
    """Write submissions of ``form_id`` (``state`` None = all) to ``path``; format from its suffix."""
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in EXPORT_FORMATS:
        raise InputError(f"export file {path.name}: expected a .geojson, .csv or .gpkg suffix")
    frame = submissions_frame(store, form_id, state=state, include_private=include_private)
    if kind == "csv":
        safe_csv_frame(frame).to_csv(path, index=False, encoding="utf-8")
    elif kind == "geojson":
        _typed_for_file(frame).to_file(path, driver="GeoJSON", engine="pyogrio", RFC7946="YES")
    else:
        _typed_for_file(frame).to_file(path, driver="GPKG", layer=f"submissions_{form_id}", engine="pyogrio")
    return path


def export_bytes(
    store: IntakeStore,
    form_id: str,
    kind: Literal["geojson", "csv", "gpkg"],
    *,
    state: str | None = "approved",
    include_private: bool = True,
) -> bytes:
    """The export as bytes (written through a temporary file)."""
    if kind not in EXPORT_FORMATS:
        raise InputError(f"export format {kind!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    with tempfile.TemporaryDirectory() as tmp:
        out = write_export(store, form_id, Path(tmp) / f"export.{kind}", state=state, include_private=include_private)
        return out.read_bytes()
