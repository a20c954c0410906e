"""Street and service access of each building.

**Street access** (:func:`street_access`), in the spirit of block *k-complexity* (Brelsford,
Martin, Hand & Bettencourt 2018, "Toward cities without slums: topology and the spatial
evolution of neighborhoods", Science Advances 4(8) eaar4644), as a documented, cheap
approximation (no parcel layer is needed):

1. *blocks* are the faces of ``shapely.polygonize`` over the noded street lines plus the
   boundary of the area (given, or the extent of buildings and streets grown by 50 m);
2. a building lies in the block that holds its ``point_on_surface``;
3. depth 1 = buildings within ``frontage_m`` metres of a street (any street line, dead ends
   included); depth k + 1 = buildings adjacent to a depth-k building *in the same block*,
   where adjacent means natural neighbours (Delaunay edges of the footprint centroids, i.e.
   neighbouring cells of a centroid Voronoi tessellation, which stands in for prclz's
   parcels) plus the 3 nearest neighbours. The peeling is one unweighted multi-source
   shortest-path run (``scipy.sparse.csgraph.dijkstra``) from a virtual node tied to every
   depth-1 building.

A building that no street-front building reaches (a block without any street, or no street
at all in the area) gets ``block_depth`` NaN and ``street_reachable`` False: never zero.

**Service access** (:func:`service_access`): walking-network distance (m) from each building
to the nearest facility of each service, by one multi-source Dijkstra run per service on the
walk graph (:func:`civicmap.layers.network.nearest_walk`): buildings (centroids) and facilities
(representative points) snap to their nearest graph node (``scipy.spatial.cKDTree``) and both
snap legs count. An empty facility layer gives NaN distances and the service is listed in
``attrs["missing_services"]``: missing, never zero; a building no facility reaches gets
``inf``. :func:`service_gaps` summarises this into a "service gap" table.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import Delaunay, QhullError, cKDTree

from civicmap.errors import InputError
from civicmap.layers.network import Streets, nearest_walk, snap_to_nodes, street_network
from civicmap.layers.settlements._prepare import metric_crs_of, to_metric

__all__ = ["SERVICES", "SERVICE_GAP_M", "service_access", "service_gaps", "street_access", "street_intersections"]

log = logging.getLogger(__name__)

#: Services measured by :func:`service_access`: output column -> ``use`` value of the facilities
#: (civicmap's OSM ``amenities.use``; ``transit`` comes from the transit stops).
SERVICES: Mapping[str, str] = MappingProxyType(
    {
        "water": "water",
        "sanitation": "sanitation",
        "health": "health",
        "school": "education",
        "shelter": "shelter",
        "transit": "transit",
    }
)
#: Declared planning thresholds (walking metres) beyond which a building counts as under-served in
#: :func:`service_gaps`. They are defaults to discuss with the community, not norms.
SERVICE_GAP_M: Mapping[str, float] = MappingProxyType(
    {"water": 500.0, "sanitation": 250.0, "health": 1000.0, "school": 1000.0, "shelter": 1000.0, "transit": 500.0}
)


def _lines(streets: gpd.GeoDataFrame, crs: CRS) -> np.ndarray:
    geoms = to_metric(streets, crs, name="streets").geometry.to_numpy()
    return geoms[~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)]


def street_intersections(streets: gpd.GeoDataFrame, *, crs: CRS | str | int | None = None) -> gpd.GeoSeries:
    """Points where 3 or more street segments meet, after noding the lines (metric CRS)."""
    metric = metric_crs_of(streets, name="streets", crs=crs)
    lines = _lines(streets, metric)
    if not len(lines):
        return gpd.GeoSeries([], crs=metric)
    segments = shapely.get_parts(shapely.union_all(lines))
    ends = np.concatenate([shapely.get_coordinates(shapely.get_point(segments, i)) for i in (0, -1)])
    keys, counts = np.unique(np.round(ends, 2), axis=0, return_counts=True)
    return gpd.GeoSeries(shapely.points(keys[counts >= 3]), crs=metric)


def _nearest_distance(geoms: np.ndarray, targets: np.ndarray) -> np.ndarray:
    (src, _), dist = shapely.STRtree(targets).query_nearest(geoms, return_distance=True, all_matches=False)
    out = np.full(len(geoms), np.nan)
    out[src] = dist
    return out


def _blocks(lines: np.ndarray, area: shapely.Geometry) -> np.ndarray:
    noded = shapely.union_all(np.concatenate([lines, [shapely.boundary(area)]]))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    return faces[shapely.intersects(faces, area)] if len(faces) else faces


def _block_of(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    block = np.full(len(points), -1, dtype=np.int64)
    if len(faces):
        pt, face = shapely.STRtree(faces).query(points, predicate="within")
        block[pt] = face
        lost = np.flatnonzero(block < 0)
        if len(lost):
            block[lost] = shapely.STRtree(faces).query_nearest(points[lost], all_matches=False)[1]
    return block


def _neighbour_pairs(xy: np.ndarray) -> np.ndarray:
    """Delaunay edges plus 3-nearest-neighbour pairs of the points (unique rows, i < j)."""
    n = len(xy)
    pairs = [np.empty((0, 2), dtype=np.int64)]
    if n >= 2:
        k = min(4, n)
        _, nearest = cKDTree(xy).query(xy, k=k)
        pairs.append(np.column_stack([np.repeat(np.arange(n), k - 1), nearest[:, 1:].ravel()]))
    if n >= 4:
        try:
            tri = Delaunay(xy).simplices
            pairs.append(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [0, 2]]]))
        except QhullError:
            log.info("Delaunay failed on %d collinear footprints; nearest neighbours only", n)
    both = np.sort(np.concatenate(pairs), axis=1)
    return np.unique(both[both[:, 0] != both[:, 1]], axis=0)


def _depths(xy: np.ndarray, block: np.ndarray, front: np.ndarray) -> np.ndarray:
    n = len(xy)
    pairs = _neighbour_pairs(xy)
    pairs = pairs[block[pairs[:, 0]] == block[pairs[:, 1]]]
    fronts = np.flatnonzero(front)
    rows = np.concatenate([pairs[:, 0], pairs[:, 1], np.full(len(fronts), n)])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0], fronts])
    matrix = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n + 1, n + 1))
    depth = csgraph.dijkstra(matrix, directed=True, indices=n, unweighted=True)[:n]
    return np.where(np.isfinite(depth), depth, np.nan)


def street_access(
    buildings: gpd.GeoDataFrame,
    streets: gpd.GeoDataFrame,
    *,
    area: shapely.Geometry | None = None,
    frontage_m: float = 10.0,
    crs: CRS | str | int | None = None,
) -> pd.DataFrame:
    """Distance to the nearest street and block depth of each building (see the module docstring).

    ``buildings``: footprints; ``streets``: lines counted as access (choose them: all highway
    ways, or only vehicular ones); ``area``: polygon in the metric CRS closing the outer
    blocks. Returns a frame on the buildings' index: ``street_distance_m`` (m, NaN without
    streets), ``block_id`` (-1 without blocks), ``block_depth`` (1 = street front; NaN when
    unreachable) and ``street_reachable``.
    """
    if frontage_m < 0:
        raise InputError(f"frontage_m={frontage_m} is negative; expected metres >= 0 (default 10)")
    metric = metric_crs_of(buildings, name="buildings", crs=crs)
    geoms = to_metric(buildings, metric, name="buildings").geometry.to_numpy()
    lines = _lines(streets, metric) if len(streets) else np.empty(0, dtype=object)
    out = pd.DataFrame(index=buildings.index)
    if not len(lines):
        log.warning("no street lines given: street access is missing (NaN) for all %d buildings", len(geoms))
        return out.assign(street_distance_m=np.nan, block_id=-1, block_depth=np.nan, street_reachable=False)
    nearest = _nearest_distance(geoms, lines)
    if area is None:
        extent = np.concatenate([geoms, lines])
        area = shapely.buffer(shapely.box(*shapely.total_bounds(extent)), 50, join_style="mitre")
    points = shapely.point_on_surface(geoms)
    block = _block_of(points, _blocks(lines, area))
    depth = _depths(shapely.get_coordinates(shapely.centroid(geoms)), block, nearest <= frontage_m)
    out = out.assign(street_distance_m=nearest, block_id=block, block_depth=depth, street_reachable=np.isfinite(depth))
    if not out["street_reachable"].all():
        log.warning("%d buildings are reached from no street front (block depth NaN)", (~out["street_reachable"]).sum())
    return out


def _facility_points(frames: list[gpd.GeoDataFrame], crs: CRS) -> gpd.GeoDataFrame:
    kept = [to_metric(f[["use", f.geometry.name]], crs, name="facilities") for f in frames if len(f)]
    if not kept:
        return gpd.GeoDataFrame({"use": pd.Series(dtype=object)}, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    both = pd.concat([k.rename_geometry("geometry") if k.geometry.name != "geometry" else k for k in kept])
    return both.set_geometry(both.geometry.representative_point())


def service_access(
    buildings: gpd.GeoDataFrame,
    walk_graph: Streets,
    facilities: gpd.GeoDataFrame,
    *,
    transit_stops: gpd.GeoDataFrame | None = None,
    survey_points: gpd.GeoDataFrame | None = None,
    services: Mapping[str, str] = SERVICES,
    crs: CRS | str | int | None = None,
) -> pd.DataFrame:
    """Walking distance (m) from each building to the nearest facility of each service.

    ``walk_graph``: osmnx-style graph (node ``x``/``y`` in the graph's ``crs``, edge ``length``
    in m), e.g. ``OSMData.street_graph("walk")``, or its edges GeoDataFrame (layer
    ``streets_walk_edges``). ``facilities`` (and optional approved ``survey_points``) are
    points or polygons with a ``use`` column; ``transit_stops`` give the ``use`` "transit".
    Computed in ``crs`` (default: the buildings' CRS when metric, else their UTM zone).
    Returns a frame on the buildings' index with ``<service>_m`` columns (inf: no facility
    reachable) and ``network_snap_m`` (building to its nearest graph node). Services without
    any facility are NaN and listed in ``attrs["missing_services"]``.
    """
    metric = metric_crs_of(buildings, name="buildings", crs=crs)
    frames = [facilities, *(f for f in (survey_points,) if f is not None)]
    for frame in frames:
        if "use" not in frame:
            raise InputError(
                f"facility layer has no 'use' column (columns: {list(frame.columns)}); expected "
                f"values such as {sorted(set(services.values()))}"
            )
    if transit_stops is not None and len(transit_stops):
        frames.append(transit_stops[[transit_stops.geometry.name]].assign(use="transit"))
    points = _facility_points(frames, metric)
    network = street_network(walk_graph, crs=metric)
    centres = shapely.get_coordinates(to_metric(buildings, metric, name="buildings").geometry.centroid.to_numpy())
    out = pd.DataFrame({"network_snap_m": snap_to_nodes(network, centres).distance_m}, index=buildings.index)
    missing = []
    for column, use in services.items():  # one Dijkstra per service, not per building
        chosen = points.loc[points["use"] == use]
        if chosen.empty:
            missing.append(column)
            out[f"{column}_m"] = np.nan
            continue
        out[f"{column}_m"] = nearest_walk(
            network, centres, shapely.get_coordinates(chosen.geometry.to_numpy())
        ).distance_m
    if missing:
        log.warning("no facilities for %s: their access is reported as missing (NaN), not zero", ", ".join(missing))
    out.attrs["missing_services"] = missing
    return out


def service_gaps(access: pd.DataFrame, *, gap_m: Mapping[str, float] = SERVICE_GAP_M) -> pd.DataFrame:
    """The "service gap" table: one row per service in ``access`` (from :func:`service_access`).

    Columns: ``missing`` (no facility at all), ``buildings``, ``median_m``, ``p90_m``, ``gap_m``
    (the declared threshold) and ``share_beyond_gap`` (NaN when missing).
    """
    rows = []
    missing = set(access.attrs.get("missing_services", ()))
    for column in (c for c in access.columns if c.endswith("_m") and c != "network_snap_m"):
        service = column.removesuffix("_m")
        values = access[column].to_numpy(dtype=float)
        limit = float(gap_m.get(service, np.nan))
        none = service in missing or not np.isfinite(values).any()
        rows.append(
            {
                "service": service,
                "missing": none,
                "buildings": len(values),
                "median_m": np.nan if none else float(np.nanmedian(values)),
                "p90_m": np.nan if none else float(np.nanpercentile(values, 90)),
                "gap_m": limit,
                "share_beyond_gap": np.nan if none else float(np.mean(values > limit)),
            }
        )
    return pd.DataFrame(rows).set_index("service")
