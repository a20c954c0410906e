"""Building morphology: size, shape, orientation and how footprints sit together.

:func:`building_morphology` returns one row per footprint, computed in a metric CRS (the
frame's own CRS when it is projected in metres, else its local UTM zone, logged). The
metrics are momepy's (momepy >= 0.8 functional API; their definitions and citations are in
momepy's docs), called on two libpysal graphs built once:

- *contiguity*: ``Graph.build_fuzzy_contiguity`` (footprints that intersect: touch or overlap;
  ``contact_m`` > 0 also joins footprints closer than that);
- *neighbourhood*: ``Graph.build_triangulation`` (Delaunay triangulation of the footprint
  centroids, i.e. the neighbours of a centroid Voronoi tessellation), as in momepy's own
  examples for ``alignment`` and ``neighbor_distance``. Fewer than 4 footprints, or
  collinear ones, fall back to a complete / 2-nearest-neighbour graph.

Columns (units):

==================== ===== ===================================================================
``area``             m²    footprint area
``perimeter``        m     footprint perimeter (holes included)
``elongation``       0–1   ``momepy.elongation``: short/long side of the minimum rotated
                           rectangle (1 = square; Gil et al. 2012)
``orientation``      deg   ``momepy.orientation``: deviation of that rectangle from the cardinal
                           directions, 0–45 (Schirmer & Axhausen 2015)
``alignment``        deg   ``momepy.alignment``: mean absolute difference of ``orientation`` to
                           the Delaunay neighbours (high = irregular layout)
``neighbour_distance`` m   ``momepy.neighbor_distance``: mean footprint-to-footprint distance to
                           the Delaunay neighbours (NaN for isolates)
``shared_walls``     m     ``momepy.shared_walls`` (strict by default: touching walls only;
                           see ``wall_tolerance_m``; overlapping footprints give wrong values,
                           hence the cleaning report)
``adjacency``        0–1   ``momepy.building_adjacency``: joined structures / buildings in the
                           Delaunay neighbourhood (low = many buildings share walls)
``courtyards``       count ``momepy.courtyards``: holes in the joined structure (0.01 m buffer)
==================== ===== ===================================================================

``courtyards`` is computed here without momepy's per-component Python loop: the footprints
of each joined structure (contiguity component) become one MultiPolygon and are buffered
by 0.01 m in one vectorised call, which unions them as momepy's ``union_all(buffer(...))``
does; a lone single-part footprint just counts its own holes (a 0.01 m buffer closes none
wider than 2 cm). The tests check parity with ``momepy.courtyards``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import geopandas as gpd
import momepy
import numpy as np
import pandas as pd
import shapely
from libpysal.graph import Graph
from pyproj import CRS
from scipy.spatial import QhullError
from tqdm.auto import tqdm

from civicmap.layers.settlements._prepare import clean_footprints, metric_crs_of, to_metric

__all__ = ["MORPHOLOGY_COLUMNS", "building_graphs", "building_morphology"]

log = logging.getLogger(__name__)

#: Output columns of :func:`building_morphology`, in order.
MORPHOLOGY_COLUMNS = (
    "area",
    "perimeter",
    "elongation",
    "orientation",
    "alignment",
    "neighbour_distance",
    "shared_walls",
    "adjacency",
    "courtyards",
)
_COURTYARD_BUFFER_M = 0.01


def building_graphs(geoms: gpd.GeoSeries, *, contact_m: float = 0.0) -> tuple[Graph, Graph]:
    """The (contiguity, neighbourhood) libpysal graphs used by :func:`building_morphology`.

    ``geoms`` are footprints in a metric CRS. Contiguity: footprints that intersect (after a
    ``contact_m`` metre buffer when > 0). Neighbourhood: Delaunay triangulation of centroids.
    """
    contiguity = Graph.build_fuzzy_contiguity(geoms, buffer=contact_m or None)
    return contiguity, _neighbourhood(geoms)


def _neighbourhood(geoms: gpd.GeoSeries) -> Graph:
    centroids = geoms.centroid
    n = len(geoms)
    if n >= 4:
        try:
            return Graph.build_triangulation(centroids, coplanar="clique")
        except (QhullError, ValueError) as exc:
            log.info("Delaunay triangulation failed (%s); using 2 nearest neighbours", exc)
            return Graph.build_knn(centroids, k=2, coplanar="clique")
    focal, neighbour = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    off = focal != neighbour
    if not off.any():
        return Graph.from_arrays(geoms.index.to_numpy(), geoms.index.to_numpy(), np.zeros(n))
    index = geoms.index.to_numpy()
    return Graph.from_arrays(index[focal[off]], index[neighbour[off]], np.ones(int(off.sum())))


def courtyards(geoms: gpd.GeoSeries, contiguity: Graph) -> pd.Series:
    """Holes in the joined structure of each footprint (``momepy.courtyards``, vectorised; count)."""
    labels = pd.factorize(contiguity.component_labels.reindex(geoms.index).to_numpy())[0]
    joined = np.bincount(labels)[labels] > 1
    parts, owner = shapely.get_parts(geoms.to_numpy(), return_index=True)
    structure = labels[owner]
    buffered = joined[owner] | (np.bincount(owner)[owner] > 1)  # joined structures and multipolygons
    if buffered.any():
        order = np.argsort(structure[buffered], kind="stable")
        kept = np.unique(structure[buffered])
        merged = shapely.buffer(
            shapely.multipolygons(parts[buffered][order], indices=np.searchsorted(kept, structure[buffered][order])),
            _COURTYARD_BUFFER_M,
        )
        pieces, piece_owner = shapely.get_parts(merged, return_index=True)
        merged_holes = np.bincount(piece_owner, weights=shapely.get_num_interior_rings(pieces), minlength=len(kept))
    holes = np.bincount(
        structure[~buffered], weights=shapely.get_num_interior_rings(parts[~buffered]), minlength=labels.max() + 1
    )
    if buffered.any():
        holes[kept] = merged_holes
    return pd.Series(holes[labels].astype(np.int64), index=geoms.index, name="courtyards")


def _steps(
    geoms: gpd.GeoSeries, contiguity: Graph, near: Graph, wall_tolerance_m: float | None
) -> dict[str, Callable[[], pd.Series]]:
    orientation = momepy.orientation(geoms)
    strict = wall_tolerance_m is None
    return {
        "area": lambda: pd.Series(shapely.area(geoms.to_numpy()), index=geoms.index),
        "perimeter": lambda: pd.Series(shapely.length(geoms.to_numpy()), index=geoms.index),
        "elongation": lambda: momepy.elongation(geoms),
        "orientation": lambda: orientation,
        "alignment": lambda: momepy.alignment(orientation, near),
        "neighbour_distance": lambda: momepy.neighbor_distance(geoms, near),
        "shared_walls": lambda: momepy.shared_walls(geoms, strict=strict, tolerance=wall_tolerance_m or 0.01),
        "adjacency": lambda: momepy.building_adjacency(contiguity, near),
        "courtyards": lambda: courtyards(geoms, contiguity),
    }


def building_morphology(
    buildings: gpd.GeoDataFrame,
    *,
    crs: CRS | str | int | None = None,
    contact_m: float = 0.0,
    wall_tolerance_m: float | None = None,
    progress: bool = False,
) -> gpd.GeoDataFrame:
    """Morphology of each footprint (see the module docstring for the columns and units).

    ``buildings``: polygons in any CRS; invalid ones are repaired and unusable ones dropped
    (counts in ``attrs["cleaning"]``, also logged). ``crs``: the metric CRS to compute in
    (default: the frame's own if metric, else the local UTM zone). ``wall_tolerance_m``: None
    keeps momepy's strict shared walls (exactly touching footprints only); a value (m) uses
    ``momepy.shared_walls(strict=False, tolerance=...)``, needed for OSM footprints digitised
    side by side, which rarely touch exactly. Returns a GeoDataFrame in
    that CRS with the input's index (minus dropped rows), the input columns and
    :data:`MORPHOLOGY_COLUMNS` (a clash replaces the input column).
    """
    metric = metric_crs_of(buildings, name="buildings", crs=crs)
    frame = clean_footprints(to_metric(buildings, metric, name="buildings"))
    cleaning = frame.attrs.get("cleaning", {})
    geoms = frame.geometry
    if geoms.empty:
        return frame.assign(**{c: pd.Series(dtype=float) for c in MORPHOLOGY_COLUMNS})
    contiguity, near = building_graphs(geoms, contact_m=contact_m)
    columns: dict[str, pd.Series] = {}
    steps = _steps(geoms, contiguity, near, wall_tolerance_m)
    for name, step in tqdm(steps.items(), desc="morphology", disable=not progress, total=len(steps)):
        columns[name] = step().reindex(frame.index)
    out = frame.drop(columns=[c for c in MORPHOLOGY_COLUMNS if c in frame]).assign(**columns)
    out.attrs["cleaning"] = cleaning
    out.attrs["crs_note"] = f"computed in {metric.to_string()}"
    return out
