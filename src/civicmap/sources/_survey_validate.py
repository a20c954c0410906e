"""Row-by-row validation of raw submissions against a :class:`FormSchema` (vectorised per column).

Internals of :mod:`civicmap.sources.survey`; the rules are documented there.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import shapely

from civicmap.sources._survey_formats import META, RawTable
from civicmap.sources._survey_schema import Choice, FormField, FormSchema, _with_columns
from civicmap.types import BBox, RowError

__all__ = ["Problems", "Vertices", "as_string", "infer_schema", "normalise", "parse_geo", "typed_column"]

log = logging.getLogger(__name__)

_ODK_POINT = r"-?\d+(?:\.\d+)?\s+-?\d+(?:\.\d+)?(?:\s+-?\d+(?:\.\d+)?){0,2}"
_ODK_TEXT = re.compile(rf"\s*{_ODK_POINT}(?:\s*;\s*{_ODK_POINT})*\s*;?\s*")
_SHAPE_TYPES = {"geopoint": "Point", "geotrace": "LineString", "geoshape": "Polygon"}
_TRUE = ["ok", "true", "1", "yes"]
_STRING = pd.StringDtype()
_NP_STRING = np.dtypes.StringDType()
_BLANK_SHORTCUT = frozenset({"integer", "decimal", "range", "date", "today", "datetime", "start", "end", "acknowledge"})


@dataclass
class Problems:
    """Problems found so far, as (row position, field, value, message) in the order found."""

    items: list[tuple[int, str | None, Any, str]] = field(default_factory=list)

    def add(self, mask: pd.Series | np.ndarray, name: str | None, values: pd.Series, message: str | pd.Series) -> None:
        """Record ``message`` for every row where ``mask`` is true (one entry per row).

        ``mask`` is a Series (missing counts as false) or a boolean array aligned with ``values``.
        """
        if isinstance(mask, np.ndarray):
            flags, index = mask, values.index
        else:
            flags, index = mask.to_numpy(dtype=bool, na_value=False), mask.index
        if not flags.any():
            return
        hits = index[flags]
        msgs = message.reindex(hits) if isinstance(message, pd.Series) else pd.Series(message, index=hits)
        vals = values.reindex(hits).astype(object).where(values.reindex(hits).notna(), None)
        self.items.extend(zip(hits.tolist(), [name] * len(hits), vals.tolist(), msgs.tolist(), strict=True))

    def bad_positions(self) -> set[int]:
        """Row positions with at least one problem."""
        return {pos for pos, *_ in self.items}

    def row_errors(self, labels: pd.Series, instance_ids: pd.Series) -> list[RowError]:
        """:class:`RowError` objects, grouped by row in row order, with the row's instanceID if any."""
        if not self.items:
            return []
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
    columns = {key: raw.frame[col] for key, col in used.items()} | {col: raw.frame[col] for col in META}
    out = pd.DataFrame(columns, index=raw.frame.index)
    out["__format"] = raw.source_format
    if raw.geometry is not None:
        out["__geometry"] = raw.geometry.array
    unused = [c for c in cols if c not in used.values() and c != "_geolocation"]
    return out, unused


def typed_column(f: FormField, text: pd.Series, schema: FormSchema, problems: Problems) -> pd.Series:
    """The answers of one field with its dtype; type, choice, constraint and required problems recorded."""
    blank = np.asarray(text.array.isna(), dtype=bool)
    if f.required and not f.relevant:
        problems.add(blank, f.column, text, "required answer is missing (the form marks it required)")
    if f.type in _BLANK_SHORTCUT and blank.all():  # nothing answered: no type, choice or constraint problem
        return pd.Series(pd.array([None] * len(text), dtype=_blank_dtype(f.type)), index=text.index, copy=False)
    return _typed(f, text, blank, schema, problems)


@functools.lru_cache(maxsize=32)
def _blank_dtype(ftype: str) -> Any:
    """The dtype :func:`_typed` gives a field type when no row is answered (computed once per type)."""
    probe = pd.Series(pd.NA, index=pd.RangeIndex(1), dtype="string")
    form = FormSchema(form_id="(probe)", version=None, title=None, fields=())
    return _typed(FormField(name="probe", path="", type=ftype), probe, probe.isna().to_numpy(), form, Problems()).dtype


def _typed(f: FormField, text: pd.Series, blank: np.ndarray, schema: FormSchema, problems: Problems) -> pd.Series:
    if f.type in ("integer", "decimal", "range"):
        return _numeric(f, text, blank, problems)
    if f.type in ("date", "today"):
        out = pd.to_datetime(text.str.slice(0, 10), errors="coerce", format="%Y-%m-%d")
        problems.add(~blank & out.isna().to_numpy(), f.column, text, "not a date (expected YYYY-MM-DD)")
        return out
    if f.type in ("datetime", "start", "end"):
        out = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
        problems.add(~blank & out.isna().to_numpy(), f.column, text, "not a date-time (expected ISO 8601)")
        return out
    if f.type == "acknowledge":
        return text.str.lower().isin(_TRUE).astype("boolean").where(~blank, pd.NA)
    if f.type in ("select_one", "select_multiple") and f.choice_list in schema.choices:
        _check_choices(f, text, blank, schema, problems)
    return as_string(text)


