"""Write a :class:`~civicmap.layers.transit.GTFSFeed` as a GTFS zip: files at the root, UTF-8 without BOM, LF."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

from civicmap.errors import InputError
from civicmap.layers.transit._feed import GTFSFeed
from civicmap.layers.transit.gtfs_check import check_tables

__all__ = ["write_gtfs"]

log = logging.getLogger(__name__)

_ORDER = (
    "agency",
    "stops",
    "routes",
    "trips",
    "stop_times",
    "calendar",
    "calendar_dates",
    "frequencies",
    "shapes",
    "feed_info",
)


def write_gtfs(feed: GTFSFeed, path: str | Path, *, check: bool = True) -> Path:
    r"""Write ``feed`` to the zip ``path`` (created or replaced) and return the path.

    Every table becomes ``<name>.txt`` at the zip root, comma-separated, UTF-8 without BOM,
    ``\\n`` line endings, no index; members get a fixed timestamp so equal feeds give equal
    bytes. With ``check`` (default) the feed is first checked with
    :func:`~civicmap.layers.transit.check_tables` and :class:`InputError` lists the errors
    found (warnings are logged), so a written feed always passes the checker.
    """
    path = Path(path)
    if check:
        problems = check_tables(feed)
        errors = [p for p in problems if p.severity == "error"]
        for problem in problems:
            if problem.severity == "warning":
                log.warning("GTFS feed written with a warning: %s", problem.message)
        if errors:
            raise InputError(
                f"GTFS feed not written to {path}: {len(errors)} error(s): " + "; ".join(p.message for p in errors)
            )
    names = [n for n in _ORDER if n in feed.tables] + sorted(set(feed.tables) - set(_ORDER))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            text = feed.tables[name].to_csv(index=False, lineterminator="\n")
            info = zipfile.ZipInfo(f"{name}.txt", date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text.encode("utf-8"))
    tmp.replace(path)
    log.info("wrote GTFS %s: %s", path, feed.counts())
    return path
