"""Building footprints: regular plots on the planned grid, dense irregular huts on the valley floor.

Footprints are built in local metres as node arrays plus rings of node indices, so that
touching informal huts can share their wall nodes, as mapped buildings in OSM do. They are
filtered against roads, water and reserved sites (vectorised with an STRtree) before being
committed to the OSM document.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely

from .frame import ZONES, arterial_point, river_y
from .network import BLOCK_P_M, BLOCK_Q_M, Grid, Informal, grid_to_local
from .osmdoc import OsmDoc

__all__ = [
    "Footprints",
    "add_bad_geometries",
    "commit_footprints",
    "drop_conflicts",
    "industrial_buildings",
    "informal_buildings",
    "planned_buildings",
]

_Q_OFFSET_M = 35.0
_INFORMAL_ROOFS = ("iron_grey", "iron_rust", "iron_dark", "iron_blue")
_PLANNED_ROOFS = ("tile", "concrete", "iron_grey", "painted_green", "painted_blue")


@dataclass
class Footprints:
    """Polygons as node positions (local m) + rings of node indices, with tags, zone and roof kind."""

    xy: np.ndarray
    rings: list[np.ndarray]
    tags: list[dict[str, str]]
    zone: list[str]
    roof: list[str]
    way_ids: list[int] = field(default_factory=list)

    def polygons(self) -> np.ndarray:
        """Shapely polygons in local metres, one per ring."""
        return np.array([shapely.Polygon(self.xy[r]) for r in self.rings], dtype=object)

    def subset(self, keep: np.ndarray) -> Footprints:
        """The footprints where ``keep`` is true (node array unchanged)."""
        idx = np.flatnonzero(keep)
        return Footprints(
            self.xy,
            [self.rings[i] for i in idx],
            [self.tags[i] for i in idx],
            [self.zone[i] for i in idx],
            [self.roof[i] for i in idx],
        )

    @staticmethod
    def concat(parts: list[Footprints]) -> Footprints:
        """Join several footprint sets into one (node indices shifted)."""
        offsets = np.cumsum([0] + [len(p.xy) for p in parts[:-1]])
        return Footprints(
            np.concatenate([p.xy for p in parts]),
            [r + off for p, off in zip(parts, offsets, strict=True) for r in p.rings],
            [t for p in parts for t in p.tags],
            [z for p in parts for z in p.zone],
            [r for p in parts for r in p.roof],
        )


def _rects(corners: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Independent rectangles (N, 4, 2) -> node array and rings."""
    n = len(corners)
    return corners.reshape(-1, 2), [np.arange(4 * k, 4 * k + 4) for k in range(n)]


def _planned_tags(rng: np.random.Generator, n: int) -> tuple[list[dict[str, str]], np.ndarray]:
    kind = rng.choice(np.array(["house", "residential", "apartments"]), size=n, p=[0.6, 0.27, 0.13])
    levels = np.where(kind == "house", rng.integers(1, 3, n), rng.integers(1, 4, n))
    levels = np.where(kind == "apartments", rng.integers(3, 5, n), levels)
    has_levels = rng.random(n) < 0.7
    material = rng.choice(np.array(["concrete", "brick", "cement_block", ""]), size=n, p=[0.3, 0.1, 0.15, 0.45])
    tags = []
    for k in range(n):
        t = {"building": str(kind[k])}
        if has_levels[k] or kind[k] == "apartments":
            t["building:levels"] = str(levels[k])
        if material[k]:
            t["building:material"] = str(material[k])
        tags.append(t)
    return tags, kind


def planned_buildings(grid: Grid, rng: np.random.Generator) -> Footprints:
    """Houses set back from the streets on regular plots: two rows of 5-6 plots per grid block."""
    ids = grid.ids
    full = (ids[:-1, :-1] >= 0) & (ids[1:, :-1] >= 0) & (ids[:-1, 1:] >= 0) & (ids[1:, 1:] >= 0)
    jr, ic = np.nonzero(full)
    p_b = (ic + grid.i0) * BLOCK_P_M
    q_b = (jr + grid.j0) * BLOCK_Q_M + _Q_OFFSET_M
    n_plots = rng.choice([5, 6], size=len(p_b))
    blk, k, back = np.meshgrid(np.arange(len(p_b)), np.arange(6), np.arange(2), indexing="ij")
    blk, k, back = blk.ravel(), k.ravel(), back.ravel()
    ok = (k < n_plots[blk]) & (rng.random(len(blk)) > 0.06)
    blk, k, back = blk[ok], k[ok], back[ok]
    n = len(blk)
    tags, kind = _planned_tags(rng, n)
    plot_w = (BLOCK_P_M - 10.0) / n_plots[blk]
    bw = np.where(kind == "apartments", plot_w - 3.0, np.minimum(rng.uniform(0.55, 0.8, n) * plot_w, plot_w - 3.0))
    bd = np.where(kind == "apartments", rng.uniform(13, 17, n), rng.uniform(8, 13, n))
    pc = p_b[blk] + 5.0 + (k + 0.5) * plot_w + rng.uniform(-1.0, 1.0, n) * (plot_w - bw - 2.0) / 2
    setback = rng.uniform(3.0, 6.0, n)
    q0 = np.where(back == 0, q_b[blk] + 5.0 + setback, q_b[blk] + BLOCK_Q_M - 5.0 - setback - bd)
    p = np.stack([pc - bw / 2, pc + bw / 2, pc + bw / 2, pc - bw / 2], axis=1)
    q = np.stack([q0, q0, q0 + bd, q0 + bd], axis=1)
    xy, rings = _rects(grid_to_local(p, q))
    roof = rng.choice(np.array(_PLANNED_ROOFS), size=n, p=[0.35, 0.25, 0.25, 0.08, 0.07])
    return Footprints(xy, rings, tags, ["planned"] * n, [str(r) for r in roof])


