"""Named value types shared across civicmap (no behaviour beyond validation)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from civicmap.errors import InputError

__all__ = ["BBox", "Provenance", "RowError", "TileXYZ"]


class BBox(NamedTuple):
    """A bounding box ``(west, south, east, north)``, in the units of its CRS.

    For EPSG:4326 / OGC:CRS84 that is degrees of longitude and latitude (RFC 7946 §5).
    """

    west: float
    south: float
    east: float
    north: float

    @classmethod
    def parse(cls, values: Any, *, geographic: bool = True) -> BBox:
        """Build a BBox from four numbers, checking order and, if geographic, range.

        Raises :class:`InputError` naming every problem at once.
        """
        try:
            nums = [float(v) for v in values]
        except (TypeError, ValueError) as exc:
            raise InputError(f"bbox {values!r} is not four numbers (west, south, east, north)") from exc
        if len(nums) != 4:
            raise InputError(f"bbox {values!r} has {len(nums)} numbers; expected 4: west, south, east, north")
        w, s, e, n = nums
        problems = []
        if not all(math.isfinite(v) for v in nums):
            problems.append("every value must be finite")
        if w >= e:
            problems.append(f"west {w} must be less than east {e}")
        if s >= n:
            problems.append(f"south {s} must be less than north {n}")
        if geographic and not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
            problems.append("longitudes must lie in [-180, 180] and latitudes in [-90, 90] (is it lat/lon swapped?)")
        if problems:
            raise InputError(f"bbox {values!r}: " + "; ".join(problems))
        return cls(w, s, e, n)


class TileXYZ(NamedTuple):
    """An XYZ (slippy map) tile: zoom, column from the west, row from the north."""

    z: int
    x: int
    y: int


@dataclass(frozen=True)
class Provenance:
    """Where a layer came from: source path or URL, licence, and when it was read (UTC)."""

    source: str
    licence: str | None = None
    read_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {"source": self.source, "licence": self.licence, "read_at": self.read_at, "details": self.details}


@dataclass(frozen=True)
class RowError:
    """One problem with one input row: which row, which field, the value, what is wrong."""

    row: int | str
    field: str | None
    value: Any
    problem: str
    instance_id: str | None = None
    """The submission's instanceID, when the row has one (how moderators find it)."""

    def __str__(self) -> str:
        where = f"row {self.row}" + (f" ({self.instance_id})" if self.instance_id else "")
        where += f", field {self.field!r}" if self.field else ""
        return f"{where}: {self.problem} (value {self.value!r})"
