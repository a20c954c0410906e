"""MBTiles 1.3 files: a tile pyramid in one SQLite file, for offline maps in the field.

Spec: https://github.com/mapbox/mbtiles-spec/blob/master/1.3/spec.md. The file holds

* ``metadata(name TEXT, value TEXT)``: ``name`` and ``format`` (``pbf``, ``png``, ``jpg``,
  ``webp``) are required; civicmap also writes ``bounds`` ("west,south,east,north" in degrees,
  EPSG:4326), ``center`` ("lon,lat,zoom"), ``minzoom``, ``maxzoom``, ``attribution``,
  ``description``, ``type`` (overlay/baselayer), ``version`` and, for ``pbf``, ``json`` (a JSON
  object with ``vector_layers``: id, fields, minzoom, maxzoom), as MapLibre and QGIS read them.
* ``tiles(zoom_level, tile_column, tile_row, tile_data)`` with a UNIQUE index on the address.
  Rows count from the SOUTH (TMS): ``tile_row = 2**z - 1 - y`` for the XYZ tile ``(z, x, y)``
  that civicmap uses everywhere else (EPSG:3857 grid, rows from the north).

``tile_data`` is stored as given: vector tiles (``pbf``) must be gzip-compressed MVT, as MBTiles
readers expect (:func:`gzip_tile`). The file is written beside ``path`` and moved into place
when complete, so a reader never sees half a pyramid and a failed export leaves the old file.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from pathlib import Path

from civicmap.errors import InputError
from civicmap.tiles.grid import MAX_ZOOM, validate_tile
from civicmap.types import TileXYZ

__all__ = [
    "MBTILES_FORMATS",
    "REQUIRED_METADATA",
    "gzip_tile",
    "tms_row",
    "write_mbtiles",
]

log = logging.getLogger(__name__)

#: Values of the ``format`` metadata the spec names (pbf = gzip-compressed Mapbox Vector Tiles).
MBTILES_FORMATS = ("pbf", "png", "jpg", "webp")
#: Metadata rows a valid MBTiles 1.3 file must have.
REQUIRED_METADATA = ("name", "format")
_BATCH = 1000
_SCHEMA = (
    "CREATE TABLE metadata (name TEXT, value TEXT)",
    "CREATE UNIQUE INDEX name ON metadata (name)",
    "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)",
    "CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row)",
)


def tms_row(tile: TileXYZ) -> int:
    """The MBTiles (TMS) row of an XYZ tile: ``2**z - 1 - y`` (rows counted from the south)."""
    return (1 << tile.z) - 1 - tile.y


def gzip_tile(data: bytes) -> bytes:
    """Gzip an MVT for the ``tiles`` table of a ``pbf`` MBTiles file (fixed mtime: same bytes each run)."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def _check_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    problems = [f"metadata {k!r} is missing" for k in REQUIRED_METADATA if not metadata.get(k)]
    fmt = metadata.get("format")
    if fmt and fmt not in MBTILES_FORMATS:
        problems.append(f"format {fmt!r} is not one of {', '.join(MBTILES_FORMATS)}")
    if fmt == "pbf":
        try:
            layers = json.loads(metadata.get("json") or "{}").get("vector_layers")
        except (ValueError, AttributeError):
            layers = None
        if not isinstance(layers, list):
            problems.append("format 'pbf' needs metadata 'json', a JSON object with a 'vector_layers' list")
    bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        problems.append(f"metadata names and values must be text; {bad!r} are not (use str() / json.dumps)")
    if problems:
        raise InputError("MBTiles: " + "; ".join(problems))
    return dict(metadata)


def _rows(tiles: Iterable[tuple[TileXYZ, bytes]]) -> Iterator[tuple[int, int, int, bytes]]:
    seen: set[tuple[int, int, int]] = set()
    for tile, data in tiles:
        t = validate_tile(*tile, maxzoom=MAX_ZOOM)
        if t in seen:
            raise InputError(f"tile {t.z}/{t.x}/{t.y} is given twice; pass each tile once")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InputError(f"tile {t.z}/{t.x}/{t.y}: data is {type(data).__name__}, expected bytes")
        seen.add(t)
        yield t.z, t.x, tms_row(t), bytes(data)


def _fill(con: sqlite3.Connection, tiles: Iterable[tuple[TileXYZ, bytes]], metadata: dict[str, str]) -> int:
    for statement in _SCHEMA:
        con.execute(statement)
    con.executemany("INSERT INTO metadata (name, value) VALUES (?, ?)", sorted(metadata.items()))
    rows, count = _rows(tiles), 0
    while batch := list(islice(rows, _BATCH)):
        con.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)", batch)
        count += len(batch)
    return count


def write_mbtiles(
    path: str | os.PathLike[str], tiles: Iterable[tuple[TileXYZ, bytes]], *, metadata: Mapping[str, str]
) -> int:
    """Write ``tiles`` ((XYZ tile, bytes) pairs, streamed) and ``metadata`` to an MBTiles 1.3 file.

    Tiles are XYZ addresses of the EPSG:3857 grid (rows from the north); they are stored with
    TMS rows. ``metadata`` values are text (``bounds`` in degrees, EPSG:4326); ``name`` and
    ``format`` are required, and ``pbf`` needs ``json`` with ``vector_layers``. The bytes go in
    as given (gzip MVT yourself with :func:`gzip_tile`). An existing file at ``path`` is
    replaced atomically once the new one is complete. Returns the number of tiles written.
    Raises :class:`InputError` for bad metadata, a tile outside the grid or a tile given twice.
    """
    meta = _check_metadata(metadata)
    target = Path(path)
    if not target.parent.is_dir():
        raise InputError(f"folder {target.parent} does not exist; create it before writing {target.name}")
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o644)  # mkstemp makes the file private (0600); tile pyramids are shared
    try:
        con = sqlite3.connect(tmp)
        try:
            with con:
                count = _fill(con, tiles, meta)
        finally:
            con.close()
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("wrote %s: %d %s tiles", target, count, meta["format"])
    return count
