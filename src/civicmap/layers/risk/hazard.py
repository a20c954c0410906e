"""Hazard classes: declared, immutable classifications and the functions that apply them.

Interval rule (the one rule used everywhere in civicmap)::

    class i holds a value x when   lower_i <  x <= upper_i
    the first (least severe) class also holds its lower bound:   lower_0 <= x <= upper_0

so a depth exactly on a threshold belongs to the *less* severe class (0.7 m is "low", not
"medium", in :data:`FLOOD_PETABENCANA`), and a dry cell of exactly 0 m is classed. Values below
the first lower bound or above the last upper bound, NaN and nodata are *not classed* (index -1).
This is InaSAFE's own written rule (``safe/definitions/hazard_classifications.py``: "minimum
value IS NOT included, but maximum value IS included", ``minimum < x <= maximum``), with the
first class closed at the bottom so that zero depth is not lost; InaSAFE's reclassifier
(``safe/gis/raster/reclassify.py``) leaves the bottom value unclassed unless the minimum is
open (``None``).

Comparisons are made in the dtype of the values: a float32 depth raster is compared with the
thresholds rounded to float32, so a cell stored as ``float32(0.7)`` is exactly on the 0.7 m
threshold (numpy 2 does the same for ``array < 0.7``). Integer values are compared as float64.

Shipped defaults copy InaSAFE's thresholds, affected flags and displacement rates
(inasafe/inasafe ``safe/definitions/hazard_classifications.py``; the figures, not the code).
Build your own with :meth:`HazardClassification.from_thresholds`.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.features
import shapely
from affine import Affine
from pyproj import CRS
from rasterio.windows import Window

from civicmap.crs import require_crs
from civicmap.errors import CRSError, InputError, NotFoundError
from civicmap.sources._clean import GeometryReport, clean_geometries

__all__ = [
    "FLOOD_PETABENCANA",
    "FLOOD_WET_DRY",
    "GENERIC",
    "NOT_CLASSED",
    "RESERVED_NAMES",
    "TSUNAMI",
    "ClassifiedZones",
    "HazardClass",
    "HazardClassification",
    "HazardGrid",
    "classify_hazard_polygons",
    "classify_hazard_raster",
    "hazard_grid_polygons",
]

log = logging.getLogger(__name__)

#: Class index given to values that fall in no class (nodata, NaN, out of range, outside zones).
NOT_CLASSED = -1
#: Names a class may not take: they are the summary keys next to the class names.
RESERVED_NAMES = frozenset({"affected", "not_affected", "exposed", "not_exposed", "total"})
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class HazardClass:
    """One hazard class: holds ``lower < x <= upper`` (units of its classification).

    ``affected`` says whether exposure in this class counts as affected; ``displacement_rate``
    is the share of people in the class expected to be displaced (0..1); ``colour`` is a
    ``#rrggbb`` legend colour.
    """

    name: str
    lower: float
    upper: float
    affected: bool
    displacement_rate: float = 0.0
    colour: str = "#808080"

    def problems(self) -> list[str]:
        """Everything wrong with this class, as readable sentences (empty when fine)."""
        out = []
        if not all(isinstance(v, int | float) for v in (self.lower, self.upper, self.displacement_rate)):
            return [f"class {self.name!r}: lower, upper and displacement_rate must be numbers"]
        if not isinstance(self.name, str) or not self.name.strip():
            out.append(f"class name {self.name!r} must be a non-empty string")
        elif self.name in RESERVED_NAMES:
            out.append(f"class name {self.name!r} is reserved for summary keys; rename it")
        if math.isnan(self.lower) or math.isnan(self.upper) or not self.lower < self.upper:
            out.append(f"class {self.name!r}: lower {self.lower} must be less than upper {self.upper}")
        if not 0.0 <= self.displacement_rate <= 1.0:
            out.append(f"class {self.name!r}: displacement_rate {self.displacement_rate} must lie in [0, 1]")
        if not _COLOUR.match(str(self.colour)):
            out.append(f"class {self.name!r}: colour {self.colour!r} must look like '#d73027'")
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (infinite bounds as ``None``)."""
        return {
            "name": self.name,
            "lower": self.lower if math.isfinite(self.lower) else None,
            "upper": self.upper if math.isfinite(self.upper) else None,
            "affected": self.affected,
            "displacement_rate": self.displacement_rate,
            "colour": self.colour,
        }


