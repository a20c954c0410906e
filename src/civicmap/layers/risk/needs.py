"""Minimum needs of displaced people, from profiles held as data (JSON).

Shipped profiles (``civicmap/layers/risk/profiles/*.json``, each with a ``source`` key):
``"BNPB"`` (Perka BNPB 7/2008, per person per week: rice 2.8 kg, drinking water 17.5 l, clean
water 67 l, family kit 0.2; toilets 0.05 once) and ``"SPHERE"`` (Sphere Handbook 2018
indicators: 15 l water and 2,100 kcal per person per day, 250 g soap per month, one toilet per
20 people). A profile file of your own has the same shape::

    {"name": "...", "source": "...", "description": "...",
     "needs": [{"key": "rice", "name": "Rice", "amount": 2.8, "unit": "kg", "frequency": "weekly"}]}

Rounding rule (InaSAFE's: "rounded up to the nearest integer in order to avoid representing
human lives as fractions"): the displaced count is rounded up to whole people, then each
quantity ``people x amount`` is rounded up to a whole unit, after dropping float noise below
1e-6 (so 1000 x 2.8 kg is 2800 kg, not 2801).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from civicmap.errors import InputError
from civicmap.layers.risk._profiles import read_profile_json

__all__ = ["FREQUENCIES", "PROFILES", "Need", "NeedsProfile", "minimum_needs", "read_needs_profile"]

#: Shipped profile names (case-insensitive) and their data files.
PROFILES = {"BNPB": "bnpb.json", "SPHERE": "sphere.json"}
#: Allowed values of a need's ``frequency``.
FREQUENCIES = frozenset({"once", "daily", "weekly", "monthly"})
_FIELDS = ("key", "name", "amount", "unit", "frequency")


@dataclass(frozen=True)
class Need:
    """One item: ``amount`` of ``unit`` per displaced person, at ``frequency``."""

    key: str
    name: str
    amount: float
    unit: str
    frequency: str


@dataclass(frozen=True)
class NeedsProfile:
    """A named list of needs with the document it comes from."""

    name: str
    source: str
    needs: tuple[Need, ...]
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (same shape as the profile files)."""
        return {
            "name": self.name,
            "source": self.source,
            "description": self.description,
            "needs": [{f: getattr(n, f) for f in _FIELDS} for n in self.needs],
        }


def read_needs_profile(name_or_path: str | Path) -> NeedsProfile:
    """Load a shipped profile by name (``"BNPB"``, ``"SPHERE"``) or a profile JSON file by path."""
    data, where = read_profile_json(name_or_path, PROFILES, "needs profile")
    return _profile(data, where)


def _profile(data: Any, where: str) -> NeedsProfile:
    if not isinstance(data, dict) or not isinstance(data.get("needs"), list):
        raise InputError(f"{where}: expected an object with a 'needs' list")
    problems, needs = [], []
    for i, item in enumerate(data["needs"]):
        missing = [f for f in _FIELDS if not isinstance(item, dict) or f not in item]
        if missing:
            problems.append(f"need {i} lacks {missing}")
            continue
        if not isinstance(item["amount"], int | float) or item["amount"] < 0:
            problems.append(f"need {item['key']!r}: amount {item['amount']!r} must be a number >= 0")
        if item["frequency"] not in FREQUENCIES:
            problems.append(f"need {item['key']!r}: frequency {item['frequency']!r} not in {sorted(FREQUENCIES)}")
        needs.append(Need(*(item[f] for f in _FIELDS)))
    if not data.get("source"):
        problems.append("a 'source' (the document the figures come from) is required")
    if problems:
        raise InputError(f"{where}: " + "; ".join(problems))
    return NeedsProfile(
        str(data.get("name", where)), str(data["source"]), tuple(needs), str(data.get("description", ""))
    )


def minimum_needs(displaced: float, profile: NeedsProfile | str = "BNPB") -> dict[str, tuple[int, str, str]]:
    """Quantities for ``displaced`` people: ``{key: (quantity, unit, frequency)}``, rounded up (see module)."""
    if not isinstance(displaced, int | float) or math.isnan(displaced) or displaced < 0:
        raise InputError(f"displaced must be a number of people >= 0, got {displaced!r}")
    prof = profile if isinstance(profile, NeedsProfile) else read_needs_profile(profile)
    people = math.ceil(round(displaced, 6))
    return {n.key: (math.ceil(round(people * n.amount, 6)), n.unit, n.frequency) for n in prof.needs}
