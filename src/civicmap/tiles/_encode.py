"""Tile images to bytes (private to :mod:`civicmap.tiles.raster`): palette or RGBA PNG, JPEG, WebP.

PNG is written here, row filter "None": a one-band tile of at most 256 colours (255 with
transparency) and an alpha of 0 or 255 is a palette PNG (one byte per pixel, PLTE + tRNS,
zlib level ``PALETTE_ZLIB_LEVEL``: about a quarter of the bytes to compress, and smaller
files), anything else 8-bit RGBA (level ``PNG_ZLIB_LEVEL``). Both are lossless: the same
RGBA, transparent pixels (0, 0, 0, 0). JPEG and WebP go through GDAL's drivers (JPEG has no
alpha: transparent pixels become black).
"""

from __future__ import annotations

import struct
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile

__all__ = ["FORMATS", "PALETTE_ZLIB_LEVEL", "PNG_ZLIB_LEVEL", "Indexed", "encode_image", "with_alpha"]

#: zlib level of RGBA PNG tiles (6, as GDAL's PNG driver).
PNG_ZLIB_LEVEL = 6
#: zlib level of palette PNG tiles (one byte per pixel). Measured on 256 px tiles of a colormapped
#: DEM (z12..z16): level 4 takes 0.7..0.26 ms for 12.7..2.5 kB; level 6 1.4..0.35 ms for 12.5..1.7 kB.
PALETTE_ZLIB_LEVEL = 4
#: Tile formats and their GDAL drivers (PNG is written here).
FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}


@dataclass(frozen=True)
class Indexed:
    """A one-band tile as levels 0..255 into a table of 256 RGBA colours, with its own alpha."""

    levels: np.ndarray
    """(h, w) uint8."""
    table: np.ndarray
    """(256, 4) uint8: the colour of each level."""
    alpha: np.ndarray
    """(h, w) uint8: 0 (no data) to 255; a pixel shows the smaller of this and its colour's alpha."""

    def rgba(self) -> np.ndarray:
        """The (h, w, 4) uint8 RGBA image."""
        return with_alpha(self.table[self.levels], self.alpha)

    def visible(self) -> bool:
        """Whether any pixel shows."""
        if not self.alpha.any():
            return False
        if (self.table[:, 3] > 0).all():  # every colour is visible: no need to look them up
            return True
        return bool(((self.alpha > 0) & (self.table[:, 3][self.levels] > 0)).any())


def with_alpha(rgba: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``rgba`` with its alpha capped by ``alpha``; fully transparent pixels become (0, 0, 0, 0)."""
    rgba[..., 3] = np.minimum(rgba[..., 3], alpha)
    return rgba * (rgba[..., 3:] > 0)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png(rgba: np.ndarray, *, level: int = PNG_ZLIB_LEVEL) -> bytes:
    """RGBA PNG bytes of an (h, w, 4) uint8 array (8 bits per channel, filter "None", zlib)."""
    h, w, _ = rgba.shape
    header = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)  # 8-bit RGBA, deflate, no interlace
    return _png_bytes(header, np.ascontiguousarray(rgba).reshape(h, w * 4), [], level)


def _png_palette(image: Indexed, *, level: int = PALETTE_ZLIB_LEVEL) -> bytes | None:
    """Palette PNG bytes (8-bit indexes, PLTE + tRNS) of a tile of at most 256 colours, else None.

    Lossless: each pixel's RGBA is exactly that of :meth:`Indexed.rgba`. Needs an alpha of 0
    or 255 only (partial alphas would multiply the colours). Without transparent pixels the
    palette is the table's run of levels from the lowest to the highest present (the index is
    the level minus the lowest: no lookup); otherwise (0, 0, 0, 0) first, then the visible
    colours of the levels present, in level order.
    """
    transparent = image.alpha == 0
    if not transparent.any():
        if not (image.alpha == 255).all():
            return None
        low, high = int(image.levels.min()), int(image.levels.max())
        return _png_indexes(image.levels - np.uint8(low), image.table[low : high + 1], level)
    if not (transparent | (image.alpha == 255)).all():
        return None
    present = np.bincount(image.levels.ravel(), minlength=256) > 0  # (levels under transparent pixels too)
    shown = present & (image.table[:, 3] > 0)
    count = int(shown.sum())
    if count > 255:
        return None
    indexes = np.where(shown, np.cumsum(shown), 0).astype(np.uint8)[image.levels]
    indexes[transparent] = 0
    return _png_indexes(indexes, np.concatenate([np.zeros((1, 4), dtype=np.uint8), image.table[shown]]), level)


def _png_indexes(indexes: np.ndarray, palette: np.ndarray, level: int) -> bytes:
    """Palette PNG of (h, w) uint8 ``indexes`` into ``palette`` (n <= 256, 4) RGBA uint8."""
    palette = palette * (palette[:, 3:] > 0)  # invisible colours as (0, 0, 0, 0), as in Indexed.rgba
    translucent = np.flatnonzero(palette[:, 3] < 255)
    chunks = [(b"PLTE", palette[:, :3].tobytes())]
    if translucent.size:  # tRNS lists the alphas up to the last entry that is not opaque
        chunks.append((b"tRNS", palette[: translucent[-1] + 1, 3].tobytes()))
    h, w = indexes.shape
    header = struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)  # 8-bit palette indexes, deflate, no interlace
    return _png_bytes(header, indexes, chunks, level)


def _png_bytes(header: bytes, rows: np.ndarray, chunks: list[tuple[bytes, bytes]], level: int) -> bytes:
    """A PNG of IHDR ``header``, ancillary ``chunks`` and the (h, bytes per row) uint8 ``rows``."""
    h, n = rows.shape
    filtered = np.empty((h, n + 1), dtype=np.uint8)
    filtered[:, 0] = 0  # filter type 0 per row: smallest and fastest for colormapped tiles (measured)
    filtered[:, 1:] = rows
    parts = [b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", header)]
    parts += [_png_chunk(kind, payload) for kind, payload in chunks]
    parts += [_png_chunk(b"IDAT", zlib.compress(filtered.tobytes(), level)), _png_chunk(b"IEND", b"")]
    return b"".join(parts)


def encode_image(image: Indexed | np.ndarray, fmt: str) -> bytes:
    driver = FORMATS[fmt]
    if driver == "PNG":
        png = _png_palette(image) if isinstance(image, Indexed) else None
        return png if png is not None else _png(image.rgba() if isinstance(image, Indexed) else image)
    rgba = image.rgba() if isinstance(image, Indexed) else image
    bands = rgba[..., :3] if driver == "JPEG" else rgba  # transparent pixels are (0, 0, 0, 0): black in JPEG
    h, w, count = bands.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as mem:
            with mem.open(driver=driver, width=w, height=h, count=count, dtype="uint8") as out:
                out.write(np.moveaxis(bands, 2, 0))
            return bytes(mem.read())
