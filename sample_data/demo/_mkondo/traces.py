"""GPS traces (GPX 1.1) of the three daladala lines, each driven twice in each direction.

Vehicles follow the route's street path (local metres) with a trapezoidal speed profile
between the stops they serve (10-40 km/h), dwell 20-90 s at stops, skip some stops, and are
recorded every 1-5 s with correlated GPS noise of a few metres, a few spikes and, on one
run, a signal gap. Times are UTC (local time is UTC+3); positions EPSG:4326, 7 decimals.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .frame import to_lonlat, to_utm
from .transit import Direction, Line

__all__ = ["Trace", "make_traces", "write_gpx"]

_ACCEL = 0.9  # m/s²
_DAY = dt.datetime(2026, 11, 4, tzinfo=dt.UTC)
_STARTS_LOCAL_H = {"D1": [6.17, 9.67, 13.08, 17.33], "D2": [6.75, 10.5, 14.25, 18.5], "D3": [7.33, 11.83, 15.67, 19.08]}
_GAP_RUN = ("D2", 3)


@dataclass
class Trace:
    """One recorded run: UTC times (s since midnight UTC), positions (local m) and elevations (m)."""

    ref: str
    run: int
    direction: int
    t_s: np.ndarray
    xy: np.ndarray
    ele_m: np.ndarray
    spikes: int
    gap_s: float

    @property
    def filename(self) -> str:
        """File name of the run: ``route_<ref>_run<k>.gpx``."""
        return f"route_{self.ref}_run{self.run}.gpx"


def _segment(length_m: float, v_max: float) -> np.ndarray:
    """Distance (m) covered at each whole second of a stop-to-stop trapezoidal speed profile."""
    d_acc = v_max**2 / (2 * _ACCEL)
    if length_m < 2 * d_acc:
        v_max = float(np.sqrt(_ACCEL * length_m))
        d_acc = length_m / 2
    t_acc = v_max / _ACCEL
    total = 2 * t_acc + (length_m - 2 * d_acc) / v_max
    t = np.arange(0.0, total, 1.0)
    up = 0.5 * _ACCEL * t**2
    cruise = d_acc + v_max * (t - t_acc)
    down = length_m - 0.5 * _ACCEL * (total - t) ** 2
    return np.where(t < t_acc, up, np.where(t <= total - t_acc, cruise, down))


def _distance_profile(d: Direction, rng: np.random.Generator) -> np.ndarray:
    """Distance along the path (m) at each second of the run, dwells included."""
    dist = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(d.xy, axis=0).T))])
    stops = dist[d.stop_index]
    served = [stops[0], *(s for s in stops[1:-1] if rng.random() > 0.2), stops[-1]]
    parts = [np.full(int(rng.integers(20, 60)), 0.0)]
    for a, b in itertools.pairwise(served):
        parts.append(a + _segment(b - a, rng.uniform(10.0, 40.0) / 3.6))
        parts.append(np.full(int(rng.integers(20, 91)), b))
    return np.concatenate(parts)


def _noise(rng: np.random.Generator, n: int, sigma_m: float) -> np.ndarray:
    kernel = np.hanning(15)
    kernel /= np.sqrt((kernel**2).sum())
    corr = np.stack([np.convolve(rng.normal(0, 1, n + 14), kernel, mode="valid") for _ in range(2)], 1)
    return sigma_m * corr + rng.normal(0.0, 1.2, (n, 2))


def _run(line: Line, run: int, rng: np.random.Generator, dem: tuple) -> Trace:
    direction = (run - 1) % 2
    d = line.directions[direction]
    s = _distance_profile(d, rng)
    step = int(rng.choice([1, 2, 3, 5]))
    s = s[::step]
    t = _STARTS_LOCAL_H[line.ref][run - 1] * 3600 - 3 * 3600 + step * np.arange(len(s))
    dist = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(d.xy, axis=0).T))])
    true = np.stack([np.interp(s, dist, d.xy[:, 0]), np.interp(s, dist, d.xy[:, 1])], 1)
    xy = true + _noise(rng, len(s), rng.uniform(3.0, 6.0))
    n_spikes = int(rng.integers(0, 3))
    spike_at = rng.choice(np.arange(5, len(s) - 5), n_spikes, replace=False)
    xy[spike_at] += rng.uniform(40.0, 150.0, (n_spikes, 1)) * rng.choice([-1.0, 1.0], (n_spikes, 2))
    z, transform = dem
    utm = to_utm(true)
    col, row = (np.floor(a).astype(int) for a in ~transform * (utm[:, 0], utm[:, 1]))
    ele = z[np.clip(row, 0, z.shape[0] - 1), np.clip(col, 0, z.shape[1] - 1)] + rng.normal(0.0, 4.0, len(s))
    keep = np.ones(len(s), dtype=bool)
    gap = 0.0
    if (line.ref, run) == _GAP_RUN:
        mid = len(s) // 2
        keep[mid : mid + int(100 / step)] = False
        gap = float(t[mid + int(100 / step)] - t[mid - 1])
    return Trace(line.ref, run, direction, t[keep], xy[keep], ele[keep], n_spikes, gap)


def make_traces(lines: list[Line], rng: np.random.Generator, dem: tuple) -> list[Trace]:
    """Four runs per line (odd runs outbound, even runs back); ``dem`` is (elevation array, transform)."""
    return [_run(line, run, rng, dem) for line in lines for run in range(1, 5)]


def write_gpx(trace: Trace, folder: Path) -> None:
    """Write one run as GPX 1.1 (one track, one segment; UTC ISO-8601 times)."""
    lon, lat = to_lonlat(trace.xy)
    times = [(_DAY + dt.timedelta(seconds=float(s))).strftime("%Y-%m-%dT%H:%M:%SZ") for s in trace.t_s]
    pts = [
        f'      <trkpt lat="{a:.7f}" lon="{o:.7f}"><ele>{e:.1f}</ele><time>{tm}</time></trkpt>'
        for a, o, e, tm in zip(lat, lon, trace.ele_m, times, strict=True)
    ]
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<gpx version="1.1" creator="civicmap demo generator" xmlns="http://www.topografix.com/GPX/1/1" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://www.topografix.com/GPX/1/1 http://www.topografix.com/GPX/1/1/gpx.xsd">',
        f"  <metadata><name>Daladala {trace.ref} run {trace.run}</name><time>{times[0]}</time></metadata>",
        f"  <trk><name>Daladala {trace.ref} run {trace.run}</name><type>bus</type>",
        "    <trkseg>",
        *pts,
        "    </trkseg>",
        "  </trk>",
        "</gpx>",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / trace.filename).write_text("\n".join(lines) + "\n", encoding="utf-8")
