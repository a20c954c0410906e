"""GPS trace runs: cleaning, dwell (stay-point) detection and grouping by geometry. Metric CRS, metres, seconds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

__all__ = ["clean_runs", "dwell_events", "group_runs"]

_BIG = 1e9


def clean_runs(
    pts: pd.DataFrame,
    *,
    max_speed_kmh: float,
    spike_m: float,
    split_gap_s: float,
    min_points: int,
    min_length_m: float,
) -> tuple[pd.DataFrame, list[str]]:
    """Clean points (columns trace_id, seq, t [s], x, y [m]) and cut them into runs (``run_id``).

    Steps: points out of recorded order are re-sorted by time (reported); repeated
    timestamps keep their first point; spikes are removed in up to three passes: points
    reached and left faster than ``max_speed_kmh``, or out-and-back jumps (more than
    ``spike_m`` away from both neighbours, which are within half that distance of each
    other: catches spikes while the vehicle stands still, at any sampling rate); a silence longer than
    ``split_gap_s`` starts a new run; runs shorter than ``min_points`` points or
    ``min_length_m`` are dropped. Every removal is counted in the returned problems.
    """
    problems: list[str] = []
    unordered = (
        pts.sort_values(["trace_id", "seq"]).groupby("trace_id")["t"].apply(lambda s: bool((s.diff() < 0).any()))
    )
    for trace in unordered[unordered].index:
        problems.append(f"{trace}: points not in time order; sorted by time")
    pts = pts.sort_values(["trace_id", "t"], kind="stable")
    dup = pts.duplicated(["trace_id", "t"])
    if dup.any():
        problems.append(f"{int(dup.sum())} points with a repeated timestamp dropped")
    pts = pts[~dup].reset_index(drop=True)
    pts, spikes = _drop_spikes(pts, max_speed_kmh / 3.6, spike_m)
    if spikes:
        problems.append(f"{spikes} spike points removed (faster than {max_speed_kmh:g} km/h or out-and-back jumps)")
    gap = pts["t"].diff().gt(split_gap_s) & pts["trace_id"].eq(pts["trace_id"].shift())
    part = gap.astype(int).groupby(pts["trace_id"]).cumsum()
    pts["run_id"] = pts["trace_id"] + np.where(part > 0, "/" + part.astype(str), "")
    if gap.any():
        problems.append(f"{int(gap.sum())} gaps longer than {split_gap_s:g} s split traces into separate runs")
    step = pd.Series(np.hypot(pts["x"].diff(), pts["y"].diff()), index=pts.index)
    step = step.where(pts["run_id"].eq(pts["run_id"].shift()), 0.0)
    stats = pd.DataFrame({"n": pts.groupby("run_id").size(), "m": step.groupby(pts["run_id"]).sum()})
    short = stats.index[(stats["n"] < min_points) | (stats["m"] < min_length_m)]
    for run in short:
        problems.append(
            f"{run}: run dropped ({stats.loc[run, 'n']} points, {stats.loc[run, 'm']:.0f} m; "
            f"need >= {min_points} points and >= {min_length_m:g} m)"
        )
    return pts[~pts["run_id"].isin(short)].reset_index(drop=True), problems


def _drop_spikes(pts: pd.DataFrame, vmax: float, spike_m: float) -> tuple[pd.DataFrame, int]:
    removed = 0
    for _ in range(3):
        same_prev = pts["trace_id"].eq(pts["trace_id"].shift())
        same_next = pts["trace_id"].eq(pts["trace_id"].shift(-1))
        d_in = np.hypot(pts["x"].diff(), pts["y"].diff())
        d_out = np.hypot(pts["x"].diff(-1), pts["y"].diff(-1))
        d_skip = np.hypot(pts["x"].shift(-1) - pts["x"].shift(), pts["y"].shift(-1) - pts["y"].shift())
        fast_in = same_prev & (d_in / pts["t"].diff() > vmax)
        fast_out = same_next & (d_out / -pts["t"].diff(-1) > vmax)
        jump = same_prev & same_next & (d_in > spike_m) & (d_out > spike_m) & (d_skip < 0.5 * np.minimum(d_in, d_out))
        spike = (fast_in & fast_out) | (fast_in & ~same_next) | (fast_out & ~same_prev) | jump
        if not spike.any():
            break
        removed += int(spike.sum())
        pts = pts[~spike].reset_index(drop=True)
    return pts, removed


def dwell_events(pts: pd.DataFrame, *, radius_m: float, min_dwell_s: float) -> pd.DataFrame:
    """Stay points: stretches of a run that stay within ``radius_m`` of their first point for >= ``min_dwell_s``.

    A stay of 20 m over 15 s bounds the mean speed to < 4.8 km/h while tolerating 3-6 m GPS
    noise, which point-to-point speeds (< 2 km/h) do not. The first and last point of every
    run are added as terminal events. Returns one row per event: run_id, x, y, t_start, t_end,
    terminal.
    """
    run_codes, _ = pd.factorize(pts["run_id"])
    key = pts["t"].to_numpy() + run_codes * _BIG
    x, y, n = pts["x"].to_numpy(), pts["y"].to_numpy(), len(pts)
    end = np.searchsorted(key, key + min_dwell_s, side="left")
    valid = (end < n) & (run_codes[np.minimum(end, n - 1)] == run_codes)
    width = int((end - np.arange(n))[valid].max()) if valid.any() else 0
    spread = np.zeros(n)
    for k in range(1, width + 1):
        j = np.minimum(np.arange(n) + k, n - 1)
        inside = (np.arange(n) + k) <= end
        spread = np.maximum(spread, np.where(inside, np.hypot(x[j] - x, y[j] - y), 0.0))
    start = valid & (spread <= radius_m)
    mark = np.zeros(n + 1, dtype=int)
    np.add.at(mark, np.flatnonzero(start), 1)
    np.add.at(mark, end[start] + 1, -1)
    dwelling = np.cumsum(mark)[:n] > 0
    label = np.cumsum(np.r_[True, (dwelling[1:] != dwelling[:-1]) | (run_codes[1:] != run_codes[:-1])])
    frame = pd.DataFrame({"run_id": pts["run_id"], "x": x, "y": y, "t": pts["t"], "label": label})[dwelling]
    events = frame.groupby("label").agg(
        run_id=("run_id", "first"), x=("x", "median"), y=("y", "median"), t_start=("t", "min"), t_end=("t", "max")
    )
    ends = pts.groupby("run_id").nth([0, -1])
    terminals = pd.DataFrame(
        {"run_id": ends["run_id"], "x": ends["x"], "y": ends["y"], "t_start": ends["t"], "t_end": ends["t"]}
    )
    events["terminal"], terminals["terminal"] = False, True
    return pd.concat([events, terminals], ignore_index=True)


def group_runs(lines: pd.Series, *, distance_m: float) -> pd.DataFrame:
    """Group runs (index run_id, values metric LineStrings) into lines and direction-aware patterns.

    Distance between two runs = a robust Hausdorff distance: the 90th percentile of the
    distances from one run's vertices (densified to 10 m steps) to the other run's line, taken
    both ways (the maximum of the two), so that a leftover GPS spike cannot split a group.
    Runs travel in the same direction when joining start-to-start and end-to-end is
    shorter than start-to-end. Complete-linkage clustering with threshold ``distance_m`` gives
    ``line`` (direction ignored) and ``pattern`` (only same-direction runs can join).
    """
    geoms = lines.to_numpy()
    if len(geoms) == 1:
        return pd.DataFrame({"line": [1], "pattern": [1]}, index=lines.index)
    hausdorff = _robust_hausdorff(geoms)
    first, last = shapely.get_point(geoms, 0), shapely.get_point(geoms, -1)
    same = shapely.distance(first[:, None], first[None, :]) + shapely.distance(last[:, None], last[None, :])
    cross = shapely.distance(first[:, None], last[None, :]) + shapely.distance(last[:, None], first[None, :])
    directed = np.where(same <= cross, hausdorff, _BIG)
    out = pd.DataFrame(index=lines.index)
    for name, matrix in (("line", hausdorff), ("pattern", directed)):
        sym = np.maximum(matrix, matrix.T)
        np.fill_diagonal(sym, 0.0)
        out[name] = fcluster(linkage(squareform(sym, checks=False), "complete"), distance_m, criterion="distance")
    return out


def _robust_hausdorff(geoms: np.ndarray, *, step_m: float = 10.0, quantile: float = 0.9) -> np.ndarray:
    dense = shapely.segmentize(geoms, step_m)
    coords = shapely.get_coordinates(dense)
    counts = np.bincount(shapely.get_coordinates(dense, return_index=True)[1], minlength=len(geoms))
    points = shapely.points(coords)
    starts = np.r_[0, np.cumsum(counts)]
    out = np.zeros((len(geoms), len(geoms)))
    for j, line in enumerate(geoms):  # one vectorised distance call per run
        d = shapely.distance(points, line)
        out[:, j] = [np.quantile(d[starts[i] : starts[i + 1]], quantile) for i in range(len(geoms))]
    return np.maximum(out, out.T)
