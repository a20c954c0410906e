"""Mkondo's street network: a planned grid on high ground, irregular paths on the valley floor.

All positions are local metres (see :mod:`frame`). Streets share nodes at every junction, so
the ways form one routable graph. Streets stay :class:`Street` objects (node ids + tags) until
:func:`commit_streets` adds them to the document, so that the transit builder can first
split them where bus routes turn.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .frame import GRID_ANGLE, RIVER_HALF_WIDTH_M, SIZE_M, ZONES, arterial_point, river_y, valley_v
from .osmdoc import OsmDoc

__all__ = [
    "BLOCK_P_M",
    "BLOCK_Q_M",
    "Grid",
    "Informal",
    "Network",
    "Street",
    "build_network",
    "commit_streets",
    "grid_to_local",
]

BLOCK_P_M = 130.0  # grid spacing along the rows (m)
BLOCK_Q_M = 70.0  # grid spacing along the columns (m)
_Q_OFFSET_M = 35.0
_INFORMAL_ROWS_W = 45.0 + 45.0 * np.arange(8)  # valley coordinate of the informal path rows (m)
_INFORMAL_COL_M = 47.5
_ROW_NAMES = [
    "Mtaa wa Mwembe", "Mtaa wa Mnazi", "Mtaa wa Mpera", "Mtaa wa Mchungwa", "Mtaa wa Mwarobaini",
    "Mtaa wa Mkuyu", "Mtaa wa Mbuyu", "Mtaa wa Mvule", "Mtaa wa Mninga", "Mtaa wa Mkomamanga",
    "Mtaa wa Mlimau", "Mtaa wa Mpapai", "Mtaa wa Mkwaju", "Mtaa wa Mtende", "Mtaa wa Mzambarau",
    "Mtaa wa Mfenesi", "Mtaa wa Mkorosho", "Mtaa wa Mparachichi", "Mtaa wa Mdalasini", "Mtaa wa Mchikichi",
]  # fmt: skip
_SPECIAL_ROWS = {12: ("secondary", "Barabara ya Kilimani"), 7: ("tertiary", "Mtaa wa Bondeni")}
_EAST_COLUMN = (5, "secondary", "Barabara ya Mashariki")
_PRIMARY = {"highway": "primary", "name": "Barabara ya Mkondo", "surface": "asphalt", "lanes": "2"}


@dataclass
class Street:
    """A street way before it is committed: node ids in order and OSM tags."""

    refs: list[int]
    tags: dict[str, str]


@dataclass
class Grid:
    """The planned lattice: node ids (-1 where absent) indexed [j - j0, i - i0]."""

    ids: np.ndarray
    i0: int
    j0: int


@dataclass
class Informal:
    """The informal path lattice: node ids (-1 where absent) and positions, shape (rows, cols)."""

    ids: np.ndarray
    xy: np.ndarray


@dataclass
class Network:
    """All streets plus the two lattices the buildings are laid out on."""

    streets: list[Street]
    grid: Grid
    informal: Informal


def grid_to_local(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Grid frame (p along rows, q along columns, metres from the arterial's river crossing) -> local xy."""
    origin = arterial_point(0.0)
    c, s = np.cos(GRID_ANGLE), np.sin(GRID_ANGLE)
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    return np.stack([origin[0] + p * c - q * s, origin[1] + p * s + q * c], axis=-1)


def _runs(ids: np.ndarray, classes: np.ndarray) -> list[tuple[list[int], str]]:
    """Maximal runs of consecutive edges of one class along a 1-D line of nodes."""
    out: list[tuple[list[int], str]] = []
    cur: list[int] = []
    cur_cls = ""
    for k, cls in enumerate(classes):
        if cls and ids[k] >= 0 and ids[k + 1] >= 0:
            if cur and cls == cur_cls:
                cur.append(int(ids[k + 1]))
                continue
            if cur:
                out.append((cur, cur_cls))
            cur, cur_cls = [int(ids[k]), int(ids[k + 1])], str(cls)
        elif cur:
            out.append((cur, cur_cls))
            cur = []
    if cur:
        out.append((cur, cur_cls))
    return out