def _row_units(rng: np.random.Generator, x_lo: float, x_hi: float, y0: float) -> tuple[np.ndarray, np.ndarray, list]:
    """One row of huts in a cell's rotated frame: boundary nodes (bottom/top) and unit rings."""
    depth = rng.uniform(4.5, 7.5)
    n = int((x_hi - x_lo) / 3.0) + 2
    widths = rng.uniform(max(3.2, 15.0 / depth), min(9.0, 60.0 / depth), n)
    gaps = np.where(rng.random(n) < 0.55, 0.0, rng.uniform(0.6, 1.5, n))
    starts = x_lo + rng.uniform(0.0, 1.0) + np.concatenate([[0.0], np.cumsum(widths + gaps)[:-1]])
    ends = starts + widths
    left = np.concatenate([[0], np.cumsum(1 + (gaps[:-1] > 0))])
    right = left + 1
    bx = np.empty(right[-1] + 1)
    bx[left], bx[right] = starts, ends
    nodes = np.concatenate([np.stack([bx, np.full_like(bx, y0)], 1), np.stack([bx, np.full_like(bx, y0 + depth)], 1)])
    nb = len(bx)
    rings = [np.array([left[u], right[u], nb + right[u], nb + left[u]]) for u in range(n) if ends[u] <= x_hi]
    return nodes, np.array([y0 + depth]), rings


