"""Resampling of a north-up source array onto a north-up destination grid in the same CRS, in numpy.

When a raster is already in EPSG:3857 a tile needs no warp: each destination axis depends on
one source axis only, so the resampling is separable and done as two small gathers (rows,
then columns) with per-pixel tap weights. This replaces a GDAL warp per tile, whose setup
cost dominates small tiles.

Kernels (positions in source pixels, measured from the array's top-left corner):

* ``nearest``: the source pixel under the destination pixel centre (weight 1).
* ``bilinear``: a triangle of radius ``max(1, scale)`` source pixels around the destination
  centre, ``scale`` being destination over source pixel size: plain bilinear interpolation
  when enlarging, and a triangle filter over every covered source pixel when shrinking (as
  GDAL's warper does).

Validity travels as weights, as an alpha band does in a GDAL warp: values are the weighted
mean of valid taps only (nodata never bleeds in). A pixel is opaque (255) when valid taps
carry at least half the weight of the taps that lie on the source, else transparent (0);
this binary alpha matches GDAL's bilinear warp with a source alpha band on all but a few
edge pixels (measured). Destination pixels whose centre is off the source are transparent.
"""

from __future__ import annotations

import math

import numpy as np
from affine import Affine

__all__ = ["is_north_up", "resample_aligned"]


def is_north_up(transform: Affine) -> bool:
    """Whether ``transform`` has no rotation or shear, east-positive columns and south-going rows."""
    return transform.b == 0 and transform.d == 0 and transform.a > 0 and transform.e < 0


def _taps(pos: np.ndarray, n_src: int, scale: float, resampling: str) -> tuple[np.ndarray, np.ndarray]:
    """Source indexes (n_dst, k) and weights (n_dst, k) for destination centres at ``pos``.

    A triangle of radius ``r`` covers the open interval (pos - r, pos + r) of pixel centres,
    which holds at most ``ceil(2 r)`` of them: that many taps, none of them always zero.
    """
    if resampling == "nearest":
        idx = np.floor(pos).astype(np.intp)[:, None]
        weight = np.ones(idx.shape)
    else:
        radius = max(1.0, scale)
        first = np.floor(pos - 0.5 - radius).astype(np.intp) + 1
        idx = first[:, None] + np.arange(math.ceil(2 * radius))
        weight = np.clip(1.0 - np.abs(idx + 0.5 - pos[:, None]) / radius, 0.0, None)
    weight[(idx < 0) | (idx >= n_src)] = 0.0
    weight[(pos < 0) | (pos >= n_src)] = 0.0  # centre off the source: transparent
    return np.clip(idx, 0, n_src - 1), weight


def _rows(arr: np.ndarray, idx: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weighted sum of the row taps of a (bands, rows, cols) array: (bands, n_dst, cols)."""
    w = weight.astype(arr.dtype)[None, :, :, None]
    out = arr[:, idx[:, 0]] * w[:, :, 0]
    for j in range(1, idx.shape[1]):  # a few taps, each a vectorised gather and multiply-add
        out += arr[:, idx[:, j]] * w[:, :, j]
    return out


def _cols(arr: np.ndarray, idx: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weighted sum of the column taps of a (bands, rows, cols) array: (bands, rows, n_dst)."""
    w = weight.astype(arr.dtype)
    out = arr[:, :, idx[:, 0]] * w[:, 0]
    for j in range(1, idx.shape[1]):
        out += arr[:, :, idx[:, j]] * w[:, j]
    return out


def resample_aligned(
    values: np.ndarray,
    valid: np.ndarray,
    *,
    src_transform: Affine,
    dst_transform: Affine,
    dst_size: int,
    resampling: str,
) -> tuple[np.ndarray, np.ndarray]:
    """``values`` (bands, rows, cols) on the square destination grid: (values, alpha 0 or 255, uint8).

    Both transforms must be north-up (:func:`is_north_up`) and in the same CRS (units cancel).
    ``valid`` (rows, cols) is True where every band holds data; invalid values are ignored.
    ``resampling`` is "nearest" or "bilinear" (see the module docstring). Values come back in
    the dtype of ``values`` (float32 or float64), zero where the alpha is zero.
    """
    centres = np.arange(dst_size) + 0.5
    col_pos = (dst_transform.c + centres * dst_transform.a - src_transform.c) / src_transform.a
    row_pos = (dst_transform.f + centres * dst_transform.e - src_transform.f) / src_transform.e
    cols = _taps(col_pos, values.shape[-1], dst_transform.a / src_transform.a, resampling)
    rows = _taps(row_pos, values.shape[-2], dst_transform.e / src_transform.e, resampling)
    if valid.all():  # the common case: no validity to carry; each axis' weights are normalised alone
        row_w, col_w = _normalised(rows[1]), _normalised(cols[1])
        opaque = (row_w.sum(axis=1) > 0)[:, None] & (col_w.sum(axis=1) > 0)[None, :]
        return _cols(_rows(values, rows[0], row_w), cols[0], col_w), _alpha(opaque)
    covered = np.outer(rows[1].sum(axis=1), cols[1].sum(axis=1))  # all taps on the source
    weight = valid.astype(values.dtype)[None]
    stacked = np.concatenate([np.where(valid, values, 0), weight])  # bands, then the validity weight
    out = _cols(_rows(stacked, *rows), *cols)
    share = out[-1]
    data = (out[:-1] / np.where(share > 0, share, 1)).astype(values.dtype, copy=False)
    opaque = (covered > 0) & (share >= 0.5 * covered)
    return np.where(opaque, data, 0), _alpha(opaque)


def _normalised(weight: np.ndarray) -> np.ndarray:
    """Tap weights scaled to sum to 1 per destination pixel (rows of zeros stay zero)."""
    total = weight.sum(axis=1, keepdims=True)
    return weight / np.where(total > 0, total, 1)


def _alpha(opaque: np.ndarray) -> np.ndarray:
    return (opaque * 255).astype(np.uint8)