def _grid_nodes(doc: OsmDoc) -> Grid:
    i = np.arange(-12, 10)
    j = np.arange(-12, 22)
    jj, ii = np.meshgrid(j, i, indexing="ij")
    xy = grid_to_local(ii * BLOCK_P_M, jj * BLOCK_Q_M + _Q_OFFSET_M)
    v = valley_v(xy[..., 0], xy[..., 1])
    inside = np.all((xy > 6.0) & (xy < SIZE_M - 6.0), axis=-1)
    keep = inside & ((v >= ZONES["planned_north"]) | (v <= ZONES["planned_south"]))
    ids = np.full(keep.shape, -1, dtype=np.int64)
    ids[keep] = doc.add_nodes(xy[keep])
    return Grid(ids=ids, i0=int(i[0]), j0=int(j[0]))


def _grid_streets(grid: Grid) -> list[Street]:
    rows, cols = grid.ids.shape
    h_cls = np.full((rows, cols - 1), "residential", dtype=object)
    v_cls = np.full((rows - 1, cols), "residential", dtype=object)
    for j, (cls, _) in _SPECIAL_ROWS.items():
        h_cls[j - grid.j0] = cls
    v_cls[:, -grid.i0] = ""  # the arterial column is built separately
    i_east, east_cls, _ = _EAST_COLUMN
    v_cls[:, i_east - grid.i0] = east_cls
    streets = []
    for r in range(rows):
        j = r + grid.j0
        for refs, cls in _runs(grid.ids[r], h_cls[r]):
            name = _SPECIAL_ROWS.get(j, (None, _ROW_NAMES[r % len(_ROW_NAMES)]))[1]
            streets.append(Street(refs, {"highway": cls, "name": name}))
    for c in range(cols):
        for refs, cls in _runs(grid.ids[:, c], v_cls[:, c]):
            tags = {"highway": cls}
            if c + grid.i0 == i_east:
                tags["name"] = _EAST_COLUMN[2]
            streets.append(Street(refs, tags))
    return streets


def _t_at_v(v_target: float) -> float:
    """Distance along the arterial (m from the river crossing) where it reaches valley coordinate v."""
    t = v_target
    for _ in range(8):
        x, y = arterial_point(t)
        t += (v_target - float(valley_v(x, y))) / np.cos(GRID_ANGLE)
    return float(t)


def _informal_lattice(doc: OsmDoc, rng: np.random.Generator) -> Informal:
    t_rows = np.array([_t_at_v(w) for w in _INFORMAL_ROWS_W])
    art = arterial_point(t_rows)
    x_lo, x_hi = ZONES["informal_x"]
    c = np.arange(
        int(np.ceil((x_lo - art[:, 0].min()) / _INFORMAL_COL_M)), 1 + int((x_hi - art[:, 0].max()) / _INFORMAL_COL_M)
    )
    x = art[:, :1] + c[None, :] * _INFORMAL_COL_M + rng.uniform(-9, 9, (len(t_rows), len(c)))
    w = _INFORMAL_ROWS_W[:, None] + rng.uniform(-7, 7, x.shape)
    w[[0, 3]] = _INFORMAL_ROWS_W[[0, 3], None] + rng.uniform(-2, 2, (2, len(c)))
    c0 = int(np.flatnonzero(c == 0)[0])
    x[:, c0], w[:, c0] = art[:, 0], _INFORMAL_ROWS_W
    xy = np.stack([x, river_y(x) + w], axis=-1)
    xy[:, c0] = art
    keep = (x >= x_lo) & (x <= x_hi)
    keep[:, c0] = True
    ids = np.full(x.shape, -1, dtype=np.int64)
    ids[keep] = doc.add_nodes(xy[keep])
    return Informal(ids=ids, xy=xy)


def _find(parent: dict[int, int], a: int) -> int:
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


