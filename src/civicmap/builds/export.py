"""Export a workspace's layers as MBTiles pyramids for offline maps in the field.

One file per tile format, in ``out``:

* ``<project>_vector.mbtiles`` (``pbf``): every chosen vector layer in one gzip-compressed MVT per
  tile, one MVT layer per workspace layer (as ``/tiles/a,b/{z}/{x}/{y}.mvt`` serves them);
* ``<raster>.mbtiles`` (``png``): one file per chosen raster layer, cut from its web COG
  (EPSG:3857) when the build wrote one, styled as the map service styles it.

Tiles cover the workspace area (its lon/lat bbox, EPSG:4326) at zooms ``minzoom..maxzoom`` of the
EPSG:3857 XYZ grid; empty tiles are left out. Private layers and private fields are never
exported. The work is bounded: more than ``max_tiles`` tile renders is refused unless ``force``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import rasterio
import rasterio.io
from tqdm.auto import tqdm

from civicmap.errors import InputError, NotFoundError
from civicmap.store import LayerInfo
from civicmap.tiles.grid import tiles_for_bbox
from civicmap.tiles.mbtiles import gzip_tile, write_mbtiles
from civicmap.tiles.raster import TileStyle, render_tile
from civicmap.tiles.styles import raster_style
from civicmap.tiles.vector import MVTSource, encode_mvt
from civicmap.types import BBox, TileXYZ

if TYPE_CHECKING:
    from civicmap.workspace import Workspace

__all__ = ["MAX_EXPORT_TILES", "ExportedFile", "export_tiles"]

log = logging.getLogger(__name__)

#: Most tile renders :func:`export_tiles` does without ``force=True`` (z12..z16 of a 20 km city ~ 30,000).
MAX_EXPORT_TILES = 200_000


@dataclass(frozen=True)
class ExportedFile:
    """One MBTiles file written: where, which layers, its format and how many (non-empty) tiles."""

    path: Path
    layers: tuple[str, ...]
    format: str
    tiles: int


def _exportable(info: LayerInfo) -> bool:
    return info.kind in ("vector", "raster") and info.meta.get("public", True) is not False


def _choose(infos: dict[str, LayerInfo], layers: Sequence[str] | None) -> list[LayerInfo]:
    if layers is None:
        return [i for i in infos.values() if _exportable(i)]
    missing = [n for n in layers if n not in infos]
    private = [n for n in layers if n in infos and not _exportable(infos[n])]
    problems = [f"no layers {missing} in the workspace"] * bool(missing)
    problems += [f"layers {private} are private or not vector/raster layers, and are never exported"] * bool(private)
    if problems:
        raise NotFoundError("; ".join(problems) + f"; exportable layers: {sorted(_names(infos))}")
    return [infos[n] for n in dict.fromkeys(layers)]


def _names(infos: dict[str, LayerInfo]) -> list[str]:
    return [n for n, i in infos.items() if _exportable(i)]


def _check_zooms(minzoom: int, maxzoom: int) -> None:
    ok = all(isinstance(z, int) and not isinstance(z, bool) for z in (minzoom, maxzoom))
    if not ok or not 0 <= minzoom <= maxzoom <= 24:
        raise InputError(f"zooms {minzoom!r}..{maxzoom!r} must be integers with 0 <= minzoom <= maxzoom <= 24")


def _count_guard(bbox: BBox, zooms: range, files: int, *, max_tiles: int, force: bool) -> int:
    """Tiles per file (counted up to the limit only); InputError when files x tiles exceeds ``max_tiles``."""
    limit = max_tiles // max(files, 1) + 1
    count = sum(1 for _ in islice(tiles_for_bbox(bbox, zooms), limit))
    if count * files > max_tiles and not force:
        raise InputError(
            f"exporting {files} file(s) at zooms {zooms.start}..{zooms.stop - 1} "
            f"over the bbox {tuple(round(v, 5) for v in bbox)} "
            f"needs more than {max_tiles:,} tiles; lower maxzoom, choose fewer layers, or pass force=True (--force)"
        )
    return count if count < limit else sum(1 for _ in tiles_for_bbox(bbox, zooms))


def _vector_source(workspace: Workspace, info: LayerInfo) -> MVTSource:
    return MVTSource(info.public_part(workspace.store.read_layer(info.name)), name=info.name)


def _metadata(workspace: Workspace, infos: list[LayerInfo], fmt: str, zooms: range) -> dict[str, str]:
    w, s, e, n = workspace.bbox
    licences = sorted({str(i.provenance.get("licence")) for i in infos if i.provenance.get("licence")})
    return {
        "name": f"{workspace.name}: {', '.join(i.name for i in infos)}",
        "format": fmt,
        "bounds": f"{w:.6f},{s:.6f},{e:.6f},{n:.6f}",
        "center": f"{(w + e) / 2:.6f},{(s + n) / 2:.6f},{zooms.start}",
        "minzoom": str(zooms.start),
        "maxzoom": str(zooms.stop - 1),
        "attribution": "; ".join(licences) or workspace.name,
        "description": f"civicmap export of {workspace.name} (EPSG:3857 XYZ tiles, TMS rows)",
        "type": "overlay",
        "version": str(max(i.version for i in infos)),
    }


def _vector_tiles(
    sources: dict[str, MVTSource], tiles: Iterator[TileXYZ], bar: tqdm
) -> Iterator[tuple[TileXYZ, bytes]]:
    for tile in tiles:
        data = encode_mvt(sources, tile)
        bar.update()
        if data:
            yield tile, gzip_tile(data)


def _raster_tiles(
    ds: rasterio.io.DatasetReader, style: TileStyle, tiles: Iterator[TileXYZ], bar: tqdm
) -> Iterator[tuple[TileXYZ, bytes]]:
    for tile in tiles:
        data = render_tile(ds, tile, style=style, format="png")
        bar.update(1)
        if data:
            yield tile, data


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "civicmap"


def export_tiles(
    workspace: Workspace,
    out: str | Path,
    *,
    layers: Sequence[str] | None = None,
    minzoom: int = 12,
    maxzoom: int = 16,
    max_tiles: int = MAX_EXPORT_TILES,
    force: bool = False,
    progress: bool = True,
) -> list[ExportedFile]:
    """Write the workspace's ``layers`` (default: every public vector and raster layer) as MBTiles in ``out``.

    Vector layers share one ``pbf`` file, ``<project>_vector.mbtiles``; each raster layer gets its
    own ``png`` file, ``<layer>.mbtiles`` (see the module docstring). Tiles are the EPSG:3857 XYZ
    tiles over the workspace bbox (degrees) at zooms ``minzoom..maxzoom``; empty ones are skipped.
    Raises :class:`NotFoundError` for unknown or private layers and :class:`InputError` for bad
    zooms or more than ``max_tiles`` tile renders in all (unless ``force``). Existing files are
    replaced atomically.
    """
    _check_zooms(minzoom, maxzoom)
    chosen = _choose({i.name: i for i in workspace.store.layers()}, layers)
    vectors = [i for i in chosen if i.kind == "vector"]
    rasters = [i for i in chosen if i.kind == "raster"]
    if not chosen:
        raise NotFoundError(f"workspace {workspace.name!r} has no public layers to export; run `civicmap build` first")
    zooms = range(minzoom, maxzoom + 1)
    per_file = _count_guard(workspace.bbox, zooms, bool(vectors) + len(rasters), max_tiles=max_tiles, force=force)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with tqdm(
        total=per_file * (bool(vectors) + len(rasters)), desc="export tiles", unit="tile", disable=not progress
    ) as bar:
        if vectors:
            written.append(_export_vectors(workspace, vectors, folder, zooms, bar))
        written += [_export_raster(workspace, info, folder, zooms, bar) for info in rasters]
    return written


def _export_vectors(
    workspace: Workspace, infos: list[LayerInfo], folder: Path, zooms: range, bar: tqdm
) -> ExportedFile:
    sources = {i.name: _vector_source(workspace, i) for i in infos}
    meta = _metadata(workspace, infos, "pbf", zooms)
    vector_layers = [
        {"id": name, "fields": source.fields, "minzoom": zooms.start, "maxzoom": zooms.stop - 1}
        for name, source in sources.items()
    ]
    meta["json"] = json.dumps({"vector_layers": vector_layers})
    path = folder / f"{_file_name(workspace.name)}_vector.mbtiles"
    count = write_mbtiles(path, _vector_tiles(sources, tiles_for_bbox(workspace.bbox, zooms), bar), metadata=meta)
    log.info("exported %d vector tiles of %s to %s", count, ", ".join(sources), path)
    return ExportedFile(path, tuple(sources), "pbf", count)


def _export_raster(workspace: Workspace, info: LayerInfo, folder: Path, zooms: range, bar: tqdm) -> ExportedFile:
    """Tiles styled exactly as the service styles them (style from the analysis COG, pixels from the tile COG)."""
    assert info.path is not None
    with rasterio.open(info.path) as analysis:
        style, _ = raster_style(str(info.meta.get("raster_kind", "other")), analysis)
    path = folder / f"{info.name}.mbtiles"
    with rasterio.open(info.tile_path) as ds:
        tiles = _raster_tiles(ds, style, tiles_for_bbox(workspace.bbox, zooms), bar)
        count = write_mbtiles(path, tiles, metadata=_metadata(workspace, [info], "png", zooms))
    log.info("exported %d png tiles of %s to %s", count, info.name, path)
    return ExportedFile(path, (info.name,), "png", count)
