"""Row-by-row validation of raw submissions against a :class:`FormSchema` (vectorised per column).

Internals of :mod:`civicmap.sources.survey`; the rules are documented there.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import shapely

from civicmap.sources._survey_formats import META, RawTable
from civicmap.sources._survey_schema import FormField, FormSchema, _with_columns
from civicmap.types import BBox, RowError

__all__ = ["Problems", "infer_schema", "normalise", "parse_geo", "typed_column"]

log = logging.getLogger(__name__)

_ODK_POINT = r"-?\d+(?:\.\d+)?\s+-?\d+(?:\.\d+)?(?:\s+-?\d+(?:\.\d+)?){0,2}"
_ODK_TEXT = re.compile(rf"\s*{_ODK_POINT}(?:\s*;\s*{_ODK_POINT})*\s*;?\s*")
_SHAPE_TYPES = {"geopoint": "Point", "geotrace": "LineString", "geoshape": "Polygon"}
_TRUE = ["ok", "true", "1", "yes"]


@dataclass
class Problems:
    """Problems found so far, as (row position, field, value, message) in the order found."""

    items: list[tuple[int, str | None, Any, str]] = field(default_factory=list)

    def add(self, mask: pd.Series, name: str | None, values: pd.Series, message: str | pd.Series) -> None:
        """Record ``message`` for every row where ``mask`` is true (one entry per row)."""
        hits = mask[mask.fillna(False).astype(bool)].index
        msgs = message.reindex(hits) if isinstance(message, pd.Series) else pd.Series(message, index=hits)
        vals = values.reindex(hits).astype(object).where(values.reindex(hits).notna(), None)
        self.items.extend(zip(hits.tolist(), [name] * len(hits), vals.tolist(), msgs.tolist(), strict=True))

    def bad_positions(self) -> set[int]:
        """Row positions with at least one problem."""
        return {pos for pos, *_ in self.items}

    def row_errors(self, labels: pd.Series, instance_ids: pd.Series) -> list[RowError]:
        """:class:`RowError` objects, grouped by row in row order, with the row's instanceID if any."""
        ordered = sorted(enumerate(self.items), key=lambda t: (t[1][0], t[0]))
        ids = instance_ids.astype(object).where(instance_ids.notna(), None)
        return [RowError(labels.iloc[pos], name, value, msg, ids.iloc[pos]) for _, (pos, name, value, msg) in ordered]


def infer_schema(raws: list[RawTable]) -> FormSchema:
    """A text-only schema from the columns present, for reading without a form (``form=None``)."""
    fields: dict[str, FormField] = {}
    for raw in raws:
        for col in raw.frame.columns:
            if col in META:
                continue
            key = col.replace(raw.sep, "/") if raw.sep != "/" else col
            kind = raw.geo_kinds.get(col) or _guess_geo(raw.frame[col])
            if key not in fields:
                path, _, name = key.rpartition("/")
                fields[key] = FormField(name=name, path=path, type=kind or "text")
    return FormSchema(form_id="(no form)", version=None, title=None, fields=tuple(_with_columns(list(fields.values()))))


def _guess_geo(col: pd.Series) -> str | None:
    """``geopoint``/``geotrace``/``geoshape`` if every answer is ODK geo text, else None."""
    values = col.dropna()
    if values.empty or not values.str.fullmatch(_ODK_TEXT).all():
        return None
    if not values.str.contains(";").any():
        return "geopoint"
    ends = values.str.strip(" ;").str.split(";")
    closed = ends.str[0].str.strip() == ends.str[-1].str.strip()
    return "geoshape" if closed.all() else "geotrace"


def normalise(raw: RawTable, schema: FormSchema, *, geo_field: FormField | None) -> tuple[pd.DataFrame, list[str]]:
    """Raw columns renamed to the schema's field keys (text), plus META; also the raw columns not used."""
    cols = [c for c in raw.frame.columns if c not in META]
    used: dict[str, str] = {}
    for f in schema.fields:
        if not f.has_value or f.key == "meta/instanceID":
            continue
        names = [raw.sep.join(f.key.split("/")), f.key] + ([f.name] if f.column == f.name else [])
        hit = next((n for n in names if n in cols and n not in used.values()), None)
        if hit is None and f is geo_field and "_geolocation" in cols:
            hit = "_geolocation"
        if hit is not None:
            used[f.key] = hit
    out = pd.DataFrame({key: raw.frame[col] for key, col in used.items()}, index=raw.frame.index)
    out = pd.concat([out, raw.frame[list(META)]], axis=1)
    out["__format"] = raw.source_format
    if raw.geometry is not None:
        out["__geometry"] = raw.geometry.array
    unused = [c for c in cols if c not in used.values() and c != "_geolocation"]
    return out, unused