def _reconnect(ids: np.ndarray, h_cls: np.ndarray, v_cls: np.ndarray, c0: int) -> None:
    """Re-add dropped lattice edges (as footways) until every node is linked to every other."""
    parent = {int(n): int(n) for n in ids[ids >= 0]}
    art = [int(n) for n in ids[:, c0]]
    for a, b in itertools.pairwise(art):
        parent[_find(parent, a)] = _find(parent, b)
    edges = [(r, k, "h") for r in range(h_cls.shape[0]) for k in range(h_cls.shape[1])]
    edges += [(r, k, "v") for r in range(v_cls.shape[0]) for k in range(v_cls.shape[1]) if k != c0]
    for pass_dropped in (False, True):
        for r, k, kind in edges:
            cls, a, b = (h_cls, ids[r, k], ids[r, k + 1]) if kind == "h" else (v_cls, ids[r, k], ids[r + 1, k])
            if a < 0 or b < 0 or bool(cls[r, k]) == pass_dropped:
                continue
            ra, rb = _find(parent, int(a)), _find(parent, int(b))
            if ra != rb:
                parent[ra] = rb
                if pass_dropped:
                    cls[r, k] = "footway"


def _informal_streets(lat: Informal, rng: np.random.Generator) -> list[Street]:
    rows, cols = lat.ids.shape
    c0 = _arterial_column(lat)
    h_cls = rng.choice(np.array(["footway", "path", ""], dtype=object), size=(rows, cols - 1), p=[0.5, 0.35, 0.15])
    v_cls = rng.choice(
        np.array(["footway", "path", "service", ""], dtype=object), size=(rows - 1, cols), p=[0.36, 0.3, 0.08, 0.26]
    )
    h_cls[0], h_cls[3] = "track", "unclassified"
    h_cls[:, [c0 - 1, c0]] = np.where(h_cls[:, [c0 - 1, c0]] == "", "footway", h_cls[:, [c0 - 1, c0]])
    v_cls[:, c0] = ""
    _reconnect(lat.ids, h_cls, v_cls, c0)
    streets = []
    for r in range(rows):
        for refs, cls in _runs(lat.ids[r], h_cls[r]):
            tags = {"highway": cls}
            if r == 3:
                tags |= {"name": "Mtaa wa Bondeni Kati", "surface": "unpaved"}
            elif cls == "track":
                tags |= {"tracktype": "grade4", "surface": "dirt"}
            streets.append(Street(refs, tags))
    for c in range(cols):
        streets += [Street(refs, {"highway": cls}) for refs, cls in _runs(lat.ids[:, c], v_cls[:, c])]
    return streets


def _connectors(doc: OsmDoc, grid: Grid, lat: Informal) -> list[Street]:
    """Link the top row of the informal paths to the nearest planned-grid node uphill."""
    xy = doc.coords()
    gids = grid.ids[grid.ids >= 0]
    gxy = xy[gids - 1]
    north = valley_v(gxy[:, 0], gxy[:, 1]) > 0
    gids, gxy = gids[north], gxy[north]
    streets = []
    for k, node in enumerate(lat.ids[-1]):
        if node < 0 or k % 2:
            continue
        d = np.hypot(*(gxy - xy[node - 1]).T)
        if d.min() < 110.0:
            cls = "unclassified" if k % 6 == 0 else "footway"
            streets.append(Street([int(node), int(gids[np.argmin(d)])], {"highway": cls}))
    return streets


def _viwanda_road(doc: OsmDoc, grid: Grid, t_junction: float) -> tuple[list[Street], int]:
    """The industrial road along v = -125 m, joined to the arterial and to the south grid at both ends."""
    xj = float(arterial_point(t_junction)[0])
    x = np.arange(150.0, 2061.0, 60.0)
    x = np.sort(np.append(x[np.abs(x - xj) > 20.0], xj))
    xy = np.stack([x, river_y(x) - 125.0], axis=-1)
    junction_k = int(np.flatnonzero(x == xj)[0])
    xy[junction_k] = arterial_point(t_junction)
    ids = doc.add_nodes(xy)
    tags = {"highway": "tertiary", "name": "Barabara ya Viwanda", "surface": "asphalt"}
    streets = [Street([int(n) for n in ids], dict(tags))]
    south = grid.ids[grid.ids >= 0]
    sxy = doc.coords()[south - 1]
    south, sxy = south[valley_v(sxy[:, 0], sxy[:, 1]) < 0], sxy[valley_v(sxy[:, 0], sxy[:, 1]) < 0]
    for end in (0, len(ids) - 1):
        nearest = int(south[np.argmin(np.hypot(*(sxy - xy[end]).T))])
        streets.append(Street([int(ids[end]), nearest], dict(tags)))
    return streets, int(ids[junction_k])


