"""Feature properties and ids of Mapbox Vector Tile layers (private to :mod:`civicmap.tiles.vector`).

Typing rule (MVT 2.1 §4.5, ``Value`` message): booleans -> ``bool_value``; integers -> ``uint_value``
when >= 0, else ``sint_value``; floats -> ``double_value``; strings -> ``string_value``;
dates/times -> ISO 8601 strings; anything else -> its JSON (lists, dicts) or ``str`` text.
Missing values (None, NaN, NaT, pd.NA) are left out of the feature's tags: MVT has no null.
Integers outside the 64-bit range become strings. Values are factorised per column (pandas, in C),
so Python only touches each distinct value once, not each feature.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time

import geopandas as gpd
import numpy as np
import pandas as pd

from civicmap.errors import InputError
from civicmap.tiles._mvt_wire import ValueKey, key_field, value_field

__all__ = [
    "ColumnCodes",
    "PropertyIndex",
    "TagTable",
    "column_codes",
    "feature_ids",
    "field_types",
    "property_columns",
    "tag_table",
    "value_key",
]

_JS_SAFE = (1 << 53) - 1
_UINT64_MAX = (1 << 64) - 1
_INT64_MIN = -(1 << 63)
# numpy dtype kinds read straight from the column array: bool, integers, floats, objects.
_PLAIN_KINDS = frozenset("biufO")


def property_columns(gdf: gpd.GeoDataFrame, name: str, requested: Mapping[str, Sequence[str]] | None) -> list[str]:
    """The columns written as properties of layer ``name``: the requested ones, or all but geometry."""
    geometry = gdf.active_geometry_name
    available = [c for c in gdf.columns if c != geometry]
    if requested is None or name not in requested:
        return [str(c) for c in available]
    wanted = requested[name]
    if isinstance(wanted, str):
        raise InputError(f"properties[{name!r}] is the string {wanted!r}; give a list of column names")
    missing = [c for c in wanted if c not in available]
    if missing:
        raise InputError(
            f"layer {name!r} has no column(s) {missing!r} to write as properties; available: {available!r}"
        )
    return [str(c) for c in wanted]


def _int_key(v: int) -> ValueKey:
    if 0 <= v <= _UINT64_MAX:
        return ("u", v)
    if _INT64_MIN <= v < 0:
        return ("i", v)
    return ("s", str(v))


def _number_key(value: bool | int | float | np.generic) -> ValueKey | None:
    if isinstance(value, bool | np.bool_):
        return ("b", bool(value))
    if isinstance(value, int | np.integer):
        return _int_key(int(value))
    return None if math.isnan(value) else ("d", float(value))


def _text_key(value: object) -> ValueKey | None:
    if isinstance(value, datetime | date | time):
        return None if value is pd.NaT else ("s", value.isoformat())
    if isinstance(value, list | tuple | dict):
        return ("s", json.dumps(value, default=str, ensure_ascii=False, sort_keys=True))
    return ("s", str(value))


def value_key(value: object) -> ValueKey | None:
    """The typed MVT value of one Python/numpy value, or None for a missing value."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_ | int | np.integer | float | np.floating):
        return _number_key(value)
    if isinstance(value, str):
        return ("s", value)
    return _text_key(value)


def _json_text(value: object) -> object:
    key = value_key(value)
    return None if key is None else key[1]


def _column_values(gdf: gpd.GeoDataFrame, column: str, rows: np.ndarray) -> pd.Series | np.ndarray:
    """The values of ``column`` at positions ``rows``, taken before any pandas wrapping.

    Plain numpy dtypes and strings give a numpy array (fast); other extension dtypes
    (categoricals, nullable integers, dates) a Series, so pandas' own rules still apply.
    """
    series = gdf[column]
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in _PLAIN_KINDS:
        return series.to_numpy()[rows]
    if isinstance(series.dtype, pd.StringDtype):  # missing values stay missing (NaN or pd.NA) in objects
        return series.array[rows].to_numpy(dtype=object)
    return series.iloc[rows]


def _factorize(values: pd.Series | np.ndarray) -> tuple[np.ndarray, pd.Index | np.ndarray]:
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # unhashable values (lists, dicts): compare them by their JSON text
        texts = pd.Series(values).map(_json_text)
        codes, uniques = pd.factorize(texts, use_na_sentinel=True)
    return np.asarray(codes), uniques


def _unique_keys(uniques: pd.Index | np.ndarray) -> list[ValueKey | None]:
    """``value_key`` of each factorised unique value, without per-value dispatch for numeric dtypes.

    Factorised uniques hold no missing values for numpy bool, integer and float dtypes.
    """
    kind = uniques.dtype.kind if isinstance(uniques.dtype, np.dtype) else "O"
    if kind == "f":
        return [("d", v) for v in uniques.tolist()]
    if kind == "b":
        return [("b", v) for v in uniques.tolist()]
    if kind in "iu":
        return [_int_key(v) for v in uniques.tolist()]
    return [value_key(u) for u in uniques]


