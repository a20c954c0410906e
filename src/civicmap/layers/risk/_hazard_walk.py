"""The walk to the nearest facility with a hazard's streets and facilities closed (engine of the evacuation layers).

:mod:`civicmap.layers.risk.evacuation` re-exports the public names (:class:`HazardCut`,
:func:`flooded_edges`, the defaults) and states the method in its docstring: which zones close
streets (:class:`HazardCut`), snapping, wading out of flooded streets, the search and routes.
The network work itself (arrays, snapping, Dijkstra, predecessor walks) is
:mod:`civicmap.layers.network`. Distances in metres, everything in the network's metric CRS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from civicmap.crs import metric_crs, require_crs, to_crs
from civicmap.errors import GeometryError, InputError
from civicmap.layers.network import (
    StreetNetwork,
    TargetSearch,
    path_vertices,
    search_targets,
    snap_to_nodes,
)
from civicmap.layers.overlay import intersects_any

__all__ = [
    "DEFAULT_MIN_RANK",
    "RANK_FIELDS",
    "HazardCut",
    "Nearest",
    "anchor_points",
    "as_cut",
    "flooded_edges",
    "flooded_lines",
    "nearest",
    "route_lines",
]

log = logging.getLogger(__name__)

#: Default rank from which a hazard zone removes streets (0 = least severe class stays open).
DEFAULT_MIN_RANK = 1
#: Integer rank columns looked for, in order, when ``rank_field`` is not given; then ``impassable``.
RANK_FIELDS = ("hazard_level", "rank")
_IMPASSABLE = "impassable"


@dataclass(frozen=True)
class HazardCut:
    """Which hazard zones close streets and facilities, and by which rule (see :mod:`civicmap.layers.risk.evacuation`).

    ``zones``: polygons in any CRS with an integer rank column (``rank_field``; by default the
    first of :data:`RANK_FIELDS` present) or a boolean ``impassable`` column. A zone closes
    streets when ``rank >= min_rank`` (or ``impassable`` is true; ``min_rank`` is then unused).
    ``min_share`` (0 <= x < 1): remove an edge only when more than this share of its length
    is inside closing zones; ``None`` (default) removes every edge that intersects one.
    """

    zones: gpd.GeoDataFrame
    min_rank: int = DEFAULT_MIN_RANK
    rank_field: str | None = None
    min_share: float | None = None
    column: str = field(default="", init=False)  # the rank or impassable column used, resolved on creation

    def __post_init__(self) -> None:
        if not isinstance(self.zones, gpd.GeoDataFrame):
            raise InputError(f"hazard zones must be a GeoDataFrame of polygons; got {type(self.zones).__name__}")
        require_crs(self.zones, name="hazard")
        problems = []
        name = self.rank_field or next((c for c in (*RANK_FIELDS, _IMPASSABLE) if c in self.zones.columns), None)
        if name is None or name not in self.zones.columns:
            wanted = repr(self.rank_field) if self.rank_field else f"one of {[*RANK_FIELDS, _IMPASSABLE]}"
            problems.append(f"hazard has no column {wanted}; its columns are {list(self.zones.columns)}")
        elif not (pd.api.types.is_bool_dtype(self.zones[name]) or pd.api.types.is_numeric_dtype(self.zones[name])):
            problems.append(f"hazard column {name!r} is {self.zones[name].dtype}; expected integer ranks or booleans")
        if self.min_share is not None and not 0 <= self.min_share < 1:
            problems.append(f"min_share {self.min_share} must lie in [0, 1) (or be None for the intersect rule)")
        if problems:
            raise InputError("; ".join(problems))
        object.__setattr__(self, "column", name)

    def closing(self, crs: CRS) -> np.ndarray:
        """The geometries of the zones that close streets, valid, in ``crs``."""
        values = self.zones[self.column]
        closes = values.fillna(False).astype(bool) if pd.api.types.is_bool_dtype(values) else values >= self.min_rank
        zones = self.zones.loc[closes.fillna(False).to_numpy()]
        zones = zones.loc[~(zones.geometry.isna() | zones.geometry.is_empty).to_numpy()]
        if zones.empty:
            return np.empty(0, dtype=object)
        return shapely.make_valid(to_crs(zones, crs, name="hazard").geometry.to_numpy())


def as_cut(hazard: gpd.GeoDataFrame | HazardCut | None, min_rank: int) -> HazardCut | None:
    """``hazard`` as a :class:`HazardCut` closing from ``min_rank`` (a HazardCut or None as given)."""
    if hazard is None or isinstance(hazard, HazardCut):
        return hazard
    return HazardCut(hazard, min_rank=min_rank)


def flooded_lines(lines: np.ndarray, zones: np.ndarray, min_share: float | None) -> np.ndarray:
    """Boolean per line: removed by ``zones`` under the intersect rule or the share-of-length rule."""
    out = intersects_any(lines, zones)
    if min_share is None or not out.any():
        return out
    cand = np.flatnonzero(out)
    inside = shapely.length(shapely.intersection(lines[cand], shapely.union_all(zones)))
    out[cand] = inside / np.maximum(shapely.length(lines[cand]), 1e-12) > min_share
    return out


def flooded_edges(
    edges: gpd.GeoDataFrame, hazard: gpd.GeoDataFrame | HazardCut | None, *, min_rank: int = DEFAULT_MIN_RANK
) -> pd.Series:
    """Boolean Series (same index as ``edges``, name ``flooded``): the street edges the hazard removes.

    ``edges``: line geometries in any CRS (e.g. ``osmnx.graph_to_gdfs(G, nodes=False)``);
    ``hazard``: zones with a rank or ``impassable`` column, or a :class:`HazardCut` (which then
    carries its own ``min_rank``). Rule: intersects a zone with rank >= ``min_rank`` (see
    :mod:`civicmap.layers.risk.evacuation`). No hazard, or an empty one, floods nothing.
    """
    require_crs(edges, name="edges")
    cut = as_cut(hazard, min_rank)
    if cut is None or edges.empty:
        return pd.Series(False, index=edges.index, name="flooded")
    crs = metric_crs(edges, name="streets")
    lines = to_crs(edges[[edges.geometry.name]], crs, name="edges").geometry.to_numpy()
    return pd.Series(flooded_lines(lines, cut.closing(crs), cut.min_share), index=edges.index, name="flooded")


def anchor_points(gdf: gpd.GeoDataFrame, crs: CRS, *, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Geometries and a point on each (its surface for polygons) in ``crs``; missing ones raise."""
    geoms = to_crs(gdf[[gdf.geometry.name]], crs, name=name).geometry.to_numpy()
    bad = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if bad.any():
        labels = list(gdf.index[bad][:5])
        raise GeometryError(
            f"{name}: {int(bad.sum())} rows have no geometry (index {labels}...); drop or fix them before routing"
        )
    return geoms, shapely.get_coordinates(shapely.point_on_surface(geoms))