@dataclass(frozen=True)
class HazardClassification:
    """An ordered set of hazard classes, least severe first, without gaps or overlaps.

    ``unit`` names the unit of the thresholds (``"m"`` for depth). Construction checks every
    class and the joins between neighbours and raises one :class:`InputError` naming all the
    faulty classes. The interval rule is in the module docstring.
    """

    name: str
    unit: str
    classes: tuple[HazardClass, ...]
    description: str = ""
    _edges: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        problems = [p for c in self.classes for p in c.problems()]
        if not self.classes:
            problems.append("a classification needs at least one class")
        names = [c.name for c in self.classes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(f"class names must be unique; repeated: {dupes}")
        for low, high in zip(self.classes, self.classes[1:], strict=False):
            if low.upper < high.lower:
                problems.append(f"gap between {low.name!r} (upper {low.upper}) and {high.name!r} (lower {high.lower})")
            elif low.upper > high.lower:
                problems.append(
                    f"overlap or wrong order: {low.name!r} (upper {low.upper}) and {high.name!r} "
                    f"(lower {high.lower}); list classes least severe first with upper == next lower"
                )
        if problems:
            raise InputError(f"hazard classification {self.name!r} is not valid: " + "; ".join(problems))
        edges = [c.lower for c in self.classes] + [self.classes[-1].upper]
        object.__setattr__(self, "_edges", np.array(edges, dtype=np.float64))

    @classmethod
    def from_thresholds(
        cls,
        name: str,
        thresholds: Sequence[float],
        class_names: Sequence[str],
        *,
        unit: str,
        affected: Sequence[bool],
        displacement_rates: Sequence[float] | None = None,
        colours: Sequence[str] | None = None,
        description: str = "",
    ) -> HazardClassification:
        """Build a classification from ``n + 1`` ascending edges and ``n`` class names.

        ``thresholds=[0, 0.5, 2, inf]`` with names ``["low", "medium", "high"]`` gives
        low = [0, 0.5], medium = (0.5, 2], high = (2, inf).
        """
        n = len(class_names)
        lengths = {"thresholds": (len(thresholds), n + 1), "affected": (len(affected), n)}
        if displacement_rates is not None:
            lengths["displacement_rates"] = (len(displacement_rates), n)
        if colours is not None:
            lengths["colours"] = (len(colours), n)
        bad = [f"{k} has {got} values, expected {want}" for k, (got, want) in lengths.items() if got != want]
        if bad:
            raise InputError(f"classification {name!r} with {n} classes: " + "; ".join(bad))
        rates = displacement_rates if displacement_rates is not None else [0.0] * n
        palette = colours if colours is not None else _default_colours(n)
        classes = tuple(
            HazardClass(str(class_names[i]), float(thresholds[i]), float(thresholds[i + 1]), bool(affected[i]),
                        float(rates[i]), palette[i])
            for i in range(n)
        )  # fmt: skip
        return cls(name=name, unit=unit, classes=classes, description=description)

    @property
    def names(self) -> tuple[str, ...]:
        """Class names, least severe first."""
        return tuple(c.name for c in self.classes)

    @property
    def affected_flags(self) -> np.ndarray:
        """Boolean array: is class ``i`` affected."""
        return np.array([c.affected for c in self.classes], dtype=bool)

    @property
    def displacement_rates(self) -> np.ndarray:
        """Float array: displacement rate of class ``i``."""
        return np.array([c.displacement_rate for c in self.classes], dtype=np.float64)

    def index(self, name: str) -> int:
        """Position of the class called ``name`` (exact match)."""
        try:
            return self.names.index(name)
        except ValueError:
            raise InputError(f"{name!r} is not a class of {self.name!r}; classes are {list(self.names)}") from None

    def classify(self, values: Any, *, nodata: float | None = None) -> np.ndarray:
        """Class index (int16, least severe = 0) of every value; -1 where not classed.

        Vectorised (``np.searchsorted`` on the inner thresholds); any array shape is kept.
        """
        arr = np.asarray(values)
        work = arr if np.issubdtype(arr.dtype, np.floating) else arr.astype(np.float64)
        edges = self._edges.astype(work.dtype)
        out = np.searchsorted(edges[1:-1], work, side="left").astype(np.int16)
        valid = (work >= edges[0]) & (work <= edges[-1])
        if nodata is not None and not math.isnan(nodata):
            valid &= work != np.asarray(nodata).astype(work.dtype)
        out[~valid] = NOT_CLASSED
        return out

    def severity(self, levels: Any) -> np.ndarray:
        """Normalised severity of class indices: ``(index + 1) / number of classes``; 0 if not classed."""
        lv = np.asarray(levels)
        return np.where(lv >= 0, (lv + 1) / len(self.classes), 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the interval rule spelled out."""
        return {
            "name": self.name,
            "unit": self.unit,
            "rule": "lower < x <= upper; the first class also includes its lower bound",
            "classes": [c.to_dict() for c in self.classes],
            "description": self.description,
        }


def _default_colours(n: int) -> list[str]:
    """Green (least severe) to dark red, spread evenly over ``n`` classes."""
    ramp = ["#1a9850", "#a6d96a", "#fee08b", "#fc8d59", "#d73027", "#a50026"]
    picks = np.linspace(0, len(ramp) - 1, n).round().astype(int) if n > 1 else [len(ramp) - 2]
    return [ramp[i] for i in picks]


_INF = math.inf

#: InaSAFE "Flood wet/dry classes": dry [0, 1] m not affected; wet (1, inf) m affected, 1 % displaced.
FLOOD_WET_DRY = HazardClassification.from_thresholds(
    "flood_wet_dry", [0.0, 1.0, _INF], ["dry", "wet"], unit="m", affected=[False, True],
    displacement_rates=[0.0, 0.01], colours=["#fee08b", "#d73027"],
    description="Binary flood classes (InaSAFE flood_hazard_classes): wet when deeper than 1 m.",
)  # fmt: skip
#: InaSAFE "Flood classes" from PetaBencana.id: use_caution [0, 0.1], low (0.1, 0.7] 1 %,
#: medium (0.7, 1.5] 3 %, high (1.5, inf) m 5 % displaced; use_caution is not affected.
FLOOD_PETABENCANA = HazardClassification.from_thresholds(
    "flood_petabencana", [0.0, 0.1, 0.7, 1.5, _INF], ["use_caution", "low", "medium", "high"], unit="m",
    affected=[False, True, True, True], displacement_rates=[0.0, 0.01, 0.03, 0.05],
    colours=["#a6d96a", "#fee08b", "#fc8d59", "#d73027"],
    description="Flood depth classes of PetaBencana.id (InaSAFE flood_petabencana_hazard_classes).",
)  # fmt: skip
#: InaSAFE "Tsunami classes" (BNPB Perka 2/2012): dry [0, 0.1], low (0.1, 1] not affected;
#: medium (1, 3] and high (3, inf) m affected, 100 % displaced.
TSUNAMI = HazardClassification.from_thresholds(
    "tsunami", [0.0, 0.1, 1.0, 3.0, _INF], ["dry", "low", "medium", "high"], unit="m",
    affected=[False, False, True, True], displacement_rates=[0.0, 0.0, 1.0, 1.0],
    colours=["#1a9850", "#fee08b", "#fc8d59", "#d73027"],
    description="Tsunami inundation depth classes (InaSAFE tsunami_hazard_classes).",
)  # fmt: skip
#: InaSAFE "Generic classes": low [0, 2] not affected; medium (2, 3] and high (3, 4] affected, 100 %.
GENERIC = HazardClassification.from_thresholds(
    "generic", [0.0, 2.0, 3.0, 4.0], ["low", "medium", "high"], unit="level",
    affected=[False, True, True], displacement_rates=[0.0, 1.0, 1.0],
    colours=["#fee08b", "#fc8d59", "#d73027"],
    description="Generic hazard levels (InaSAFE generic_hazard_classes).",
)  # fmt: skip


@dataclass(frozen=True)
class ClassifiedZones:
    """Hazard polygons with a ``hazard_class`` column, and what could not be classed.

    ``zones`` keeps every cleaned input row (index kept); rows whose value is not in the value
    map have a missing ``hazard_class`` (``None``/NA) and are listed in ``unmapped`` (raw value -> count), never
    dropped silently. Exposure functions ignore those rows.
    """

    zones: gpd.GeoDataFrame
    classification: HazardClassification
    unmapped: Mapping[str, int]
    geometry: GeometryReport

    @property
    def classified(self) -> gpd.GeoDataFrame:
        """Only the rows that got a class."""
        return self.zones[self.zones["hazard_class"].notna()]


def classify_hazard_polygons(
    gdf: gpd.GeoDataFrame,
    *,
    field: str,
    classification: HazardClassification,
    value_map: Mapping[str, str] | None = None,
    case_sensitive: bool = False,
) -> ClassifiedZones:
    """Give each hazard polygon a class from the values of ``field``.

    ``value_map`` maps raw values (as text, e.g. ``"YES"``) to class names (``"wet"``); without
    it the field's values must already be class names. Matching ignores case and surrounding
    blanks unless ``case_sensitive``. Invalid polygons (bow-ties) are repaired with
    ``make_valid``; null/empty ones dropped and counted in ``geometry``. Any CRS (kept).
    """
    require_crs(gdf, name="hazard")
    if field not in gdf.columns:
        raise InputError(f"hazard layer has no field {field!r}; fields are {list(gdf.columns.drop('geometry'))}")
    lookup = _value_lookup(classification, value_map, case_sensitive=case_sensitive)
    cleaned, report = clean_geometries(gdf, layer="hazard", family="polygon")
    raw = cleaned[field]
    keys = raw.astype("string").str.strip()
    if not case_sensitive:
        keys = keys.str.lower()
    names = keys.map(lookup)
    missing = names.isna()
    unmapped = raw[missing].astype("string").fillna("<null>").value_counts()
    if missing.any():
        log.warning(
            "hazard field %r: %d polygons have values with no class (%s); they are left unclassed",
            field, int(missing.sum()), dict(unmapped),
        )  # fmt: skip
    zones = cleaned.copy()
    zones["hazard_class"] = names.astype(object).where(~missing, None)
    positions = {n: i for i, n in enumerate(classification.names)}
    zones["hazard_level"] = names.map(positions).fillna(NOT_CLASSED).astype(np.int16).to_numpy()
    counts = MappingProxyType({str(k): int(v) for k, v in unmapped.items()})
    return ClassifiedZones(zones=zones, classification=classification, unmapped=counts, geometry=report)


def _value_lookup(
    classification: HazardClassification, value_map: Mapping[str, str] | None, *, case_sensitive: bool
) -> dict[str, str]:
    pairs = {n: n for n in classification.names} if value_map is None else dict(value_map)
    bad = sorted({v for v in pairs.values() if v not in classification.names})
    if bad:
        raise InputError(
            f"value_map points to {bad}, which are not classes of {classification.name!r}; "
            f"use one of {list(classification.names)}"
        )
    lookup: dict[str, str] = {}
    for raw, name in pairs.items():
        key = str(raw).strip() if case_sensitive else str(raw).strip().lower()
        if lookup.get(key, name) != name:
            raise InputError(f"value_map sends {raw!r} to two classes once case is ignored; pass case_sensitive=True")
        lookup[key] = name
    return lookup


@dataclass(frozen=True)
class HazardGrid:
    """Class indices of a raster window (int16, -1 = not classed) with its grid and CRS."""

    levels: np.ndarray
    transform: Affine
    crs: CRS
    classification: HazardClassification


def raster_levels(
    values: np.ndarray,
    *,
    classification: HazardClassification,
    nodata: float | None,
    code_map: Mapping[int, str] | None = None,
) -> np.ndarray:
    """Class indices of raster values: thresholds for continuous rasters, ``code_map`` for classified ones.

    ``code_map`` maps integer cell codes to class names (``{1: "low", 2: "medium", 3: "high"}``);
    codes not in it (and nodata) become -1.
    """
    if code_map is None:
        return classification.classify(values, nodata=nodata)
    codes = np.fromiter((int(k) for k in code_map), dtype=np.int64, count=len(code_map))
    targets = np.array([classification.index(v) for v in code_map.values()], dtype=np.int16)
    order = np.argsort(codes)
    codes, targets = codes[order], targets[order]
    arr = np.asarray(values)
    whole = np.isfinite(arr) & (np.round(arr) == arr)
    if nodata is not None and not math.isnan(nodata):
        whole &= arr != nodata
    as_int = np.where(whole, arr, codes[0]).astype(np.int64)
    pos = np.clip(np.searchsorted(codes, as_int), 0, len(codes) - 1)
    hit = whole & (codes[pos] == as_int)
    return np.where(hit, targets[pos], NOT_CLASSED).astype(np.int16)


def open_hazard_raster(path: str | Path) -> rasterio.io.DatasetReader:
    """Open a raster file, turning missing files and missing CRS into civicmap errors."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"raster {str(p)!r} does not exist")
    ds = rasterio.open(p)
    if ds.crs is None:
        ds.close()
        raise CRSError(f"raster {str(p)!r} has no CRS; add one (e.g. gdal_edit.py -a_srs EPSG:4326 {p.name})")
    return ds


def classify_hazard_raster(
    path: str | Path,
    *,
    classification: HazardClassification,
    code_map: Mapping[int, str] | None = None,
    band: int = 1,
    window: Window | None = None,
) -> HazardGrid:
    """Read one band (or a window of it) and classify every cell. Grid and CRS are the raster's own."""
    with open_hazard_raster(path) as ds:
        win = window if window is not None else Window(0, 0, ds.width, ds.height)
        values = ds.read(band, window=win)
        levels = raster_levels(values, classification=classification, nodata=ds.nodata, code_map=code_map)
        return HazardGrid(levels, ds.window_transform(win), CRS.from_wkt(ds.crs.to_wkt()), classification)


def hazard_grid_polygons(grid: HazardGrid) -> gpd.GeoDataFrame:
    """Polygons of equal class (``rasterio.features.shapes``), in the grid's CRS, with ``hazard_class``.

    Cells that are not classed are left out. Columns: ``hazard_class``, ``hazard_level``.
    """
    mask = grid.levels >= 0
    pairs = list(rasterio.features.shapes(grid.levels, mask=mask, transform=grid.transform, connectivity=4))
    geoms = np.array([shapely.geometry.shape(g) for g, _ in pairs], dtype=object)
    levels = np.array([int(v) for _, v in pairs], dtype=np.int16)
    names = np.array(grid.classification.names, dtype=object)
    frame = pd.DataFrame({"hazard_class": names[levels] if len(levels) else [], "hazard_level": levels})
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=grid.crs), crs=grid.crs)
