"""Bulk conversion of scanned OSM rows into GeoDataFrames (EPSG:4326, lon/lat degrees).

Every geometry is made by vectorised shapely calls over whole layers (``from_wkb``,
``linearrings``/``polygons`` with ``indices``, ``multilinestrings``); bad geometries are
repaired or dropped by :func:`civicmap.sources._clean.clean_geometries` and counted.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import compress

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from civicmap.sources._clean import GeometryReport, clean_geometries
from civicmap.sources._osm_scan import RelationIndex, Rows

__all__ = [
    "amenity_frame",
    "empty_frame",
    "layer_frame",
    "points_frame",
    "routes_frame",
    "stops_frame",
    "tag_table",
    "waterway_frame",
]

CRS = "EPSG:4326"
_OSM_TYPES = {"n": "node", "w": "way", "r": "relation"}
POINT_COLUMNS = ("name", "amenity", "shop", "tourism", "leisure", "office", "craft")


def empty_frame(columns: Sequence[str]) -> gpd.GeoDataFrame:
    """A typed empty layer: ``osm_id`` index and column, ``osm_type``, the tag columns, geometry."""
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in ("osm_id", "osm_type", *columns)})
    frame.index = pd.Index([], dtype=object, name="osm_id")
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([], crs=CRS, index=frame.index), crs=CRS)


def tag_table(
    tags: Sequence[Mapping[str, str | None]] | Sequence[tuple[str | None, ...]], columns: Sequence[str]
) -> np.ndarray:
    """Tag values as a 2-D object array (rows x ``columns``; None where absent), built in one go.

    Rows are value tuples in ``columns`` order, or dicts (then looked up by column name).
    """
    if tags and isinstance(tags[0], Mapping):
        tags = [tuple(map(row.get, columns)) for row in tags]  # type: ignore[union-attr]
    table = np.empty((len(tags), len(columns)), dtype=object)
    if len(tags) > 0:
        table[:] = tags
    return table


def _frame(
    ids: Sequence[str],
    tags: Sequence[Mapping[str, str | None]] | Sequence[tuple[str | None, ...]],
    columns: Sequence[str],
    geoms: np.ndarray,
) -> gpd.GeoDataFrame:
    if not len(ids):
        return empty_frame(columns)
    ids_arr = pd.Index(list(ids), dtype=object, name="osm_id")
    records = pd.DataFrame(tag_table(tags, columns), columns=list(columns), index=ids_arr, dtype=object)
    records.insert(0, "osm_type", [_OSM_TYPES[i[0]] for i in ids])
    records.insert(0, "osm_id", list(ids))
    return gpd.GeoDataFrame(records, geometry=gpd.GeoSeries(geoms, index=ids_arr, crs=CRS), crs=CRS)


def polygons_from_rows(rows: Rows) -> tuple[np.ndarray, int]:
    """Polygons for ``ring`` rows (closed ways), multipolygons for ``area`` rows.

    Returns the geometries (None where a ring has fewer than 4 positions, e.g. a closed
    way of two nodes) and the number of such too-short rings.
    """
    geoms = shapely.from_wkb(np.asarray(rows.wkb, dtype=object))
    ring = np.asarray(rows.shape) == "ring"
    if not ring.any():
        return geoms, 0
    lines = geoms[ring]
    count = shapely.get_num_coordinates(lines)
    usable = (count >= 4) | ((count == 3) & ~shapely.is_closed(lines))
    coords, owner = shapely.get_coordinates(lines, return_index=True)
    take = usable[owner]
    _, compact = np.unique(owner[take], return_inverse=True)
    polys = np.full(len(lines), None, dtype=object)
    if take.any():
        polys[usable] = shapely.polygons(shapely.linearrings(coords[take], indices=compact))
    geoms[ring] = polys
    return geoms, int((~usable).sum())


def layer_frame(
    rows: Rows, columns: Sequence[str], *, layer: str, family: str
) -> tuple[gpd.GeoDataFrame, GeometryReport, int]:
    """One layer as a cleaned GeoDataFrame, its geometry report and the count of too-short rings."""
    if family == "polygon":
        geoms, too_short = polygons_from_rows(rows)
    else:
        geoms, too_short = shapely.from_wkb(np.asarray(rows.wkb, dtype=object)), 0
    keep = ~shapely.is_missing(geoms)
    ids = list(compress(rows.ids, keep))
    tags = list(compress(rows.tags, keep))
    frame = _frame(ids, tags, columns, geoms[keep])
    cleaned, report = clean_geometries(frame, layer=layer, family=family)
    return cleaned, report, too_short


def split_rows(rows: Rows, shapes: set[str]) -> tuple[Rows, Rows]:
    """Rows whose shape is in ``shapes``, and the others (order kept)."""
    inside, outside = Rows(), Rows()
    for osm_id, wkb, shape, tags in zip(rows.ids, rows.wkb, rows.shape, rows.tags, strict=True):
        (inside if shape in shapes else outside).add(osm_id, wkb, shape, tags)
    return inside, outside


def _concat(frames: list[gpd.GeoDataFrame]) -> gpd.GeoDataFrame:
    frames = [f for f in frames if len(f)] or frames[:1]
    return gpd.GeoDataFrame(pd.concat(frames), geometry="geometry", crs=CRS)


def amenity_frame(rows: Rows, columns: Sequence[str]) -> tuple[gpd.GeoDataFrame, list[GeometryReport], int]:
    """Amenities as points: nodes as they are, areas by a point on their surface (always inside)."""
    point_rows, area_rows = split_rows(rows, {"point"})
    points, point_report, _ = layer_frame(point_rows, columns, layer="amenities (nodes)", family="point")
    areas, area_report, too_short = layer_frame(area_rows, columns, layer="amenities (areas)", family="polygon")
    points["geometry_source"] = "node"
    areas = areas.set_geometry(areas.geometry.representative_point())
    areas["geometry_source"] = "polygon"
    return _concat([points, areas]), [point_report, area_report], too_short


def waterway_frame(rows: Rows, columns: Sequence[str]) -> tuple[gpd.GeoDataFrame, list[GeometryReport], int]:
    """Waterway lines and water areas in one frame, told apart by ``geometry_kind`` ("line" / "area")."""
    line_rows, area_rows = split_rows(rows, {"line"})
    lines, line_report, _ = layer_frame(line_rows, columns, layer="waterways (lines)", family="line")
    areas, area_report, too_short = layer_frame(area_rows, columns, layer="waterways (areas)", family="polygon")
    lines["geometry_kind"] = "line"
    areas["geometry_kind"] = "area"
    return _concat([lines, areas]), [line_report, area_report], too_short


def points_frame(rows: Rows) -> gpd.GeoDataFrame:
    """Every tagged node: a few common tag columns plus ``tags``, all tags as a JSON object string."""
    geoms = shapely.from_wkb(np.asarray(rows.wkb, dtype=object))
    frame = _frame(rows.ids, rows.tags, POINT_COLUMNS, geoms)
    frame["tags"] = [json.dumps(t, ensure_ascii=False, sort_keys=True) for t in rows.tags]
    return frame


def stops_frame(rows: Rows, columns: Sequence[str], member_nodes: dict[int, tuple[float, float]]) -> gpd.GeoDataFrame:
    """Tagged stop nodes, plus untagged stop/platform members of route relations (``route_member_only``)."""
    tagged = _frame(rows.ids, rows.tags, columns, shapely.from_wkb(np.asarray(rows.wkb, dtype=object)))
    tagged["route_member_only"] = False
    known = set(rows.ids)
    extra = sorted(n for n in member_nodes if f"n{n}" not in known)
    if not extra:
        return tagged
    xy = np.asarray([member_nodes[n] for n in extra], dtype=float)
    ids = [f"n{n}" for n in extra]
    untagged = _frame(ids, [(None,) * len(columns)] * len(ids), columns, shapely.points(xy))
    untagged["route_member_only"] = True
    return gpd.GeoDataFrame(pd.concat([tagged, untagged]), geometry="geometry", crs=CRS)


def _route_members(members: list[tuple[str, int, str]]) -> tuple[list[str], list[str], list[int]]:
    stops = [f"{t}{ref}" for t, ref, role in members if role.startswith("stop")]
    platforms = [f"{t}{ref}" for t, ref, role in members if role.startswith("platform")]
    ways = [ref for t, ref, role in members if t == "w" and not role.startswith(("stop", "platform"))]
    return stops, platforms, ways


def routes_frame(
    relations: RelationIndex,
    member_wkb: dict[int, bytes],
    member_nodes: dict[int, tuple[float, float]],
    *,
    columns: Sequence[str],
    modes: frozenset[str],
) -> tuple[gpd.GeoDataFrame, Counter[str]]:
    """One row per route relation whose ``route`` is in ``modes``; geometry from member ways in order."""
    ids: list[str] = []
    tags: list[dict[str, str | None]] = []
    line_wkb: list[bytes] = []
    line_owner: list[int] = []
    problems: Counter[str] = Counter()
    for rel_id, rel_tags, members in relations.routes:
        if rel_tags.get("route") not in modes:
            continue
        stops, platforms, ways = _route_members(members)
        present = [w for w in ways if w in member_wkb]
        missing_nodes = sum(1 for t, ref, _ in members if t == "n" and ref not in member_nodes)
        row: dict[str, str | None] = dict(rel_tags)
        master = relations.route_master.get(rel_id)
        row["route_master"] = f"r{master}" if master is not None else None
        row["stop_ids"], row["platform_ids"] = json.dumps(stops), json.dumps(platforms)
        row["way_ids"] = json.dumps([f"w{w}" for w in ways])
        row["problems"] = _route_problems(len(ways) - len(present), missing_nodes, len(ways), problems)
        line_wkb += [member_wkb[w] for w in present]
        line_owner += [len(ids)] * len(present)
        ids.append(f"r{rel_id}")
        tags.append(row)
    geoms = np.full(len(ids), None, dtype=object)
    if line_wkb:
        owners = np.asarray(line_owner)
        present_rows, compact = np.unique(owners, return_inverse=True)
        lines = shapely.from_wkb(np.asarray(line_wkb, dtype=object))
        geoms[present_rows] = shapely.multilinestrings(lines, indices=compact)
    all_columns = (*columns, "route_master", "stop_ids", "platform_ids", "way_ids", "problems")
    return _frame(ids, tags, all_columns, geoms), problems


def _route_problems(missing_ways: int, missing_nodes: int, n_ways: int, problems: Counter[str]) -> str | None:
    parts = []
    if n_ways == 0:
        parts.append("no member ways")
        problems["routes_without_ways"] += 1
    if missing_ways:
        parts.append(f"{missing_ways} of {n_ways} member ways missing from the extract")
        problems["routes_with_missing_ways"] += 1
    if missing_nodes:
        parts.append(f"{missing_nodes} member nodes missing from the extract")
        problems["routes_with_missing_nodes"] += 1
    return "; ".join(parts) or None