class TagTable:
    """Per-feature tags of one layer, and its key and value tables already encoded.

    ``tags`` is the flat list of (key index, value index) pairs of all features, cut by
    ``offsets`` (F + 1); ``table`` the layer's ``keys`` then ``values`` fields (wire format),
    values de-duplicated by (type, value) as MVT 2.1 §4.5 asks.
    """

    def __init__(self, tags: np.ndarray, offsets: np.ndarray, table: bytes) -> None:
        self.tags = tags
        self.offsets = offsets
        self.table = table


#: One property column of a tile's features: its name, a code per feature (-1: missing) and
#: the typed value of each code, codes numbered in order of first appearance.
ColumnCodes = tuple[str, np.ndarray, list["ValueKey | None"]]


def column_codes(gdf: gpd.GeoDataFrame, column: str, rows: np.ndarray) -> ColumnCodes:
    """Factorise ``column`` at positions ``rows`` of ``gdf`` (codes in order of first appearance)."""
    codes, uniques = _factorize(_column_values(gdf, column, rows))
    return column, codes, _unique_keys(uniques)


def _exact(key: ValueKey) -> tuple:
    """``key`` told apart from every value with other bytes (0.0 and -0.0 compare equal in Python)."""
    return ("d", float(key[1]).hex()) if key[0] == "d" else key  # type: ignore[arg-type]


class PropertyIndex:
    """Property columns of a whole frame coded once, so that a tile's tags are a few gathers.

    Every distinct typed value of every column gets a number (with its ``Layer.values`` field
    encoded once) and each feature a number per column (-1: missing), int32, 4 bytes per
    feature and column, features in frame order or in ``order`` (frame rows) if given.
    :meth:`tags_at` numbers a tile's values in order of first appearance, column by column,
    merging values Python holds equal (0.0 and -0.0) as :func:`tag_table` does, so tiles are
    byte-identical to the ones made from the frame.
    """

    def __init__(self, gdf: gpd.GeoDataFrame, columns: Sequence[str], *, order: np.ndarray | None = None) -> None:
        every = np.arange(len(gdf))
        self.columns = list(columns)
        self._position = {c: j for j, c in enumerate(self.columns)}
        self._key_fields = [key_field(c) for c in self.columns]
        self._exact: dict[tuple, int] = {}
        self._groups: dict[ValueKey, int] = {}
        self._fields: list[bytes] = []
        group_of: list[int] = []
        self._gids = np.full((len(self.columns), len(gdf)), -1, dtype=np.int32)
        for j, column in enumerate(self.columns):
            _, codes, keys = column_codes(gdf, column, every)
            lookup = np.array([-1 if k is None else self._number(k, group_of) for k in keys] + [-1], dtype=np.int32)
            self._gids[j] = lookup[codes]  # code -1 (missing) picks the trailing -1
            series = gdf[column]
            if isinstance(series.dtype, np.dtype) and series.dtype.kind == "f":
                self._signed_zeros(j, series.to_numpy(), group_of)
        self._group = np.array(group_of, dtype=np.int64)
        if order is not None:  # features stored in this order of frame rows
            self._gids = np.ascontiguousarray(self._gids[:, order])

    def _number(self, key: ValueKey, group_of: list[int]) -> int:
        """The number of the exact value ``key``, given one (and its field encoded) on first sight."""
        gid = self._exact.setdefault(_exact(key), len(self._exact))
        if gid == len(self._fields):
            self._fields.append(value_field(key))
            group_of.append(self._groups.setdefault(key, len(self._groups)))
        return gid

    def _signed_zeros(self, j: int, values: np.ndarray, group_of: list[int]) -> None:
        """Factorising merges 0.0 and -0.0; a tile from the frame writes the first one of the tile."""
        zero = values == 0
        if np.signbit(values[zero]).any():
            signed = [self._number(("d", v), group_of) for v in (0.0, -0.0)]
            self._gids[j, zero] = np.where(np.signbit(values[zero]), signed[1], signed[0])

    @property
    def nbytes(self) -> int:
        """Memory of the per-feature codes, in bytes (the value tables come on top)."""
        return self._gids.nbytes

    def tags_at(self, rows: np.ndarray, columns: Sequence[str] | None = None) -> TagTable:
        """The tags of the features at positions ``rows``, for ``columns`` (default: all)."""
        gids = self._gids[:, rows]
        key_fields = self._key_fields
        if columns is not None:
            gids = gids[[self._position[c] for c in columns]]
            key_fields = [key_fields[self._position[c]] for c in columns]
        valid = gids >= 0
        full = bool(valid.all())
        flat = gids.reshape(-1) if full else gids[valid]  # column by column, features in order
        if not flat.size:
            return TagTable(np.zeros(0, dtype=np.uint64), np.zeros(len(rows) + 1, dtype=np.int64), b"")
        number, firsts = _first_appearance(self._group[flat], len(self._groups))
        present = np.ones(len(gids), dtype=bool) if full else valid.any(axis=1)
        pairs = np.empty((gids.shape[1], gids.shape[0], 2), dtype=np.uint64)  # feature by feature
        pairs[:, :, 0] = present.cumsum() - 1
        if full:
            pairs[:, :, 1] = number.reshape(gids.shape).T
            tags, per = pairs.reshape(-1), np.full(gids.shape[1], 2 * gids.shape[0])
        else:
            values = np.empty(gids.shape, dtype=np.int64)
            values[valid] = number
            pairs[:, :, 1] = values.T
            tags, per = pairs[valid.T].reshape(-1), 2 * valid.sum(axis=0)
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(per, out=offsets[1:])
        keys = [key_fields[j] for j in np.flatnonzero(present).tolist()]
        return TagTable(tags, offsets, b"".join(keys + [self._fields[g] for g in flat[firsts].tolist()]))


