"""The in-memory GTFS feed shared by the transit modules, plus GTFS time and table helpers.

A :class:`GTFSFeed` is a mapping of GTFS file stems (``"stops"``, ``"trips"`` ...) to
``pandas.DataFrame`` tables whose cells are strings, exactly as the files hold them
(stop_lat/stop_lon are lat/lon degrees, EPSG:4326; times are ``H:MM:SS`` and may exceed 24:00:00).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

from civicmap.errors import InputError

__all__ = [
    "REQUIRED_COLUMNS",
    "GTFSFeed",
    "ServiceOptions",
    "agency_table",
    "format_gtfs_time",
    "frequencies_table",
    "parse_duration_s",
    "parse_gtfs_time",
    "service_tables",
]

#: Columns a file must have (GTFS Schedule reference; conditionally required ones left out).
REQUIRED_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "agency": ("agency_name", "agency_url", "agency_timezone"),
        "stops": ("stop_id", "stop_lat", "stop_lon"),
        "routes": ("route_id", "route_type"),
        "trips": ("route_id", "service_id", "trip_id"),
        "stop_times": ("trip_id", "stop_id", "stop_sequence"),
        "calendar": (
            "service_id",
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
            "start_date",
            "end_date",
        ),
        "calendar_dates": ("service_id", "date", "exception_type"),
        "shapes": ("shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence"),
        "frequencies": ("trip_id", "start_time", "end_time", "headway_secs"),
        "feed_info": ("feed_publisher_name", "feed_publisher_url", "feed_lang"),
    }
)

_TIME = re.compile(r"^\s*(\d{1,3}):([0-5]\d):([0-5]\d)\s*$")
_ISO_DURATION = re.compile(r"^P?T?(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$", re.IGNORECASE)


@dataclass(frozen=True, eq=False)
class GTFSFeed:
    """A GTFS feed as string tables keyed by file stem; ``problems`` says what was left out and why."""

    tables: Mapping[str, pd.DataFrame]
    problems: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    def __contains__(self, name: object) -> bool:
        return name in self.tables

    def counts(self) -> dict[str, int]:
        """Row count of every table."""
        return {name: len(table) for name, table in self.tables.items()}


@dataclass(frozen=True)
class ServiceOptions:
    """Agency, calendar and feed_info settings for generated feeds.

    The calendar runs every day from ``start_date`` to ``end_date`` (default: 1 January of the
    current year for one year). ``timezone`` is an IANA name used for ``agency_timezone``.
    """

    agency_name: str = "civicmap"
    agency_url: str = "https://www.openstreetmap.org/"
    timezone: str = "UTC"
    lang: str = "en"
    start_date: dt.date = field(default_factory=lambda: dt.date(dt.date.today().year, 1, 1))
    end_date: dt.date | None = None
    service_id: str = "daily"


def parse_gtfs_time(values: pd.Series) -> pd.Series:
    """``H:MM:SS`` strings (hours may exceed 23) to float seconds after midnight; NaN where unparseable/empty."""
    parts = values.astype("string").str.extract(_TIME)
    numbers = parts.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    return pd.Series(numbers[:, 0] * 3600 + numbers[:, 1] * 60 + numbers[:, 2], index=values.index)


def format_gtfs_time(seconds: np.ndarray | pd.Series) -> np.ndarray:
    """Seconds after midnight to ``HH:MM:SS`` strings (hours may exceed 24)."""
    secs = np.rint(np.asarray(seconds, dtype=float)).astype(np.int64)
    hours, rest = np.divmod(secs, 3600)
    minutes, sec = np.divmod(rest, 60)
    return np.array([f"{h:02d}:{m:02d}:{s:02d}" for h, m, s in zip(hours, minutes, sec, strict=True)], dtype=object)


def parse_duration_s(text: str | None) -> float | None:
    """An OSM ``interval``/``duration`` value in seconds: minutes (``"15"``), ``HH:MM``, ``HH:MM:SS`` or ISO ``PT10M``.

    Returns None for an empty value; raises :class:`InputError` naming the value otherwise.
    """
    if text is None or (isinstance(text, float) and np.isnan(text)) or not str(text).strip():
        return None
    value = str(text).strip().split(";")[0].strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value) * 60
    if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", value):
        parts = [int(p) for p in value.split(":")] + [0]
        return parts[0] * 3600.0 + parts[1] * 60 + parts[2]
    match = _ISO_DURATION.match(value)
    if match and value.upper().startswith("P") and any(match.groups()):
        hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        return hours * 3600 + minutes * 60 + secs
    raise InputError(f"cannot read duration {text!r}; expected minutes ('15'), 'HH:MM', 'HH:MM:SS' or ISO 'PT10M'")


def service_tables(options: ServiceOptions, *, publisher: str) -> dict[str, pd.DataFrame]:
    """``agency``, ``calendar`` (every day) and ``feed_info`` tables for a generated feed."""
    end = options.end_date or options.start_date.replace(year=options.start_date.year + 1) - dt.timedelta(days=1)
    if end < options.start_date:
        raise InputError(f"service end_date {end} is before start_date {options.start_date}; swap them")
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    calendar = {"service_id": options.service_id, **dict.fromkeys(days, "1")}
    calendar |= {"start_date": options.start_date.strftime("%Y%m%d"), "end_date": end.strftime("%Y%m%d")}
    return {
        "calendar": pd.DataFrame([calendar]),
        "feed_info": pd.DataFrame(
            [
                {
                    "feed_publisher_name": publisher,
                    "feed_publisher_url": options.agency_url,
                    "feed_lang": options.lang,
                    "feed_start_date": calendar["start_date"],
                    "feed_end_date": calendar["end_date"],
                }
            ]
        ),
    }


def agency_table(names: pd.Series, options: ServiceOptions) -> tuple[pd.DataFrame, pd.Series]:
    """One agency per distinct name (empty names get ``options.agency_name``); returns (agency, agency_id per row)."""
    filled = names.fillna("").astype(str).str.strip().replace("", options.agency_name)
    unique = pd.Index(sorted(filled.unique()))
    ids = pd.Series([f"A{i + 1}" for i in range(len(unique))], index=unique)
    agency = pd.DataFrame(
        {
            "agency_id": ids.to_numpy(),
            "agency_name": unique.to_numpy(),
            "agency_url": options.agency_url,
            "agency_timezone": options.timezone,
            "agency_lang": options.lang,
        }
    )
    return agency, filled.map(ids)


def frequencies_table(fr: pd.DataFrame) -> pd.DataFrame:
    """frequencies.txt from ``trip_id``, ``start``/``end`` (seconds after midnight) and ``headway`` (s).

    ``exact_times=0``: frequency-based service, vehicles leave when full rather than on a timetable.
    """
    return pd.DataFrame(
        {
            "trip_id": fr["trip_id"],
            "start_time": format_gtfs_time(fr["start"]),
            "end_time": format_gtfs_time(fr["end"]),
            "headway_secs": fr["headway"].round().astype(int).astype(str),
            "exact_times": "0",
        }
    )
