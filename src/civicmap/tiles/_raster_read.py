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
    """Source indexes (n_dst, k) and weights (n_dst, k) for destination centres at ``pos``."""
    if resampling == "nearest":
        idx = np.floor(pos).astype(np.intp)[:, None]
        weight = np.ones(idx.shape)
    else:
        radius = max(1.0, scale)
        first = np.floor(pos - 0.5 - radius).astype(np.intp) + 1
        idx = first[:, None] + np.arange(math.ceil(2 * radius) + 1)
        weight = np.clip(1.0 - np.abs(idx + 0.5 - pos[:, None]) / radius, 0.0, None)
    weight[(idx < 0) | (idx >= n_src)] = 0.0
    weight[(pos < 0) | (pos >= n_src)] = 0.0  # centre off the source: transparent
    return np.clip(idx, 0, n_src - 1), weight


def _along(arr: np.ndarray, idx: np.ndarray, weight: np.ndarray, axis: int) -> np.ndarray:
    """Weighted sum of the taps along ``axis`` (-2: rows, -1: columns) of a (bands, rows, cols) array."""
    taken = np.take(arr, idx, axis=axis)
    if axis == -2:  # (bands, n_dst, k, cols)
        return np.einsum("bnkc,nk->bnc", taken, weight.astype(arr.dtype))
    return np.einsum("brnk,nk->brn", taken, weight.astype(arr.dtype))  # (bands, rows, n_dst, k)


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
    weight = valid.astype(values.dtype)[None]
    stacked = np.concatenate([np.where(valid, values, 0), weight])  # bands, then the validity weight
    out = _along(_along(stacked, *rows, axis=-2), *cols, axis=-1)
    covered = np.outer(rows[1].sum(axis=1), cols[1].sum(axis=1))  # all taps on the source
    share = out[-1]
    data = (out[:-1] / np.where(share > 0, share, 1)).astype(values.dtype, copy=False)
    opaque = (covered > 0) & (share >= 0.5 * covered)
    return np.where(opaque, data, 0), (opaque * 255).astype(np.uint8)