def as_string(values: pd.Series) -> pd.Series:
    """``values.astype("string")``, without a copy when they already are."""
    return values if values.dtype == _STRING else values.astype("string")


def _numeric(f: FormField, text: pd.Series, blank: np.ndarray, problems: Problems) -> pd.Series:
    num = pd.to_numeric(text.str.strip(), errors="coerce")
    values = num.to_numpy(dtype=float, na_value=np.nan)
    missing = num.isna().to_numpy()
    if f.type == "integer":
        finite = np.isfinite(values)
        fraction = np.zeros_like(values)
        np.mod(values, 1, out=fraction, where=finite)  # inf % 1 is missing, as in pandas: not flagged here
        bad = ~blank & (missing | (fraction != 0))
        problems.add(bad, f.column, text, "not an integer")
    else:
        bad = ~blank & missing
        problems.add(bad, f.column, text, "not a number")
    if bad.any():
        num = num.where(~bad)
        values = np.where(bad, np.nan, values)
    rule = f" (constraint {f.constraint!r})"
    if f.min_value is not None:
        low = values <= f.min_value if f.min_exclusive else values < f.min_value
        problems.add(low, f.column, text, f"below the minimum {'>' if f.min_exclusive else '>='} {f.min_value:g}{rule}")
    if f.max_value is not None:
        high = values >= f.max_value if f.max_exclusive else values > f.max_value
        problems.add(
            high, f.column, text, f"above the maximum {'<' if f.max_exclusive else '<='} {f.max_value:g}{rule}"
        )
    if f.type == "integer":
        return num if num.dtype == "Int64" else num.astype("Int64")
    return num if num.dtype == "Float64" else num.astype("Float64")


def _check_choices(f: FormField, text: pd.Series, blank: np.ndarray, schema: FormSchema, problems: Problems) -> None:
    names, shown = _choice_names(schema.choices[str(f.choice_list)])
    if f.type == "select_one":
        stripped = np.strings.strip(np.asarray(text.to_numpy(dtype=object, na_value=""), dtype=_NP_STRING))
        bad = ~blank & ~np.isin(stripped, np.asarray(names, dtype=_NP_STRING))
        problems.add(bad, f.column, text, f"not in choice list {f.choice_list!r} (expected one of: {shown})")
        return
    tokens = text.dropna().str.split().explode()
    bad_tok = tokens[tokens.notna() & ~tokens.isin(names)]
    if bad_tok.empty:
        return
    message = bad_tok.groupby(level=0).agg(lambda s: ", ".join(map(repr, s)))
    message = message.map(lambda s: f"{s} not in choice list {f.choice_list!r} (expected some of: {shown})")
    problems.add(text.index.isin(message.index), f.column, text, message)


@functools.lru_cache(maxsize=256)
def _choice_names(choices: tuple[Choice, ...]) -> tuple[list[str], str]:
    """The names of a select list and how messages show them (computed once per list)."""
    names = [c.name for c in choices]
    return names, ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")