def _arterial(doc: OsmDoc, grid: Grid, lat: Informal) -> tuple[list[Street], list[Street]]:
    """The primary road (grid column i = 0) across the valley with its bridge; also the industrial road."""
    col = grid.ids[:, -grid.i0]
    bank = RIVER_HALF_WIDTH_M + 8.0
    bridge_ids = [doc.add_node(*arterial_point(_t_at_v(v))) for v in (-bank, bank)]
    viwanda, junction = _viwanda_road(doc, grid, _t_at_v(-125.0))
    nodes = np.array([*col[col >= 0], *lat.ids[:, _arterial_column(lat)], *bridge_ids, junction])
    t = (doc.coords()[nodes - 1] - arterial_point(0.0)) @ np.array([-np.sin(GRID_ANGLE), np.cos(GRID_ANGLE)])
    order = [int(n) for n in nodes[np.argsort(t)]]
    b0, b1 = order.index(bridge_ids[0]), order.index(bridge_ids[1])
    streets = [
        Street(order[: b0 + 1], dict(_PRIMARY)),
        Street(order[b0 : b1 + 1], _PRIMARY | {"bridge": "yes", "layer": "1"}),
        Street(order[b1:], dict(_PRIMARY)),
    ]
    return streets, viwanda


def _footbridge(doc: OsmDoc, lat: Informal, viwanda: Street) -> list[Street]:
    """A footbridge from the riverside track (east part) to the industrial road on the south bank."""
    row0 = lat.ids[0]
    xy = doc.coords()
    k = int(np.argmin(np.where(row0 >= 0, np.abs(xy[row0 - 1, 0] - 1880.0), np.inf)))
    start = int(row0[k])
    x = float(xy[start - 1, 0])
    bank = RIVER_HALF_WIDTH_M + 4.0
    north = doc.add_node(x, float(river_y(x)) + bank)
    south = doc.add_node(x, float(river_y(x)) - bank)
    vxy = xy[np.asarray(viwanda.refs) - 1]
    end = viwanda.refs[int(np.argmin(np.hypot(*(vxy - [x, float(river_y(x)) - 125.0]).T)))]
    foot = {"highway": "footway"}
    bridge = foot | {"bridge": "yes", "layer": "1", "name": "Daraja la Waenda kwa Miguu"}
    return [Street([start, north], foot), Street([north, south], bridge), Street([south, end], dict(foot))]


def build_network(doc: OsmDoc, rng: np.random.Generator) -> Network:
    """Create every street node in ``doc`` and return the streets (not yet committed as ways)."""
    grid = _grid_nodes(doc)
    lat = _informal_lattice(doc, rng)
    streets = _grid_streets(grid)
    streets += _informal_streets(lat, rng)
    arterial, viwanda = _arterial(doc, grid, lat)
    streets += arterial + viwanda
    streets += _connectors(doc, grid, lat)
    streets += _footbridge(doc, lat, viwanda[0])
    return Network(streets=streets, grid=grid, informal=lat)


def commit_streets(doc: OsmDoc, streets: list[Street]) -> list[int]:
    """Add the streets to ``doc`` as ways; return the way ids in the same order."""
    return [doc.add_way(s.refs, s.tags) for s in streets]


def _arterial_column(lat: Informal) -> int:
    """Index of the informal lattice column that lies on the arterial."""
    art = arterial_point(np.array([_t_at_v(w) for w in _INFORMAL_ROWS_W]))
    return int(np.argmin(np.abs(lat.xy[..., 0] - art[:, :1]).max(axis=0)))