def typed_column(f: FormField, text: pd.Series, schema: FormSchema, problems: Problems) -> pd.Series:
    """The answers of one field with its dtype; type, choice, constraint and required problems recorded."""
    blank = text.isna()
    if f.required and not f.relevant:
        problems.add(blank, f.column, text, "required answer is missing (the form marks it required)")
    if f.type in ("integer", "decimal", "range"):
        return _numeric(f, text, blank, problems)
    if f.type in ("date", "today"):
        out = pd.to_datetime(text.str.slice(0, 10), errors="coerce", format="%Y-%m-%d")
        problems.add(~blank & out.isna(), f.column, text, "not a date (expected YYYY-MM-DD)")
        return out
    if f.type in ("datetime", "start", "end"):
        out = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
        problems.add(~blank & out.isna(), f.column, text, "not a date-time (expected ISO 8601)")
        return out
    if f.type == "acknowledge":
        return text.str.lower().isin(_TRUE).astype("boolean").where(~blank, pd.NA)
    if f.type in ("select_one", "select_multiple") and f.choice_list in schema.choices:
        _check_choices(f, text, schema, problems)
    return text.astype("string")


def _numeric(f: FormField, text: pd.Series, blank: pd.Series, problems: Problems) -> pd.Series:
    num = pd.to_numeric(text.str.strip(), errors="coerce")
    if f.type == "integer":
        bad = ~blank & (num.isna() | (num % 1 != 0))
        problems.add(bad, f.column, text, "not an integer")
    else:
        bad = ~blank & num.isna()
        problems.add(bad, f.column, text, "not a number")
    num = num.where(~bad)
    rule = f" (constraint {f.constraint!r})"
    if f.min_value is not None:
        low = num <= f.min_value if f.min_exclusive else num < f.min_value
        problems.add(low, f.column, text, f"below the minimum {'>' if f.min_exclusive else '>='} {f.min_value:g}{rule}")
    if f.max_value is not None:
        high = num >= f.max_value if f.max_exclusive else num > f.max_value
        problems.add(
            high, f.column, text, f"above the maximum {'<' if f.max_exclusive else '<='} {f.max_value:g}{rule}"
        )
    return num.astype("Int64") if f.type == "integer" else num.astype("Float64")


def _check_choices(f: FormField, text: pd.Series, schema: FormSchema, problems: Problems) -> None:
    names = [c.name for c in schema.choices[str(f.choice_list)]]
    shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
    if f.type == "select_one":
        bad = text.notna() & ~text.str.strip().isin(names)
        problems.add(bad, f.column, text, f"not in choice list {f.choice_list!r} (expected one of: {shown})")
        return
    tokens = text.dropna().str.split().explode()
    bad_tok = tokens[tokens.notna() & ~tokens.isin(names)]
    message = bad_tok.groupby(level=0).agg(lambda s: ", ".join(map(repr, s)))
    message = message.map(lambda s: f"{s} not in choice list {f.choice_list!r} (expected some of: {shown})")
    problems.add(text.index.to_series().isin(message.index), f.column, text, message)