def _first_appearance(groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Number the distinct ``groups`` (ints in 0..n_groups-1) 0.. in order of first appearance.

    Returns (each element's number, the position of each number's first element).
    """
    if n_groups > 65_536:  # a dense table per tile would cost more than sorting
        _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
        by_position = np.argsort(first)
        rank = np.empty_like(by_position)
        rank[by_position] = np.arange(len(by_position))
        return rank[inverse.reshape(-1)], first[by_position]
    position = np.arange(len(groups))
    first_at = np.empty(n_groups, dtype=np.int64)  # only the entries of ``groups`` are written and read
    first_at[groups] = len(groups)
    np.minimum.at(first_at, groups, position)
    first = first_at[groups]
    is_first = first == position
    return (is_first.cumsum() - 1)[first], is_first.nonzero()[0]


def tag_table(columns: Sequence[ColumnCodes], n: int) -> TagTable:
    """Build the tags of ``n`` features from their coded property columns (see :data:`ColumnCodes`)."""
    table: dict[ValueKey, int] = {}
    keys: list[str] = []
    value_idx = np.full((n, len(columns)), -1, dtype=np.int64)
    key_idx = np.zeros(len(columns), dtype=np.int64)
    for j, (column, codes, code_keys) in enumerate(columns):
        lookup = np.array(
            [-1 if k is None else table.setdefault(k, len(table)) for k in code_keys] + [-1],
            dtype=np.int64,
        )
        column_idx = lookup[codes]  # code -1 (missing) picks the trailing -1
        if (column_idx >= 0).any():
            key_idx[j] = len(keys)
            keys.append(column)
            value_idx[:, j] = column_idx
    valid = value_idx >= 0
    pairs = np.stack([np.broadcast_to(key_idx, value_idx.shape), value_idx], axis=2)[valid]
    offsets = np.concatenate([[0], np.cumsum(2 * valid.sum(axis=1))]).astype(np.int64)
    used = sorted(table, key=table.__getitem__)
    encoded = b"".join(map(key_field, keys)) + b"".join(map(value_field, used))
    return TagTable(pairs.reshape(-1).astype(np.uint64), offsets, encoded)


def feature_ids(index: pd.Index, rows: np.ndarray | None = None) -> np.ndarray:
    """MVT feature ids (uint64) of the labels of ``index`` at positions ``rows`` (default: all).

    A non-negative integer index is used as is. Any other index (strings, negative numbers,
    tuples) is hashed with :func:`pandas.util.hash_pandas_object` (SipHash with pandas' fixed
    key, so stable across runs, processes and tiles) and cut to 53 bits, which JavaScript
    numbers hold exactly; distinct labels collide with probability ~n²/2⁵⁴. The choice between
    the two is made on the whole index, so that a feature has one id in every tile.
    """
    picked = index if rows is None else index[rows]
    if len(picked) == 0:
        return np.zeros(0, dtype=np.uint64)
    if pd.api.types.is_integer_dtype(index.dtype) and index.min() >= 0:
        return picked.to_numpy().astype(np.uint64)
    hashed = pd.util.hash_pandas_object(picked, categorize=False).to_numpy()
    return hashed & np.uint64(_JS_SAFE)


def field_types(gdf: gpd.GeoDataFrame, columns: Sequence[str]) -> dict[str, str]:
    """TileJSON ``fields`` for ``columns``: "Boolean", "Number" or "String" by dtype, as encoded."""
    out = {}
    for column in columns:
        dtype = gdf[column].dtype
        if pd.api.types.is_bool_dtype(dtype):
            out[column] = "Boolean"
        elif pd.api.types.is_numeric_dtype(dtype):
            out[column] = "Number"
        else:
            out[column] = "String"
    return out