@dataclass(frozen=True)
class Nearest:
    """Per building (arrays in building order) the walk to the nearest facility, and what routes need."""

    node: np.ndarray  # snapped node
    exit: np.ndarray  # first node with a dry street (the node itself unless it starts in the water; -1: none)
    inside: np.ndarray
    access_m: np.ndarray
    network_m: np.ndarray
    egress_m: np.ndarray
    facility: np.ndarray  # position in the facilities frame, -1 if none reachable
    usable: np.ndarray  # facility position of each search target
    search: TargetSearch
    way_out: TargetSearch | None
    points: np.ndarray
    facility_points: np.ndarray

    @property
    def wet(self) -> np.ndarray:
        """Buildings whose node has only flooded streets."""
        return self.exit != self.node


def facility_targets(
    net: StreetNetwork, facilities: gpd.GeoDataFrame, zones: np.ndarray, dry_node: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Usable facility positions, their snapped nodes, egress legs (m) and all facility points."""
    geoms, xy = anchor_points(facilities, net.crs, name="facilities")
    usable = np.flatnonzero(~intersects_any(geoms, zones))
    if len(usable) < len(facilities):
        log.info(
            "%d of %d facilities lie in closing hazard zones: not used", len(facilities) - len(usable), len(facilities)
        )
    node, egress = snap_to_nodes(net, xy[usable], allowed=dry_node)
    ok = node >= 0
    return usable[ok], node[ok], egress[ok], xy


def nearest(
    net: StreetNetwork, buildings: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame, cut: HazardCut | None, limit_m: float
) -> Nearest:
    n = net.n_nodes
    zones = cut.closing(net.crs) if cut is not None else np.empty(0, dtype=object)
    flooded = flooded_lines(net.lines, zones, None if cut is None else cut.min_share)
    dry_node = np.zeros(n, dtype=bool)
    dry_node[np.concatenate([net.u[~flooded], net.v[~flooded]])] = True
    usable, f_node, f_egress, f_xy = facility_targets(net, facilities, zones, dry_node)
    search = search_targets(net, f_node, target_leg_m=f_egress, edge_mask=~flooded, limit_m=limit_m, predecessors=True)
    b_geoms, b_xy = anchor_points(buildings, net.crs, name="buildings")
    node, access = snap_to_nodes(net, b_xy)
    exit_, way_out = node.copy(), None
    if (~dry_node[node]).any():  # all streets at the node flooded: leave the water by the shortest way
        exits = np.flatnonzero(dry_node)  # over flooded streets only, to the nearest node with a dry street
        way_out = search_targets(net, exits, edge_mask=flooded, predecessors=True)
        exit_ = np.where(dry_node[node], node, np.append(exits, -1)[way_out.target[node]])
    wade = np.where(exit_ == node, 0.0, way_out.distance_m[node] if way_out is not None else 0.0)
    target = np.append(search.target, -1)[exit_]  # exit -1 reads the last -1
    egress = np.append(f_egress, np.nan)[target]  # target -1 reads the appended NaN
    network = np.where(target >= 0, wade + np.append(search.distance_m, np.inf)[exit_], np.nan) - egress
    facility = np.append(usable, -1)[target]
    inside = intersects_any(b_geoms, zones)
    return Nearest(node, exit_, inside, access, network, egress, facility, usable, search, way_out, b_xy, f_xy)


def route_lines(net: StreetNetwork, found: Nearest, which: np.ndarray) -> np.ndarray:
    """LineStrings building -> node -> (way out of the water) -> streets -> facility, metric CRS, for ``which``."""
    ids = np.arange(len(which))
    blocks = [(ids, found.points[which])]
    wet = found.wet[which]
    if wet.any() and found.way_out is not None:
        walker, xy = path_vertices(net, found.way_out, found.node[which][wet])
        blocks.append((ids[wet][walker], xy))
    blocks.append(path_vertices(net, found.search, found.exit[which]))
    blocks.append((ids, found.facility_points[found.facility[which]]))
    owner, xy = np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])
    order = np.argsort(owner, kind="stable")  # per building: the blocks in order, each in walking order
    owner, xy = owner[order], xy[order]
    return without_repeats(xy, owner)


def without_repeats(xy: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """LineStrings from vertices grouped by ``owner``, dropping repeated consecutive vertices (>= 2 kept)."""
    first = np.r_[True, owner[1:] != owner[:-1]]
    last = np.r_[owner[1:] != owner[:-1], True]
    same = ~first & np.r_[False, (xy[1:] == xy[:-1]).all(axis=1)]
    drop = same & ~last
    before_last = np.flatnonzero(same & last) - 1  # a repeated end point replaces the vertex before it
    drop[before_last[~first[before_last]]] = True
    return shapely.linestrings(xy[~drop], indices=owner[~drop])
