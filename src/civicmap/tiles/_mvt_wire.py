"""Protocol-buffer wire format of Mapbox Vector Tiles 2.1, written with numpy.

Private to :mod:`civicmap.tiles.vector`. Every field of a ``Feature`` message (id, tags,
type, geometry) is a varint or a packed list of varints, and every field tag used is below
128, so a whole layer's features are one flat array of unsigned integers, each written as a
varint; the per-feature byte counts needed for the length prefixes come from the same
vectorised size computation. Field numbers are those of ``vector_tile.proto`` 2.1:
Tile.layers=3; Layer: name=1, features=2, keys=3, values=4, extent=5, version=15;
Feature: id=1, tags=2, type=3, geometry=4; Value: string=1, double=3, uint=5, sint=6, bool=7.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FeatureArrays",
    "ValueKey",
    "encode_layer",
    "encode_varints",
    "feature_bytes",
    "varint",
    "varint_sizes",
    "zigzag",
]

# (kind, value): kind "s" string, "d" double, "u" unsigned int, "i" negative int, "b" bool.
ValueKey = tuple[str, object]

_DOUBLE = struct.Struct("<d")
_THRESHOLDS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)


def zigzag(values: np.ndarray) -> np.ndarray:
    """ZigZag-encode signed 64-bit integers (``(n << 1) ^ (n >> 63)``) as uint64."""
    v = values.astype(np.int64, copy=False)
    return ((v << 1) ^ (v >> 63)).view(np.uint64)


def varint_sizes(values: np.ndarray) -> np.ndarray:
    """Bytes each unsigned value takes as a protobuf varint (1..10)."""
    v = values.astype(np.uint64, copy=False)
    sizes = np.ones(v.shape, dtype=np.int64)
    for limit in _THRESHOLDS:
        big = v >= limit
        if not big.any():
            break
        sizes += big
    return sizes


def encode_varints(values: np.ndarray, sizes: np.ndarray | None = None) -> bytes:
    """All ``values`` (unsigned) as consecutive protobuf varints, in one vectorised pass."""
    v = values.astype(np.uint64, copy=False)
    n = varint_sizes(v) if sizes is None else sizes
    if int(n.max(initial=1)) == 1:
        return v.astype(np.uint8).tobytes()
    owner = np.repeat(np.arange(v.size), n)
    starts = np.cumsum(n) - n
    k = (np.arange(owner.size) - starts[owner]).astype(np.uint64)
    out = (v[owner] >> (np.uint64(7) * k)) & np.uint64(0x7F)
    out |= (k + np.uint64(1) < n[owner].astype(np.uint64)).astype(np.uint64) << np.uint64(7)
    return out.astype(np.uint8).tobytes()


def varint(value: int) -> bytes:
    """One unsigned integer as a protobuf varint."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + varint(len(payload)) + payload


def _value_field(key: ValueKey) -> bytes:
    """One ``Layer.values`` field (tag 4, length, Value message)."""
    if key[0] == "d":
        return b"\x22\x09\x19" + _DOUBLE.pack(key[1])
    return _field(0x22, _value_message(key))


def _value_message(key: ValueKey) -> bytes:
    kind, value = key
    if kind == "s":
        return _field(0x0A, str(value).encode("utf-8"))
    if kind == "d":
        return b"\x19" + struct.pack("<d", value)
    if kind == "b":
        return b"\x38\x01" if value else b"\x38\x00"
    if kind == "u":
        return b"\x28" + varint(int(value))  # type: ignore[call-overload]
    return b"\x30" + varint((-int(value) << 1) - 1)  # type: ignore[call-overload]  # sint: zigzag of a negative


@dataclass(frozen=True)
class FeatureArrays:
    """A layer's features as flat arrays, in output order (F features).

    ``geometry`` holds the command integers and zigzagged parameters of every feature, cut by
    ``geometry_offsets`` (F + 1); ``tags`` the key/value index pairs, cut by ``tag_offsets``.
    """

    ids: np.ndarray
    types: np.ndarray
    geometry: np.ndarray
    geometry_offsets: np.ndarray
    tags: np.ndarray
    tag_offsets: np.ndarray