def _cell_huts(quad: np.ndarray, rng: np.random.Generator, keep_p: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Fill one informal lattice cell (4 corners, local m) with rows of huts, many sharing walls."""
    inner = shapely.Polygon(quad).buffer(-1.8, join_style="mitre")
    if inner.is_empty or inner.area < 60.0:
        return np.empty((0, 2)), []
    edge = quad[1] - quad[0]
    theta = np.arctan2(edge[1], edge[0]) + rng.normal(0.0, np.radians(8.0))
    c, s = np.cos(theta), np.sin(theta)
    centre = quad.mean(axis=0)
    local = (np.asarray(inner.exterior.coords) - centre) @ np.array([[c, -s], [s, c]])
    (x_lo, y_lo), (x_hi, y_hi) = local.min(axis=0), local.max(axis=0)
    nodes, rings, y = [], [], y_lo + rng.uniform(0.0, 1.0)
    while y + 4.5 < y_hi:
        row_nodes, top, row_rings = _row_units(rng, x_lo, x_hi, y)
        base = sum(len(nd) for nd in nodes)
        nodes.append(row_nodes)
        rings += [r + base for r in row_rings]
        y = float(top[0]) + rng.choice([0.0, 0.7, 1.0, 1.5], p=[0.2, 0.3, 0.3, 0.2])
    if not rings:
        return np.empty((0, 2)), []
    xy = np.concatenate(nodes) @ np.array([[c, s], [-s, c]]) + centre
    polys = np.array([shapely.Polygon(xy[r]) for r in rings])
    keep = shapely.contains(inner, polys) & (rng.random(len(rings)) < keep_p)
    return xy, [r for r, k in zip(rings, keep, strict=True) if k]


def informal_buildings(lat: Informal, rng: np.random.Generator) -> Footprints:
    """Huts of 15-60 m² in every cell of the informal lattice; denser near the spine and the arterial."""
    ids, xy = lat.ids, lat.xy
    parts_xy, rings = [], []
    offset = 0
    rows, cols = ids.shape
    art_x = arterial_point(0.0)[0]
    for r in range(rows - 1):
        for c in range(cols - 1):
            if min(ids[r, c], ids[r, c + 1], ids[r + 1, c + 1], ids[r + 1, c]) < 0:
                continue
            quad = np.array([xy[r, c], xy[r, c + 1], xy[r + 1, c + 1], xy[r + 1, c]])
            centre_x = quad[:, 0].mean()
            keep_p = min(0.95, 0.6 + 0.15 * np.exp(-abs(r - 2.5) / 2) + 0.12 * np.exp(-abs(centre_x - art_x) / 300))
            cell_xy, cell_rings = _cell_huts(quad, rng, keep_p)
            parts_xy.append(cell_xy)
            rings += [ring + offset for ring in cell_rings]
            offset += len(cell_xy)
    n = len(rings)
    kind = rng.choice(np.array(["yes", "house"]), size=n, p=[0.8, 0.2])
    tags = [{"building": str(k)} for k in kind]
    for k in np.flatnonzero(rng.random(n) < 0.04):
        tags[k]["roof:material"] = "metal"
    roof = rng.choice(np.array(_INFORMAL_ROOFS), size=n, p=[0.45, 0.35, 0.15, 0.05])
    return Footprints(np.concatenate(parts_xy), rings, tags, ["informal"] * n, [str(x) for x in roof])


def industrial_buildings(rng: np.random.Generator) -> Footprints:
    """Warehouses on both sides of the industrial road (v = -125 m), aligned with the river."""
    x_lo, x_hi = ZONES["industrial_x"]
    widths = rng.uniform(22.0, 45.0, 60)
    centres = x_lo + np.cumsum(widths + rng.uniform(8.0, 20.0, 60)) - widths / 2
    centres = centres[centres + widths / 2 < x_hi]
    m = len(centres)
    xc = np.concatenate([centres, centres + rng.uniform(-5, 5, m)])
    width = np.concatenate([widths[:m], widths[:m] * rng.uniform(0.8, 1.1, m)])
    depth = rng.uniform(18.0, 32.0, 2 * m)
    side = np.repeat([1.0, -1.0], m)
    vc = -125.0 + side * (10.0 + depth / 2)
    slope = np.arctan((river_y(xc + 1.0) - river_y(xc - 1.0)) / 2.0)
    u = np.stack([np.cos(slope), np.sin(slope)], -1)
    nrm = np.stack([-np.sin(slope), np.cos(slope)], -1)
    centre = np.stack([xc, river_y(xc) + vc], -1)
    sgn = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])
    corners = (
        centre[:, None]
        + (sgn[None, :, :1] * width[:, None, None] / 2) * u[:, None]
        + (sgn[None, :, 1:] * depth[:, None, None] / 2) * nrm[:, None]
    )
    xy, rings = _rects(corners)
    kind = rng.choice(np.array(["industrial", "warehouse"]), size=2 * m)
    tags = [{"building": str(k), "building:levels": "1"} for k in kind]
    return Footprints(xy, rings, tags, ["industrial"] * (2 * m), ["concrete"] * (2 * m))


def drop_conflicts(fp: Footprints, obstacles: np.ndarray) -> Footprints:
    """Footprints that touch none of ``obstacles`` (shapely geometries, local m)."""
    if len(obstacles) == 0:
        return fp
    tree = shapely.STRtree(obstacles)
    hit = np.unique(tree.query(fp.polygons(), predicate="intersects")[0])
    keep = np.ones(len(fp.rings), dtype=bool)
    keep[hit] = False
    return fp.subset(keep)


def add_bad_geometries(doc: OsmDoc, spot: np.ndarray) -> dict[str, int]:
    """Three broken building ways as real extracts have them, near ``spot`` (local m); return their ids."""
    x, y = float(spot[0]), float(spot[1])
    bow = doc.add_nodes(np.array([[x, y], [x + 6, y], [x + 6, y + 5], [x, y + 5]]))
    bowtie = doc.add_way([bow[0], bow[2], bow[1], bow[3], bow[0]], {"building": "yes"})
    two = doc.add_nodes(np.array([[x + 10, y], [x + 15, y + 1]]))
    degenerate = doc.add_way([two[0], two[1], two[0]], {"building": "yes"})
    op = doc.add_nodes(np.array([[x, y + 9], [x + 6, y + 9], [x + 6, y + 14], [x, y + 14]]))
    unclosed = doc.add_way(list(op), {"building": "house"})
    return {"bowtie": bowtie, "two_node_closed": degenerate, "unclosed": unclosed}


def commit_footprints(doc: OsmDoc, fp: Footprints) -> Footprints:
    """Add the referenced nodes and one closed way per footprint to ``doc``; record the way ids."""
    used = np.unique(np.concatenate(fp.rings)) if fp.rings else np.array([], dtype=int)
    node_ids = np.full(len(fp.xy), -1, dtype=np.int64)
    node_ids[used] = doc.add_nodes(fp.xy[used])
    fp.way_ids = [doc.add_way([*node_ids[r], node_ids[r[0]]], t) for r, t in zip(fp.rings, fp.tags, strict=True)]
    return fp
