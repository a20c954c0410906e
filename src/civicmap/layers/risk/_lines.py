"""Cutting lines (roads) and flattening overlapping zones; private to :mod:`civicmap.layers.risk.exposure`.

All geometry here is planar: callers pass geometries in a metric CRS so lengths are metres.
"""

from __future__ import annotations

import numpy as np
import shapely

__all__ = ["cut_lines", "flatten_zones", "linear_part"]

_POLYGONAL = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)
_LINEAR = (shapely.GeometryType.LINESTRING, shapely.GeometryType.MULTILINESTRING)


def flatten_zones(geoms: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint polygons covering the zones, each place taking the highest level of the zones over it.

    Loops over the (few) distinct levels, never over features. Returns (polygons, levels).
    """
    parts: list[np.ndarray] = []
    part_levels: list[np.ndarray] = []
    covered = shapely.Polygon()
    for level in np.unique(levels)[::-1]:
        region = shapely.difference(shapely.union_all(geoms[levels == level]), covered)
        covered = shapely.union(covered, region)
        pieces = shapely.get_parts(region)
        pieces = pieces[np.isin(shapely.get_type_id(pieces), _POLYGONAL) & (shapely.area(pieces) > 0)]
        parts.append(pieces)
        part_levels.append(np.full(len(pieces), level, dtype=np.int16))
    if not parts:
        return np.array([], dtype=object), np.array([], dtype=np.int16)
    return np.concatenate(parts), np.concatenate(part_levels)


def linear_part(geoms: np.ndarray) -> np.ndarray:
    """Only the line parts of each geometry (points from tangent contacts dropped); empty if none."""
    parts, owner = shapely.get_parts(geoms, return_index=True)
    lines = np.isin(shapely.get_type_id(parts), _LINEAR)
    out = np.full(len(geoms), None, dtype=object)
    if lines.any():
        flat, flat_owner = shapely.get_parts(parts[lines], return_index=True)
        merged = shapely.multilinestrings(flat, indices=owner[lines][flat_owner])
        has = np.unique(owner[lines])
        out[has] = merged
    out[shapely.is_missing(out)] = shapely.MultiLineString()
    return out


def cut_lines(lines: np.ndarray, zones: np.ndarray, *, keep_outside: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut lines by disjoint zones: (line index, zone index or -1 outside, piece geometry).

    Pieces of zero length are dropped. With ``keep_outside`` the parts of each line outside
    every zone come back with zone index -1, so the piece lengths add up to the line length.
    """
    tree = shapely.STRtree(zones)
    li, zi = tree.query(lines, predicate="intersects")
    pieces = linear_part(shapely.intersection(lines[li], zones[zi]))
    keep = shapely.length(pieces) > 0
    line_idx, zone_idx, geoms = [li[keep]], [zi[keep]], [pieces[keep]]
    if keep_outside:
        rest = lines.copy()
        hit = np.unique(li)
        if hit.size:
            rest[hit] = shapely.difference(lines[hit], shapely.union_all(zones))
        rest = linear_part(rest)
        out = shapely.length(rest) > 0
        line_idx.append(np.flatnonzero(out))
        zone_idx.append(np.full(int(out.sum()), -1, dtype=np.int64))
        geoms.append(rest[out])
    return np.concatenate(line_idx), np.concatenate(zone_idx).astype(np.int64), np.concatenate(geoms)