@dataclass(frozen=True)
class Vertices:
    """Geo answers as one entry per vertex: row label ``pos`` and degrees (EPSG:4326), NaN where absent."""

    pos: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    alt: np.ndarray
    acc: np.ndarray

    def take(self, keep: np.ndarray) -> Vertices:
        """The vertices where ``keep`` is true."""
        return Vertices(self.pos[keep], self.lat[keep], self.lon[keep], self.alt[keep], self.acc[keep])

    def slots(self, index: pd.Index) -> np.ndarray:
        """Position in ``index`` of each vertex's row."""
        return index.get_indexer(pd.Index(self.pos))

    def ends(self, index: pd.Index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row of ``index``: position of its first and its last vertex (0 if none), and its vertex count."""
        slots = self.slots(index)
        first = np.zeros(len(index), dtype=np.int64)
        last = np.zeros(len(index), dtype=np.int64)
        uniq, at = np.unique(slots, return_index=True)
        first[uniq] = at
        uniq, at = np.unique(slots[::-1], return_index=True)
        last[uniq] = len(slots) - 1 - at
        return first, last, np.bincount(slots, minlength=len(index))


def parse_geo(text: pd.Series) -> tuple[Vertices, np.ndarray]:
    """ODK geo text -> one entry per vertex (pos, lat, lon, alt, acc), and rows (of ``text``) that do not parse."""
    s = text.dropna()
    points = [[p.strip() for p in v.strip(" ;").split(";")] for v in s.to_numpy(dtype=object)]
    pos = np.repeat(s.index.to_numpy(), [len(p) for p in points])
    tokens = [p.split() for pts in points for p in pts]
    width = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
    cols = [np.array([t[i] if i < len(t) else None for t in tokens], dtype=object) for i in range(4)]
    nums = [pd.to_numeric(c, errors="coerce").astype(float) for c in cols]
    bad = np.isnan(nums[0]) | np.isnan(nums[1]) | (width > 4)
    bad |= ((width > 2) & np.isnan(nums[2])) | ((width > 3) & np.isnan(nums[3]))
    unparsed = np.bincount(text.index.get_indexer(pd.Index(pos)), weights=bad, minlength=len(text)) > 0
    return Vertices(pos, nums[0], nums[1], nums[2], nums[3]), unparsed


def long_from_shapes(geoms: pd.Series, kind: str | None, problems: Problems, name: str) -> Vertices:
    """Shapely geometries (EPSG:4326) -> vertices; a geometry of the wrong type is a problem."""
    geoms = geoms.dropna()
    arr = np.asarray(geoms.to_numpy(), dtype=object)
    types = pd.Series(shapely.get_type_id(arr), index=geoms.index)
    names = types.map(lambda t: shapely.GeometryType(t).name.title().replace("string", "String"))
    if kind is not None:
        wrong = names != _SHAPE_TYPES[kind]
        problems.add(wrong, name, names, f"geometry type is not {_SHAPE_TYPES[kind]} (the form's {kind})")
    rings = np.where(types.to_numpy() == 3, shapely.get_exterior_ring(arr), arr)
    coords, idx = shapely.get_coordinates(rings, return_index=True)
    nan = np.full(len(idx), np.nan)
    return Vertices(geoms.index.to_numpy()[idx], coords[:, 1], coords[:, 0], nan, nan)


def check_geo(
    long: Vertices, kind: str | None, text: pd.Series, *, area: BBox | None, problems: Problems, name: str
) -> None:
    """Coordinate range, lat/lon swap (when ``area`` is given) and vertex-count rules of ODK geo types."""
    lat, lon = long.lat, long.lon
    slots = long.slots(text.index)
    counts = np.bincount(slots, minlength=len(text))
    out = (np.abs(lat) > 90) | (np.abs(lon) > 180)
    if area is not None:
        inside = (lon >= area.west) & (lon <= area.east) & (lat >= area.south) & (lat <= area.north)
        inside_swapped = (lat >= area.west) & (lat <= area.east) & (lon >= area.south) & (lon <= area.north)
        flag = ~inside & inside_swapped
    else:
        flag = out & (np.abs(lon) <= 90) & (np.abs(lat) <= 180)
    present = counts > 0
    swapped = present & (np.bincount(slots, weights=flag, minlength=len(text)) == counts)
    out_row = np.bincount(slots, weights=out, minlength=len(text)) > 0
    problems.add(
        swapped,
        name,
        text,
        "latitude and longitude look swapped (ODK geo answers are 'latitude longitude'; GeoJSON is [lon, lat])",
    )
    problems.add(
        out_row & ~swapped,
        name,
        text,
        "coordinates out of range: latitude must lie in [-90, 90], longitude in [-180, 180]",
    )
    if kind == "geopoint":
        problems.add(present & (counts != 1), name, text, "a geopoint is exactly one point")
    elif kind == "geotrace":
        problems.add(present & (counts < 2), name, text, "a geotrace needs at least 2 points")
    elif kind == "geoshape":
        first, last, _ = long.ends(text.index)
        open_ = present & ((lat[first] != lat[last]) | (lon[first] != lon[last])) if len(lat) else present
        problems.add(
            present & (counts < 4), name, text, "a geoshape needs at least 4 points (3 corners + the first again)"
        )
        problems.add(
            present & (counts >= 4) & open_, name, text, "geoshape is not closed (last point must equal the first)"
        )


def build_geometry(long: Vertices, kind: str | None, index: pd.Index) -> np.ndarray:
    """Shapely geometries (lon, lat; 2D) per row position in ``index``; None where there is no value."""
    out = np.full(len(index), None, dtype=object)
    need = {"geotrace": 2, "geoshape": 4}.get(kind or "", 1)
    codes, _ = pd.factorize(long.pos, sort=False)
    long = long.take(np.bincount(codes)[codes] >= need) if len(codes) else long
    if not len(long.pos):
        return out
    codes, uniq = pd.factorize(long.pos, sort=False)
    counts = np.bincount(codes)
    coords = np.column_stack([long.lon, long.lat]).astype(float)
    if kind == "geopoint" or (kind is None and (counts == 1).all()):
        geoms = shapely.points(coords[np.r_[0, np.cumsum(counts)[:-1]]])
    elif kind == "geoshape":
        geoms = shapely.polygons(shapely.linearrings(coords, indices=codes))
    else:
        geoms = shapely.linestrings(coords, indices=codes)
    out[index.get_indexer(pd.Index(uniq))] = geoms
    return out
