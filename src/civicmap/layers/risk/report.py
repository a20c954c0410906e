"""A self-contained HTML impact report, in the manner of InaSAFE's analysis report.

:func:`impact_report_html` turns an :class:`~civicmap.layers.risk.impact.ImpactSummary` and
the impacted frame it came from into one HTML document: the analysis question, the general
table (features per hazard class, affected, not affected, not exposed, total), the exposure
type x hazard class table, the per-area table, population affected and displaced, minimum
needs, a map, notes and assumptions, and provenance (inputs, library versions, thresholds,
time). The page loads nothing: no scripts, no remote fonts, images or style sheets; CSS is
inline and the map is an inline SVG. The markup is well-formed XML, and every value that comes
from data (names, field values, notes, provenance) is HTML-escaped.

**Map.** Features are projected from their CRS to EPSG:3857 and then to SVG pixels (800 px
wide), simplified to half a pixel, and drawn one ``<path>`` each (polygons filled, lines
stroked, points as dots), coloured by hazard class with the classification's colours (grey:
not exposed), least severe first so that severe features stay on top. Above ``max_features``
(20,000 by default) features are not drawn one by one: each 4 px cell is filled with the most
severe class found in it (one ``<path>`` per class), which bounds the size of the page, and a
note says so. The scale bar is true at the map's centre latitude (Web Mercator stretches
distances by 1 / cos(latitude)). "© OpenStreetMap contributors" is written on the map when
the provenance names OpenStreetMap, OSM files or the ODbL.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from civicmap.crs import to_crs
from civicmap.layers.risk.hazard import HazardClassification
from civicmap.layers.risk.impact import ImpactSummary

__all__ = ["MAP_WIDTH_PX", "MAX_MAP_FEATURES", "impact_report_html"]

#: Above this many features the map shows 4 px cells instead of single features.
MAX_MAP_FEATURES = 20_000
#: Width of the SVG map in pixels (its height follows the data's extent, 240..640 px).
MAP_WIDTH_PX = 800
_CELL_PX = 4
_MARGIN_PX = 12
_GREY = "#bdbdbd"
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_OSM = re.compile(r"openstreetmap|odbl|\bosm\b", re.IGNORECASE)
_STATUS = (("affected", "Affected"), ("not_affected", "Not affected"), ("not_exposed", "Not exposed"),
           ("total", "Total"))  # fmt: skip
_UNIT_NOUN = {"count": "features", "m": "metres", "people": "people"}
_VERSIONS = ("civicmap", "geopandas", "shapely", "pyproj", "rasterio", "numpy", "pandas")
_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem auto;max-width:60rem;"
    "padding:0 1rem;color:#222;line-height:1.4}h1{font-size:1.6rem;margin-bottom:.2rem}"
    "h2{font-size:1.2rem;border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}"
    ".question{font-size:1.15rem;font-style:italic;color:#444}table{border-collapse:collapse;margin:.5rem 0 1rem}"
    "th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}td.num{text-align:right;"
    "font-variant-numeric:tabular-nums}thead th{background:#f0f0f0}tr.total td,tr.total th{font-weight:bold}"
    ".swatch{display:inline-block;width:.9em;height:.9em;margin-right:.4em;border:1px solid #666;"
    "vertical-align:middle}svg{border:1px solid #ccc;background:#fafafa;max-width:100%;height:auto}"
    "svg .f{stroke:#333;stroke-width:.3;fill-rule:evenodd}svg .s{fill:none;stroke-width:2}"
    "svg .d{fill:none;stroke-width:5;stroke-linecap:round}svg text{font-size:11px;fill:#222}"
    "footer{margin-top:2rem;font-size:.85rem;color:#666}"
)


def impact_report_html(
    summary: ImpactSummary,
    impacted: gpd.GeoDataFrame | pd.DataFrame | None,
    *,
    title: str,
    classification: HazardClassification | None,
    notes: Sequence[str] = (),
    provenance: Mapping[str, Any] | None = None,
    question: str | None = None,
    max_features: int = MAX_MAP_FEATURES,
) -> str:
    """The report as one HTML string (UTF-8 text; see the module docstring for what it holds).

    ``impacted`` is the frame ``summary`` was made from (any CRS; ``None`` or a table without
    geometry leaves the map out);
    ``classification`` the one used (``None`` for :func:`~civicmap.layers.risk.impact.combine_hazards`
    output: the map then shows affected / not affected / not exposed). ``provenance`` (inputs,
    licences, thresholds, the analyst's words) is printed key by key. ``question`` replaces the
    analysis question made from the classification and the unit.
    """
    prov = dict(provenance or {})
    unit = str(summary.provenance.get("unit", "count"))
    drawn, map_notes = _map_section(impacted, classification, prov, max_features)
    body = [
        f"<header><h1>{_e(title)}</h1><p class='question'>{_e(question or _question(classification, unit))}</p>"
        "</header>",
        _general_section(summary, classification, unit),
        _grouped_section("Exposure type", "exposure type", summary.by_exposure_type, summary, classification, unit),
        _grouped_section("Aggregation area", "area", summary.by_aggregation, summary, classification, unit),
        _population_section(summary),
        _needs_section(summary),
        drawn,
        _notes_section(summary, classification, [*map_notes, *notes]),
        _provenance_section(prov, summary, classification),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'/>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'/>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n" + "\n".join(b for b in body if b) + "\n"
        f"<footer>Made by civicmap {_e(_version('civicmap'))}. Nothing on this page is loaded from the network."
        "</footer>\n</body></html>\n"
    )


def _e(value: Any) -> str:
    """HTML-escape anything (quotes too: safe in text and in attribute values)."""
    return html.escape(str(value), quote=True)


def _colour(value: Any) -> str:
    return str(value) if _COLOUR.match(str(value)) else _GREY


def _num(value: float, *, up: bool = False) -> str:
    """A table cell: the exact value in ``data-value``, shown with thousands separators, whole units."""
    v = float(value)
    if not math.isfinite(v):
        return f"<td class='num' data-value='{_e(v)}'>–</td>"
    shown = math.ceil(round(v, 6)) if up else round(v)
    return f"<td class='num' data-value='{_e(repr(v) if v != int(v) else int(v))}'>{shown:,}</td>"


def _question(classification: HazardClassification | None, unit: str) -> str:
    noun = _UNIT_NOUN.get(unit, unit)
    if classification is None:
        return f"In the event of these combined hazards, how many {noun} might be affected?"
    hazard = classification.description.rstrip(".") or classification.name
    return f"In the event of a hazard classed by {classification.name} ({hazard}), how many {noun} might be affected?"


def _class_keys(classification: HazardClassification | None) -> list[tuple[str, str, str]]:
    """(key, label, colour) of each class column."""
    if classification is None:
        return []
    return [(c.name, c.name.replace("_", " "), _colour(c.colour)) for c in classification.classes]


def _label(text: str, colour: str | None = None) -> str:
    swatch = f"<span class='swatch' style='background:{_e(colour)}'></span>" if colour else ""
    return f"{swatch}{_e(text)}"


def _general_section(summary: ImpactSummary, classification: HazardClassification | None, unit: str) -> str:
    rows = []
    for c in classification.classes if classification is not None else ():
        flag = "yes" if c.affected else "no"
        rows.append(f"<tr><th>{_label(c.name, _colour(c.colour))}</th><td>{flag}</td>"
                    f"{_num(summary.totals.get(c.name, 0))}</tr>")  # fmt: skip
    for key, label in _STATUS:
        css = " class='total'" if key == "total" else ""
        rows.append(f"<tr{css}><th>{_e(label)}</th><td></td>{_num(summary.totals.get(key, 0))}</tr>")
    return (
        "<section id='general'><h2>General impact</h2><table id='general-table'>"
        f"<thead><tr><th>Hazard class</th><th>Counts as affected</th><th>{_e(_UNIT_NOUN.get(unit, unit))}</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _grouped_section(
    heading: str,
    what: str,
    table: Mapping[str, Mapping[str, float]],
    summary: ImpactSummary,
    classification: HazardClassification | None,
    unit: str,
) -> str:
    if not table:
        return ""
    keys: list[tuple[str, str, str | None]] = [*_class_keys(classification)]
    keys += [(k, label, None) for k, label in _STATUS]
    head = "".join(f"<th>{_label(label, colour)}</th>" for _, label, colour in keys)
    body = [f"<tr><th>{_e(name)}</th>{''.join(_num(row.get(k, 0)) for k, _, _ in keys)}</tr>"
            for name, row in sorted(table.items())]  # fmt: skip
    body.append(f"<tr class='total'><th>All</th>{''.join(_num(summary.totals.get(k, 0)) for k, _, _ in keys)}</tr>")
    ident = "by-" + what.replace(" ", "-")
    return (
        f"<section id='{ident}'><h2>Impact by {_e(what)} ({_e(_UNIT_NOUN.get(unit, unit))})</h2>"
        f"<table id='{ident}-table'><thead><tr><th>{_e(heading)}</th>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></section>"
    )


def _population_section(summary: ImpactSummary) -> str:
    pop = summary.population
    if pop is None:
        return ""
    rows = [f"<tr><th>{_e(name)}</th>{_num(v)}</tr>" for name, v in pop.by_class.items()]
    rows += [f"<tr><th>{_e(label)}</th>{_num(getattr(pop, key))}</tr>" for key, label in _STATUS]
    rows.append(f"<tr class='total'><th>Displaced</th>{_num(pop.displaced, up=True)}</tr>")
    return (
        "<section id='population'><h2>Population affected and displaced</h2><table id='population-table'>"
        f"<thead><tr><th>Hazard class / status</th><th>people</th></tr></thead><tbody>{''.join(rows)}</tbody>"
        "</table></section>"
    )


def _needs_section(summary: ImpactSummary) -> str:
    if not summary.minimum_needs:
        return ""
    profile = summary.provenance.get("needs_profile") or {}
    rows = [f"<tr><th>{_e(key.replace('_', ' '))}</th>{_num(q)}<td>{_e(u)}</td><td>{_e(f)}</td></tr>"
            for key, (q, u, f) in summary.minimum_needs.items()]  # fmt: skip
    source = f"<p>Profile {_e(profile.get('name', ''))}: {_e(profile.get('source', ''))}</p>" if profile else ""
    return (
        "<section id='needs'><h2>Minimum needs of displaced people</h2><table id='needs-table'><thead><tr>"
        f"<th>Item</th><th>Quantity</th><th>Unit</th><th>Frequency</th></tr></thead><tbody>{''.join(rows)}</tbody>"
        f"</table>{source}</section>"
    )


def _notes_section(summary: ImpactSummary, classification: HazardClassification | None, notes: Sequence[str]) -> str:
    items = []
    if classification is not None:
        affected = [c.name for c in classification.classes if c.affected]
        items.append(f"Interval rule: a class holds a value x when lower &lt; x &lt;= upper; the first class also "
                     f"holds its lower bound (units: {_e(classification.unit)}).")  # fmt: skip
        items.append(f"Affected means exposed in a class marked affected ({_e(', '.join(affected) or 'none')}); "
                     "not affected means inside a hazard zone of another class.")  # fmt: skip
    items += [
        "Not exposed means outside every hazard zone, on hazard raster nodata or outside the hazard raster; "
        "total = affected + not affected + not exposed.",
        "Rounding: counts are exact; metres and people are shown rounded to whole units (each cell keeps the "
        "exact value in its data-value attribute). Displaced people and minimum needs are rounded up, so as not "
        "to represent people as fractions.",
    ]
    items += [_e(n) for n in (*summary.provenance.get("notes", ()), *notes)]
    return (
        "<section id='notes'><h2>Notes and assumptions</h2><ul>"
        + "".join(f"<li>{i}</li>" for i in items)
        + ("</ul></section>")
    )


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _provenance_section(
    prov: Mapping[str, Any], summary: ImpactSummary, classification: HazardClassification | None
) -> str:
    def text(v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False, sort_keys=True)

    inputs = "".join(f"<tr><th>{_e(k)}</th><td>{_e(text(v))}</td></tr>" for k, v in prov.items())
    versions = "".join(f"<tr><th>{_e(p)}</th><td>{_e(_version(p))}</td></tr>" for p in _VERSIONS)
    limits = ""
    if classification is not None:
        rows = "".join(
            f"<tr><th>{_label(c.name, _colour(c.colour))}</th><td>{_e(c.lower)}</td><td>{_e(c.upper)}</td>"
            f"<td>{'yes' if c.affected else 'no'}</td><td>{_e(c.displacement_rate)}</td></tr>"
            for c in classification.classes
        )
        limits = (
            f"<h3>Thresholds: {_e(classification.name)} ({_e(classification.unit)})</h3><table id='thresholds'>"
            "<thead><tr><th>Class</th><th>Lower (excluded)</th><th>Upper (included)</th><th>Affected</th>"
            f"<th>Displacement rate</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    made = datetime.now(UTC).isoformat(timespec="seconds")
    return (
        "<section id='provenance'><h2>Provenance</h2>"
        + (f"<h3>Inputs</h3><table id='inputs'><tbody>{inputs}</tbody></table>" if inputs else "")
        + f"{limits}<h3>Software</h3><table id='versions'><tbody>{versions}</tbody></table>"
        + f"<p>Unit of the tables: {_e(summary.provenance.get('unit', 'count'))}. Report made {_e(made)} (UTC).</p>"
        + "</section>"
    )


def _map_codes(
    impacted: gpd.GeoDataFrame, classification: HazardClassification | None
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Colour code per feature (0 = not exposed) and the (label, colour) of each code."""
    if classification is not None and "hazard_level" in impacted.columns:
        levels = impacted["hazard_level"].to_numpy(dtype=np.int64)
        palette = [("not exposed", _GREY)] + [(c.name, _colour(c.colour)) for c in classification.classes]
        return np.clip(levels + 1, 0, len(palette) - 1), palette
    exposed = impacted["exposed"].to_numpy(dtype=bool)
    affected = impacted["affected"].to_numpy(dtype=bool) & exposed
    palette = [("not exposed", _GREY), ("not affected", "#fee08b"), ("affected", "#d73027")]
    return exposed.astype(np.int64) + affected, palette


class _View:
    """EPSG:3857 metres -> SVG pixels (y down), fitted to the data's bounds."""

    def __init__(self, bounds: np.ndarray) -> None:
        minx, miny, maxx, maxy = (float(v) for v in bounds)
        dx, dy = max(maxx - minx, 1.0), max(maxy - miny, 1.0)
        inner = MAP_WIDTH_PX - 2 * _MARGIN_PX
        scale = inner / dx
        if dy * scale > 640 - 2 * _MARGIN_PX:
            scale = (640 - 2 * _MARGIN_PX) / dy
        self.height = max(240, round(dy * scale) + 2 * _MARGIN_PX)
        self.scale, self.minx, self.maxy = scale, minx, maxy
        self.ox = _MARGIN_PX + (inner - (maxx - minx) * scale) / 2
        self.oy = (self.height - (maxy - miny) * scale) / 2
        centre_y = (miny + maxy) / 2
        self.lat = math.degrees(2 * math.atan(math.exp(centre_y / 6378137.0)) - math.pi / 2)

    def to_px(self, xy: np.ndarray) -> np.ndarray:
        out = np.empty_like(xy)
        out[:, 0] = self.ox + (xy[:, 0] - self.minx) * self.scale
        out[:, 1] = self.oy + (self.maxy - xy[:, 1]) * self.scale
        return out

    def scale_bar(self) -> tuple[float, str]:
        """Length in pixels and label of a round ground distance of about a fifth of the width."""
        metres_per_px = math.cos(math.radians(self.lat)) / self.scale
        target = MAP_WIDTH_PX / 5 * metres_per_px
        step = 10 ** math.floor(math.log10(target))
        nice = max(m * step for m in (1, 2, 5) if m * step <= target)
        label = f"{nice / 1000:g} km" if nice >= 1000 else f"{nice:g} m"
        return nice / metres_per_px, label


def _map_section(
    impacted: gpd.GeoDataFrame | pd.DataFrame | None,
    classification: HazardClassification | None,
    prov: Mapping[str, Any],
    max_features: int,
) -> tuple[str, list[str]]:
    """The map section and the notes it adds (what was drawn, simplified, aggregated or left out)."""
    if impacted is None:
        return "", []
    if not isinstance(impacted, gpd.GeoDataFrame):
        return "", ["The impacted table has no geometry: no map."]
    codes, palette = _map_codes(impacted, classification)
    frame = to_crs(impacted[[impacted.geometry.name]], "EPSG:3857", name="impacted")
    geoms = np.asarray(frame.geometry.values, dtype=object)
    usable = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    notes = [f"{int((~usable).sum())} features without geometry are not on the map"] if (~usable).any() else []
    geoms, codes = geoms[usable], codes[usable]
    if not len(geoms):
        return "<section id='map'><h2>Map</h2><p>No features to draw.</p></section>", notes
    view = _View(shapely.total_bounds(geoms))
    px = shapely.transform(geoms, view.to_px)
    if len(px) > max_features:
        paths, drawn = _cell_paths(px, codes)
        notes.append(
            f"Map: {len(px):,} features are more than the {max_features:,} drawn one by one; each {_CELL_PX} px "
            f"cell shows the most severe class among the features in it ({drawn} paths)."
        )
    else:
        paths, drawn = _feature_paths(shapely.simplify(px, 0.5), codes)
        notes.append(f"Map: {drawn:,} features drawn one by one, simplified to half a pixel (EPSG:3857).")
    svg = _svg(paths, palette, view, _attribution(prov))
    return f"<section id='map'><h2>Map</h2>{svg}</section>", notes


def _feature_paths(geoms: np.ndarray, codes: np.ndarray) -> tuple[str, int]:
    """One ``<path>`` per feature, least severe first; vectorised over coordinates."""
    order = np.argsort(codes, kind="stable")
    geoms, codes = geoms[order], codes[order]
    parts, feat = shapely.get_parts(geoms, return_index=True)
    ptype = shapely.get_type_id(parts)
    poly = ptype == shapely.GeometryType.POLYGON
    rings, ring_of = shapely.get_rings(parts[poly], return_index=True)
    pieces = np.concatenate([rings, parts[~poly]])
    piece_feat = np.concatenate([feat[poly][ring_of], feat[~poly]])
    point_kind = np.where(ptype[~poly] == shapely.GeometryType.POINT, "h0", "")
    piece_end = np.concatenate([np.full(len(rings), "Z", dtype=object), point_kind.astype(object)])
    by_feat = np.argsort(piece_feat, kind="stable")
    pieces, piece_feat, piece_end = pieces[by_feat], piece_feat[by_feat], piece_end[by_feat]
    coords, piece = shapely.get_coordinates(pieces, return_index=True)
    if not len(coords):
        return "", 0
    xy = np.char.mod("%.1f", np.round(coords, 1))
    token = np.char.add(np.char.add(xy[:, 0], ","), xy[:, 1]).astype(object)
    first = np.r_[True, piece[1:] != piece[:-1]]
    last = np.r_[piece[1:] != piece[:-1], True]
    token = np.where(first, "M" + token, token)
    token = np.where(last, token + piece_end[piece], token)
    f = piece_feat[piece]
    f_first = np.r_[True, f[1:] != f[:-1]]
    f_last = np.r_[f[1:] != f[:-1], True]
    kinds = np.array(["f" if t in (3, 6) else "d" if t in (0, 4) else "s" for t in range(8)], dtype=object)
    heads = np.char.add(np.char.add("<path class='c", codes.astype(str)), " ").astype(object)
    heads = heads + kinds[np.clip(shapely.get_type_id(geoms), 0, 7)] + "' d='"
    token = np.where(f_first, heads[f] + token, " " + token)
    token = np.where(f_last, token + "'/>\n", token)
    return "".join(token.tolist()), int(f_first.sum())


def _cell_paths(geoms: np.ndarray, codes: np.ndarray) -> tuple[str, int]:
    """One ``<path>`` per colour code: the 4 px cells whose most severe feature has that code."""
    xy = shapely.get_coordinates(shapely.point_on_surface(geoms))
    cells = np.floor(xy / _CELL_PX).astype(np.int64)
    key = cells[:, 0] * 1_000_000 + cells[:, 1]
    order = np.lexsort((codes, key))
    key, codes, cells = key[order], codes[order], cells[order]
    top = np.r_[key[1:] != key[:-1], True]  # last of each cell = its most severe code
    cells, codes = cells[top], codes[top]
    out = []
    for code in np.unique(codes):  # at most one path per class
        c = cells[codes == code] * _CELL_PX
        d = np.char.add(np.char.add(np.char.add("M", c[:, 0].astype(str)), ","), c[:, 1].astype(str))
        out.append(f"<path class='c{code} k' d='{''.join(np.char.add(d, f'h{_CELL_PX}v{_CELL_PX}h-{_CELL_PX}z'))}'/>\n")
    return "".join(out), len(out)


def _attribution(prov: Mapping[str, Any]) -> str:
    own = str(prov.get("attribution", "") or "")
    osm = bool(_OSM.search(json.dumps(prov, default=str)))
    parts = [*(["© OpenStreetMap contributors"] if osm and "openstreetmap" not in own.lower() else []), own]
    return " · ".join(p for p in parts if p)


def _svg(paths: str, palette: list[tuple[str, str]], view: _View, attribution: str) -> str:
    """The SVG: styles, features, north arrow, scale bar, legend and attribution."""
    w, h = MAP_WIDTH_PX, view.height
    rows = math.ceil(len(palette) / 5)
    total = h + 24 + 20 * rows + 18
    styles = "".join(f".c{i}.f,.c{i}.k{{fill:{c}}}.c{i}.s,.c{i}.d{{stroke:{c}}}" for i, (_, c) in enumerate(palette))
    bar_px, bar_label = view.scale_bar()
    legend = "".join(
        f"<rect x='{12 + 155 * (i % 5)}' y='{h + 30 + 20 * (i // 5)}' width='12' height='12' fill='{c}' "
        f"stroke='#333' stroke-width='0.5'/><text x='{30 + 155 * (i % 5)}' y='{h + 40 + 20 * (i // 5)}'>{_e(n)}</text>"
        for i, (n, c) in enumerate(palette)
    )
    return (
        f"<svg id='impact-map' viewBox='0 0 {w} {total}' width='{w}' height='{total}' role='img' "
        f"aria-label='Map of impacted features by hazard class'><style>{styles}</style>"
        f"<rect x='0' y='0' width='{w}' height='{h}' fill='#ffffff'/><g id='features'>\n{paths}</g>"
        f"<g id='north-arrow'><polygon points='{w - 28},{42} {w - 20},{18} {w - 12},{42} {w - 20},{36}' "
        f"fill='#222'/><text x='{w - 24}' y='14'>N</text></g>"
        f"<g id='scale-bar'><rect x='12' y='{h + 8}' width='{bar_px:.1f}' height='4' fill='#222'/>"
        f"<text x='{18 + bar_px:.1f}' y='{h + 15}'>{_e(bar_label)} (true at latitude {view.lat:.2f}°)</text></g>"
        f"<g id='legend'>{legend}</g>"
        f"<text id='attribution' x='{w - 8}' y='{total - 6}' text-anchor='end'>{_e(attribution)}</text></svg>"
    )
