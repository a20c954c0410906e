"""Colormaps for raster tiles, declared as immutable data.

Two kinds:

* :class:`ContinuousColormap`: colour stops ``(value, (r, g, b, a))`` in ascending order;
  a value between two stops is linearly interpolated channel by channel (alpha included);
  values below the first stop take its colour, above the last stop the last one (clamped).
* :class:`ClassedColormap`: one colour per integer class index (``value == index``);
  values that are no declared class are transparent.

Stop values are in the units of the rendered data, or in 0..255 when the tile is rendered
with ``rescale=(min, max)`` (rescale is applied first, as in rio-tiler).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeAlias

import numpy as np

from civicmap.errors import InputError

__all__ = [
    "COLORMAPS",
    "ELEVATION",
    "FLOOD_DEPTH_M",
    "GREYS",
    "HAZARD_CLASSES",
    "RGBA",
    "ClassedColormap",
    "Colormap",
    "ContinuousColormap",
    "get_colormap",
]

RGBA: TypeAlias = tuple[int, int, int, int]
TRANSPARENT: RGBA = (0, 0, 0, 0)


def _check_rgba(colour: RGBA, where: str) -> None:
    if len(colour) != 4 or not all(isinstance(c, int) and 0 <= c <= 255 for c in colour):
        raise InputError(f"{where}: colour {colour!r} is not four integers 0..255 (r, g, b, alpha)")


@dataclass(frozen=True)
class ContinuousColormap:
    """A linear ramp through ``stops`` (value, RGBA), values strictly ascending, clamped at both ends."""

    name: str
    stops: tuple[tuple[float, RGBA], ...]

    def __post_init__(self) -> None:
        values = [v for v, _ in self.stops]
        if len(values) < 2 or any(b <= a for a, b in itertools.pairwise(values)):
            raise InputError(f"colormap {self.name!r}: needs at least two stops with strictly ascending values")
        for value, colour in self.stops:
            _check_rgba(colour, f"colormap {self.name!r} stop {value}")

    def apply(self, values: np.ndarray) -> np.ndarray:
        """RGBA uint8 array of shape ``values.shape + (4,)``."""
        xs = np.array([v for v, _ in self.stops], dtype=np.float64)
        colours = np.array([c for _, c in self.stops], dtype=np.float64)
        v = np.asarray(values, dtype=np.float64)
        out = np.empty((*v.shape, 4), dtype=np.uint8)
        for channel in range(4):
            out[..., channel] = np.rint(np.interp(v, xs, colours[:, channel]))
        return out

    def lut(self) -> np.ndarray:
        """RGBA uint8 (256, 4): the colours of the values 0, 1, ..., 255 (data rescaled to 0..255)."""
        return self.apply(np.arange(256))


@dataclass(frozen=True)
class ClassedColormap:
    """One colour per integer class: ``classes`` is ((index, RGBA, label), ...); others are transparent."""

    name: str
    classes: tuple[tuple[int, RGBA, str], ...]

    def __post_init__(self) -> None:
        indexes = [i for i, _, _ in self.classes]
        if not indexes or len(set(indexes)) != len(indexes) or not all(isinstance(i, int) for i in indexes):
            raise InputError(f"colormap {self.name!r}: needs distinct integer class indexes")
        for index, colour, _ in self.classes:
            _check_rgba(colour, f"colormap {self.name!r} class {index}")

    def apply(self, values: np.ndarray) -> np.ndarray:
        """RGBA uint8 array of shape ``values.shape + (4,)``; non-integral values are transparent."""
        v = np.asarray(values, dtype=np.float64)
        out = np.zeros((*v.shape, 4), dtype=np.uint8)
        for index, colour, _ in self.classes:
            out[v == index] = colour
        return out

    def lut(self) -> np.ndarray | None:
        """RGBA uint8 (256, 4): the colour of each class index 0..255 (others transparent).

        None when a class index lies outside 0..255 (such classes need :meth:`apply`).
        """
        if not all(0 <= index <= 255 for index, _, _ in self.classes):
            return None
        return self.apply(np.arange(256))


Colormap: TypeAlias = ContinuousColormap | ClassedColormap

#: Flood water depth in metres: transparent at 0 m, light to dark blue up to 2 m and beyond.
FLOOD_DEPTH_M = ContinuousColormap(
    "flood_depth_m",
    (
        (0.0, (198, 219, 239, 0)),
        (0.05, (198, 219, 239, 255)),
        (0.5, (107, 174, 214, 255)),
        (1.0, (33, 113, 181, 255)),
        (2.0, (8, 48, 107, 255)),
    ),
)
#: Hazard classes 0 (none) to 4 (very high), traffic-light colours.
HAZARD_CLASSES = ClassedColormap(
    "hazard_classes",
    (
        (0, TRANSPARENT, "none"),
        (1, (255, 255, 178, 255), "low"),
        (2, (254, 204, 92, 255), "medium"),
        (3, (253, 141, 60, 255), "high"),
        (4, (227, 26, 28, 255), "very high"),
    ),
)
#: Black to white over 0..255 (use with ``rescale``).
GREYS = ContinuousColormap("greys", ((0.0, (0, 0, 0, 255)), (255.0, (255, 255, 255, 255))))
#: A hypsometric ramp over 0..255 (use with ``rescale=(lowest_m, highest_m)``).
ELEVATION = ContinuousColormap(
    "elevation",
    (
        (0.0, (26, 150, 65, 255)),
        (64.0, (166, 217, 106, 255)),
        (128.0, (255, 255, 191, 255)),
        (192.0, (253, 174, 97, 255)),
        (255.0, (215, 25, 28, 255)),
    ),
)
#: Every declared colormap by name.
COLORMAPS: Mapping[str, Colormap] = MappingProxyType(
    {cm.name: cm for cm in (FLOOD_DEPTH_M, HAZARD_CLASSES, GREYS, ELEVATION)}
)


def get_colormap(value: str | Colormap) -> Colormap:
    """A colormap object, or the declared one of that name (:class:`InputError` naming the known ones)."""
    if isinstance(value, ContinuousColormap | ClassedColormap):
        return value
    if isinstance(value, str) and value in COLORMAPS:
        return COLORMAPS[value]
    raise InputError(f"colormap {value!r} is not known; use one of {sorted(COLORMAPS)} or a colormap object")