def _segment_sums(sizes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    cum = np.concatenate([[0], np.cumsum(sizes)])
    return cum[offsets[1:]] - cum[offsets[:-1]]


def feature_bytes(arrays: FeatureArrays) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Size in bytes of each encoded ``Feature`` message, plus the pieces reused by encoding."""
    geom_sizes = varint_sizes(arrays.geometry)
    tag_sizes = varint_sizes(arrays.tags)
    geom_len = _segment_sums(geom_sizes, arrays.geometry_offsets)
    tag_len = _segment_sums(tag_sizes, arrays.tag_offsets)
    has_tags = np.diff(arrays.tag_offsets) > 0
    total = 1 + varint_sizes(arrays.ids) + 2 + 1 + varint_sizes(geom_len) + geom_len
    total += has_tags * (1 + varint_sizes(tag_len) + tag_len)
    parts = {"geom_sizes": geom_sizes, "tag_sizes": tag_sizes, "geom_len": geom_len, "tag_len": tag_len}
    return total, parts


def _scatter_segments(out: np.ndarray, values: np.ndarray, offsets: np.ndarray, starts: np.ndarray) -> None:
    """Copy segment f of ``values`` (cut by ``offsets``) to ``out[starts[f]:]``."""
    counts = np.diff(offsets)
    if values.size:
        out[np.repeat(starts - offsets[:-1], counts) + np.arange(values.size)] = values


def _feature_stream(arrays: FeatureArrays, total: np.ndarray, parts: dict[str, np.ndarray]) -> np.ndarray:
    """The layer's ``features`` fields (tag 2, length, Feature) as one array of varint values."""
    n_tags = np.diff(arrays.tag_offsets)
    n_geom = np.diff(arrays.geometry_offsets)
    has_tags = n_tags > 0
    header = 4 + 2 * has_tags  # [0x12, len, 0x08, id] + optional [0x12, tag_len]
    counts = header + n_tags + 4 + n_geom  # + [0x18, type, 0x22, geom_len]
    starts = np.cumsum(counts) - counts
    out = np.empty(int(counts.sum()), dtype=np.uint64)
    out[starts] = 0x12
    out[starts + 1] = total
    out[starts + 2] = 0x08
    out[starts + 3] = arrays.ids
    out[starts[has_tags] + 4] = 0x12
    out[starts[has_tags] + 5] = parts["tag_len"][has_tags]
    _scatter_segments(out, arrays.tags, arrays.tag_offsets, starts + header)
    after = starts + header + n_tags
    out[after] = 0x18
    out[after + 1] = arrays.types
    out[after + 2] = 0x22
    out[after + 3] = parts["geom_len"]
    _scatter_segments(out, arrays.geometry, arrays.geometry_offsets, after + 4)
    return out


def encode_layer(
    name: str,
    arrays: FeatureArrays,
    keys: Sequence[str],
    values: Sequence[ValueKey],
    *,
    extent: int,
    sizes: tuple[np.ndarray, dict[str, np.ndarray]] | None = None,
) -> bytes:
    """One ``Tile.layers`` field (tag 3, length, Layer message), version 2.

    ``sizes`` is ``feature_bytes(arrays)`` when the caller already has it (computed otherwise).
    """
    total, parts = feature_bytes(arrays) if sizes is None else sizes
    features = encode_varints(_feature_stream(arrays, total, parts))
    body = b"".join(
        [
            b"\x78\x02",  # version = 2
            _field(0x0A, name.encode("utf-8")),
            features,
            *(_field(0x1A, k.encode("utf-8")) for k in keys),
            *map(_value_field, values),
            b"\x28" + varint(extent),
        ]
    )
    return _field(0x1A, body)
