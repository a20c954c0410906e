"""Protocol-buffer wire format of Mapbox Vector Tiles 2.1, written with numpy.

Private to :mod:`civicmap.tiles.vector`. Every field of a ``Feature`` message (id, tags,
type, geometry) is a varint or a packed list of varints, and every field tag used is below
128, so a whole layer's features are written in one vectorised pass: the fields' heads, the
tags and the geometries are encoded as varints together, then their byte runs gathered in
feature order; the per-feature byte counts needed for the length prefixes come from the same
vectorised size computation. Field numbers are those of ``vector_tile.proto`` 2.1:
Tile.layers=3; Layer: name=1, features=2, keys=3, values=4, extent=5, version=15;
Feature: id=1, tags=2, type=3, geometry=4; Value: string=1, double=3, uint=5, sint=6, bool=7.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FeatureArrays",
    "ValueKey",
    "encode_layer",
    "encode_varints",
    "feature_bytes",
    "key_field",
    "value_field",
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
    return np.searchsorted(_THRESHOLDS, values.astype(np.uint64, copy=False), side="right") + 1


def encode_varints(values: np.ndarray, sizes: np.ndarray | None = None) -> bytes:
    """All ``values`` (unsigned) as consecutive protobuf varints, in one vectorised pass.

    ``sizes`` are their ``varint_sizes`` when known; a size of 0 leaves that value out.
    """
    v = values.astype(np.uint64, copy=False)
    return _varint_bytes(v, varint_sizes(v) if sizes is None else sizes).tobytes()


def _varint_bytes(v: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The varint bytes (uint8) of uint64 ``v``, value i taking ``n[i]`` bytes."""
    if int(n.max(initial=1)) == 1 and int(n.min(initial=1)) == 1:
        return v.astype(np.uint8)
    ends = n.cumsum()
    k = np.arange(int(ends[-1]), dtype=np.uint64) - np.repeat((ends - n).astype(np.uint64), n)
    out = ((v.repeat(n) >> (np.uint64(7) * k)) & np.uint64(0x7F)).astype(np.uint8)
    out |= np.uint8(0x80)  # every byte but the last of its value has the continuation bit
    out[ends[n > 0] - 1] &= np.uint8(0x7F)
    return out


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


def key_field(key: str) -> bytes:
    """One ``Layer.keys`` field (tag 3, length, UTF-8 text)."""
    return _field(0x1A, key.encode("utf-8"))


def value_field(key: ValueKey) -> bytes:
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
    cum = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=cum[1:])
    return cum[offsets[1:]] - cum[offsets[:-1]]


def feature_bytes(arrays: FeatureArrays) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Size in bytes of each encoded ``Feature`` message, plus the pieces reused by encoding."""
    geom_sizes = varint_sizes(arrays.geometry)
    geom_len = _segment_sums(geom_sizes, arrays.geometry_offsets)
    if not arrays.tags.size or arrays.tags.max() < 0x80:  # every key and value index in one byte
        tag_sizes = np.ones(len(arrays.tags), dtype=np.int64)
        tag_len = arrays.tag_offsets[1:] - arrays.tag_offsets[:-1]
    else:
        tag_sizes = varint_sizes(arrays.tags)
        tag_len = _segment_sums(tag_sizes, arrays.tag_offsets)
    head = np.empty((len(geom_len), len(_HEAD)), dtype=np.uint64)
    head[:] = _HEAD
    head[:, 3], head[:, 5], head[:, 7], head[:, 9] = arrays.ids, tag_len, arrays.types, geom_len
    head_sizes = np.ones(head.shape, dtype=np.int64)  # field tags and types: one byte
    head_sizes[:, 3::2] = varint_sizes(head[:, 3::2])  # id, tags length, type, geometry length
    head_sizes[tag_len == 0, 4:6] = 0  # no tags field for a feature without properties
    total = head_sizes[:, 2:].sum(axis=1) + tag_len + geom_len
    head[:, 1] = total
    head_sizes[:, 1] = varint_sizes(total)
    parts = {"geom_sizes": geom_sizes, "tag_sizes": tag_sizes, "geom_len": geom_len, "tag_len": tag_len}
    return total, {**parts, "head": head, "head_sizes": head_sizes}


# A feature's field values: [features tag, length, id tag, id, tags tag, tags length, type tag,
# type, geometry tag, geometry length]; the tags and geometry payloads follow their lengths.
_HEAD = np.array([0x12, 0, 0x08, 0, 0x12, 0, 0x18, 0, 0x22, 0], dtype=np.uint64)


def _feature_fields(arrays: FeatureArrays, parts: dict[str, np.ndarray]) -> bytes:
    """The layer's ``features`` fields (tag 2, length, Feature message), all features at once.

    Each field is four byte runs: its head up to the tags' length, the tags, the rest of its
    head, the geometry. The runs of each kind are encoded together, one kind after the other,
    then gathered in feature order in one pass.
    """
    head, head_sizes = parts["head"], parts["head_sizes"]
    values = np.concatenate([head[:, :6].reshape(-1), arrays.tags, head[:, 6:].reshape(-1), arrays.geometry])
    sizes = np.concatenate(
        [head_sizes[:, :6].reshape(-1), parts["tag_sizes"], head_sizes[:, 6:].reshape(-1), parts["geom_sizes"]]
    )
    buffer = _varint_bytes(values, sizes)
    runs = np.empty((len(head), 4), dtype=np.int64)
    runs[:, 0] = head_sizes[:, :6].sum(axis=1)
    runs[:, 1] = parts["tag_len"]
    runs[:, 2] = head_sizes[:, 6:].sum(axis=1)
    runs[:, 3] = parts["geom_len"]
    ends = runs.cumsum(axis=0)
    kind_start = np.zeros(4, dtype=np.int64)
    kind_start[1:] = ends[-1, :3].cumsum()
    starts = (ends - runs + kind_start).reshape(-1)  # where each run is in ``buffer``
    lengths = runs.reshape(-1)
    out_ends = lengths.cumsum()
    index = np.arange(int(out_ends[-1]), dtype=np.int64) + (starts - (out_ends - lengths)).repeat(lengths)
    return buffer[index].tobytes()


def encode_layer(
    name: str,
    arrays: FeatureArrays,
    table: bytes,
    *,
    extent: int,
    sizes: tuple[np.ndarray, dict[str, np.ndarray]] | None = None,
) -> bytes:
    """One ``Tile.layers`` field (tag 3, length, Layer message), version 2.

    ``table`` is the layer's ``keys`` and ``values`` fields, encoded (see :func:`key_field`,
    :func:`value_field`); ``sizes`` is ``feature_bytes(arrays)`` when the caller already has it.
    """
    _, parts = feature_bytes(arrays) if sizes is None else sizes
    features = _feature_fields(arrays, parts) if len(arrays.ids) else b""
    body = b"".join(
        [
            b"\x78\x02",  # version = 2
            _field(0x0A, name.encode("utf-8")),
            features,
            table,
            b"\x28" + varint(extent),
        ]
    )
    return _field(0x1A, body)
