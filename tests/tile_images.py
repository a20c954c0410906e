"""Decoding of tile images for the tests, with GDAL (independent of civicmap's PNG writer)."""

import warnings

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning


def decode_png(data: bytes | None) -> np.ndarray:
    """A PNG/JPEG/WebP tile as a (bands, 256, 256) uint8 array; palette PNGs become RGBA."""
    assert data is not None, "no tile was rendered"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.MemoryFile(data) as mem, mem.open() as ds:
            if ds.count == 1 and ds.colorinterp[0] == ColorInterp.palette:
                table = np.zeros((256, 4), dtype="uint8")
                for index, colour in ds.colormap(1).items():
                    table[index] = colour
                return np.moveaxis(table[ds.read(1)], 2, 0)
            return ds.read()