def parse_geo(text: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
    """ODK geo text -> one row per vertex (pos, lat, lon, alt, acc), and rows that do not parse."""
    s = text.dropna()
    pts = s.str.strip(" ;").str.split(";").explode().str.strip()
    parts = pts.str.split(expand=True) if len(pts) else pd.DataFrame(index=pts.index)
    for i in range(4):
        if i not in parts:
            parts[i] = None
    nums = parts[[0, 1, 2, 3]].apply(pd.to_numeric, errors="coerce")
    bad = nums[0].isna() | nums[1].isna() | (parts.notna().sum(axis=1) > 4)
    bad |= (parts[2].notna() & nums[2].isna()) | (parts[3].notna() & nums[3].isna())
    long = pd.DataFrame(
        {"pos": pts.index, "lat": nums[0].to_numpy(), "lon": nums[1].to_numpy()}
        | {"alt": nums[2].to_numpy(), "acc": nums[3].to_numpy()}
    )
    unparsed = pd.Series(bad.to_numpy()).groupby(long["pos"].to_numpy()).any()
    return long, unparsed.reindex(text.index, fill_value=False)


def long_from_shapes(geoms: pd.Series, kind: str | None, problems: Problems, name: str) -> pd.DataFrame:
    """Shapely geometries (EPSG:4326) -> vertex rows; a geometry of the wrong type is a problem."""
    geoms = geoms.dropna()
    arr = np.asarray(geoms.to_numpy(), dtype=object)
    types = pd.Series(shapely.get_type_id(arr), index=geoms.index)
    names = types.map(lambda t: shapely.GeometryType(t).name.title().replace("string", "String"))
    if kind is not None:
        wrong = names != _SHAPE_TYPES[kind]
        problems.add(wrong, name, names, f"geometry type is not {_SHAPE_TYPES[kind]} (the form's {kind})")
    rings = np.where(types.to_numpy() == 3, shapely.get_exterior_ring(arr), arr)
    coords, idx = shapely.get_coordinates(rings, return_index=True)
    return pd.DataFrame({"pos": geoms.index.to_numpy()[idx], "lat": coords[:, 1], "lon": coords[:, 0]})


def check_geo(
    long: pd.DataFrame, kind: str | None, text: pd.Series, *, area: BBox | None, problems: Problems, name: str
) -> None:
    """Coordinate range, lat/lon swap (when ``area`` is given) and vertex-count rules of ODK geo types."""
    lat, lon, pos = long["lat"], long["lon"], long["pos"]
    out = (lat.abs() > 90) | (lon.abs() > 180)
    swapped_ok = (lon.abs() <= 90) & (lat.abs() <= 180)
    if area is not None:
        inside = lon.between(area.west, area.east) & lat.between(area.south, area.north)
        inside_swapped = lat.between(area.west, area.east) & lon.between(area.south, area.north)
        swapped = (~inside & inside_swapped).groupby(pos).all()
    else:
        swapped = (out & swapped_ok).groupby(pos).all()
    out_row = out.groupby(pos).any()
    problems.add(
        swapped.reindex(text.index, fill_value=False),
        name,
        text,
        "latitude and longitude look swapped (ODK geo answers are 'latitude longitude'; GeoJSON is [lon, lat])",
    )
    plain_out = (out_row & ~swapped.reindex(out_row.index, fill_value=False)).reindex(text.index, fill_value=False)
    problems.add(
        plain_out, name, text, "coordinates out of range: latitude must lie in [-90, 90], longitude in [-180, 180]"
    )
    counts = pos.value_counts().reindex(text.index, fill_value=0)
    present = counts > 0
    if kind == "geopoint":
        problems.add(present & (counts != 1), name, text, "a geopoint is exactly one point")
    elif kind == "geotrace":
        problems.add(present & (counts < 2), name, text, "a geotrace needs at least 2 points")
    elif kind == "geoshape":
        first = long.groupby("pos")[["lat", "lon"]].first()
        last = long.groupby("pos")[["lat", "lon"]].last()
        open_ = (first != last).any(axis=1).reindex(text.index, fill_value=False)
        problems.add(
            present & (counts < 4), name, text, "a geoshape needs at least 4 points (3 corners + the first again)"
        )
        problems.add(
            present & (counts >= 4) & open_, name, text, "geoshape is not closed (last point must equal the first)"
        )


def build_geometry(long: pd.DataFrame, kind: str | None, index: pd.Index) -> np.ndarray:
    """Shapely geometries (lon, lat; 2D) per row position in ``index``; None where there is no value."""
    out = np.full(len(index), None, dtype=object)
    need = {"geotrace": 2, "geoshape": 4}.get(kind or "", 1)
    long = long[long.groupby("pos")["pos"].transform("size") >= need]
    if long.empty:
        return out
    codes, uniq = pd.factorize(long["pos"], sort=False)
    counts = np.bincount(codes)
    coords = long[["lon", "lat"]].to_numpy(dtype=float)
    if kind == "geopoint" or (kind is None and (counts == 1).all()):
        geoms = shapely.points(coords[np.r_[0, np.cumsum(counts)[:-1]]])
    elif kind == "geoshape":
        geoms = shapely.polygons(shapely.linearrings(coords, indices=codes))
    else:
        geoms = shapely.linestrings(coords, indices=codes)
    out[index.get_indexer(uniq)] = geoms
    return out
