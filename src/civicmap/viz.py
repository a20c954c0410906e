"""Folium maps for notebooks: any GeoDataFrame, and a workspace's risk, settlement and transit maps.

>>> import civicmap as cm
>>> from civicmap.viz import explore, risk_map
>>> ws = cm.open_workspace("sample_data/demo")                    # doctest: +SKIP
>>> explore(ws.read_layer("settlement_cells"), "informality_index")  # doctest: +SKIP
>>> risk_map(ws)                                                  # doctest: +SKIP

Every function returns a :class:`folium.Map` (it displays itself in Jupyter through
``_repr_html_``; ``m.save("map.html")`` writes a file).

* **CRS**: input layers may be in any CRS (it must be set); they are drawn in EPSG:4326
  (longitude, latitude; coordinates rounded to 6 decimals, about 0.1 m) over Web Mercator tiles.
* **Offline**: building a map needs no network. Basemap tiles are fetched later by the
  browser that shows the map; ``tiles=None`` draws no basemap and requests no tile at all.
  Folium references Leaflet's JavaScript and CSS on CDNs; :func:`offline` inlines them (from
  the npm package that ``scripts/setup`` installs), so that the map, in a notebook or saved as
  HTML, loads nothing from the network: for field laptops without internet.
* **Size**: inline GeoJSON beyond some tens of thousands of features freezes notebooks
  (python-visualization/folium#787). Above ``max_features`` features (or 50 coordinates per
  allowed feature) shapes are simplified to about 1/1000 of the layer's extent; if still too
  many, a random sample (seed 0) of ``max_features`` is drawn. Both are logged as a warning and
  written in a note on the map. Serve big layers as tiles (``civicmap serve``) instead.
* **Safety**: every value, column name, legend label and attribution shown is HTML-escaped
  here (folium inserts popup values as raw HTML); long texts are cut at 300 characters.
* **Privacy**: columns listed in ``hide`` are never written into the map (not just not shown);
  :func:`explore_layer` and the workspace maps add the store's ``private_fields`` themselves.
"""

from __future__ import annotations

import base64
import html
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import xyzservices
from branca.element import MacroElement, Template

from civicmap.crs import require_crs, to_wgs84
from civicmap.errors import ConfigError, InputError, NotFoundError
from civicmap.impact import PRESETS

if TYPE_CHECKING:
    from civicmap.workspace import Workspace

__all__ = [
    "DEFAULT_PALETTE",
    "INFORMALITY_COLOURS",
    "MISSING_COLOUR",
    "NUMERIC_RAMP",
    "OSM_ATTRIBUTION",
    "RISK_COLOURS",
    "Legend",
    "explore",
    "explore_layer",
    "offline",
    "risk_map",
    "settlement_map",
    "transit_map",
]

log = logging.getLogger(__name__)

Tiles: TypeAlias = str | xyzservices.TileProvider | None
Colours: TypeAlias = Mapping[Any, str] | Sequence[str] | str | None
#: ODbL credit for layers derived from OpenStreetMap (CONVENTIONS A11).
OSM_ATTRIBUTION = "Map data © OpenStreetMap contributors (ODbL)"
#: Building risk classes (``civicmap.layers.risk.RISK_CLASSES``), green to red.
RISK_COLOURS: Mapping[str, str] = MappingProxyType(
    {"very_low": "#1a9850", "low": "#a6d96a", "medium": "#fee08b", "high": "#fc8d59", "very_high": "#d73027"}
)
#: Informality index classes (``civicmap.layers.settlements.index.INDEX_CLASSES``).
INFORMALITY_COLOURS: Mapping[str, str] = MappingProxyType(
    {"unlikely": "#4575b4", "possible": "#fee090", "likely": "#d73027"}
)
#: Categories without declared colours, in order (Tableau 10).
DEFAULT_PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                   "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")  # fmt: skip
#: Numeric columns, low to high (ColorBrewer YlOrRd).
NUMERIC_RAMP = ("#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026")
MISSING_COLOUR = "#bdbdbd"
SINGLE_COLOUR = "#3388ff"
PIXELS_ACROSS = 1000  # simplification tolerance = extent / this
COORDINATES_PER_FEATURE = 50  # vertex budget = max_features x this
MAX_TEXT = 300
MAX_LEGEND_ENTRIES = 20
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_SHAPES = MappingProxyType(
    {
        "box": "width:12px;height:12px",
        "line": "width:16px;height:3px",
        "circle": "width:10px;height:10px;border-radius:50%",
    }
)


class _Control(MacroElement):
    """A box of HTML in a map corner (a Leaflet control); the HTML must be escaped already."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.control({position: {{ this.position|tojson }}});
        {{ this.get_name() }}.onAdd = function (map) {
            var div = L.DomUtil.create("div", {{ this.css_class|tojson }});
            div.style.cssText = "background:white;padding:6px 8px;font:12px sans-serif;border-radius:4px;"
                + "box-shadow:0 0 4px rgba(0,0,0,.3);max-height:60vh;max-width:320px;overflow:auto;";
            div.innerHTML = {{ this.html|tojson }};
            return div;
        };
        {{ this.get_name() }}.addTo({{ this._parent.get_name() }});
        {% endmacro %}
    """)

    def __init__(self, html_text: str, *, css_class: str, position: str) -> None:
        super().__init__()
        self._name = "CivicmapControl"
        self.html, self.css_class, self.position = html_text, css_class, position


class _Attribution(MacroElement):
    """A credit line added to the map's attribution control (escaped text)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        {{ this._parent.get_name() }}.attributionControl.addAttribution({{ this.text|tojson }});
        {% endmacro %}
    """)

    def __init__(self, text: str) -> None:
        super().__init__()
        self._name = "CivicmapAttribution"
        self.text = html.escape(text)


LegendSection: TypeAlias = tuple[str, Sequence[tuple[str, str, str]]]


class Legend(_Control):
    """A legend: sections ``(title, [(label, "#rrggbb", shape), ...])``, shape ``box``, ``line`` or ``circle``.

    Every title and label is HTML-escaped; entries are ``div.civicmap-legend-item``.
    """

    def __init__(self, sections: Sequence[LegendSection], *, position: str = "bottomright") -> None:
        parts = []
        for title, entries in sections:
            parts.append(f"<div style='font-weight:bold;margin-top:4px'>{html.escape(str(title))}</div>")
            for label, colour, shape in entries:
                style = f"display:inline-block;{_SHAPES[shape]};background:{_colour(colour)};margin-right:6px"
                swatch = f"<span style='{style}'></span>"
                parts.append(f"<div class='civicmap-legend-item'>{swatch}{html.escape(str(label))}</div>")
        super().__init__("".join(parts), css_class="civicmap-legend", position=position)


@dataclass(frozen=True)
class _Spec:
    """How to draw one layer: colour by ``column`` (or one colour), popup ``fields``, legend ``title``."""

    name: str
    column: str | None = None
    fields: Sequence[str] | None = None
    colours: Colours = None
    title: str | None = None
    label: str | None = None  # legend label of a single-colour layer
    labels: Mapping[str, str] = field(default_factory=dict)  # legend labels of categories
    hide: frozenset[str] = field(default_factory=frozenset)


def explore(  # noqa: PLR0913 (the geopandas .explore() vocabulary, plus hide)
    gdf: gpd.GeoDataFrame,
    column: str | None = None,
    *,
    max_features: int = 20_000,
    tiles: Tiles = "OpenStreetMap",
    attribution: str | None = None,
    popup_fields: Sequence[str] | None = None,
    legend_title: str | None = None,
    colours: Colours = None,
    hide: Sequence[str] = (),
) -> folium.Map:
    """An interactive map of ``gdf`` (any CRS, drawn in EPSG:4326), coloured by ``column``.

    A categorical column gets one colour per value (``colours``: a mapping value -> ``#rrggbb``,
    or a list of colours; default :data:`DEFAULT_PALETTE`) and a legend; a numeric column a
    linear ramp (``colours``: a list of colours; default :data:`NUMERIC_RAMP`) with a colour bar.
    Popups show ``popup_fields`` (default: every column but the hidden ones). ``tiles`` is a
    folium/xyzservices name, an :class:`xyzservices.TileProvider`, a URL template (then
    ``attribution`` is required: it credits the tiles) or ``None`` (no basemap, no tile
    requests); otherwise ``attribution`` is added as a data credit. Columns in ``hide`` never
    reach the map. Null geometries are skipped; see the module docstring for ``max_features``.
    """
    fields = [popup_fields] if isinstance(popup_fields, str) else popup_fields
    hidden = frozenset([hide] if isinstance(hide, str) else hide)
    spec = _Spec(column or "features", column, fields, colours, legend_title or column, hide=hidden)
    frame, notes, spec = _prepare(gdf, spec, max_features=max_features)
    is_url = isinstance(tiles, str) and "{" in tiles
    m = _base_map([frame], tiles=tiles, tile_attribution=attribution if is_url else None)
    if attribution and not is_url:
        _Attribution(attribution).add_to(m)
    sections = _draw(m, frame, spec)
    _finish(m, sections, notes, layer_control=False)
    return m


def explore_layer(workspace: Workspace, name: str, column: str | None = None, **options: Any) -> folium.Map:
    """:func:`explore` on a stored vector layer, hiding its ``private_fields`` (and ``hide``) always."""
    info = _layer_info(workspace, name)
    if info.kind != "vector":
        raise InputError(f"layer {name!r} is a {info.kind}; explore_layer draws vector layers")
    extra = options.pop("hide", ())
    hide = [*([extra] if isinstance(extra, str) else extra), *info.private_fields]
    m = explore(workspace.read_layer(name), column, hide=hide, **options)
    if info.meta.get("public") is False:
        log.warning("layer %r is not public: do not publish this map", name)
        _Control("Not a public layer: do not share this map.", css_class="civicmap-note", position="topright").add_to(m)
    return m


def risk_map(workspace: Workspace, *, tiles: Tiles = "OpenStreetMap", max_features: int = 20_000) -> folium.Map:
    """Flood hazard zones, buildings by risk class, evacuation routes, shelters and health facilities.

    Reads the layers of a built workspace (``hazard_zones``, ``risk_buildings``,
    ``evacuation_routes``, ``amenities``); hazard classes keep their classification colours.
    """
    if workspace.config.risk is None:
        raise InputError(f"workspace {workspace.name!r} has no [risk] section; add one and run build()")
    classification = PRESETS[workspace.config.risk.classification]
    unit = classification.unit
    zones = {c.name: c.colour for c in classification.classes}
    zone_labels = {c.name: f"{c.name} ({_interval(c.lower, c.upper, unit)})" for c in classification.classes}
    buildings = _read(workspace, "risk_buildings")
    buildings["shelter_walk_min"] = (buildings["shelter_walk_time_s"] / 60).round(1)
    amenities = _read(workspace, "amenities")
    layers = [
        (_read(workspace, "hazard_zones"), _Spec("hazard zones", "hazard_class", ("hazard_class",), zones,
                                                 f"Flood hazard (depth, {unit})", labels=zone_labels)),
        (buildings, _Spec("buildings", "risk_class", ("osm_id", "building", "hazard_class", "risk_class",
                          "vulnerability", "occupants", "shelter_walk_min"), RISK_COLOURS, "Building risk")),
        (_read(workspace, "evacuation_routes"), _Spec("evacuation routes", None, ("shelter_id", "walk_distance_m"),
                                                      "#2166ac", "Evacuation", "route to the nearest shelter")),
        (amenities[amenities["use"].isin(["shelter", "health"])],
         _Spec("shelters and health", "use", ("name", "use", "amenity"),
               {"shelter": "#1b7837", "health": "#762a83"}, "Facilities")),
    ]  # fmt: skip
    return _workspace_map(workspace, layers, tiles=tiles, max_features=max_features)


def settlement_map(
    workspace: Workspace,
    column: str = "informality_class",
    *,
    tiles: Tiles = "OpenStreetMap",
    max_features: int = 20_000,
) -> folium.Map:
    """The public settlement cells (k-suppressed H3 cells) by ``informality_class`` or ``informality_index`` (0..1)."""
    cells = _read(workspace, "settlement_cells")
    wanted = ("cell_id", "building_count", "informality_index", "informality_class", "coverage_ratio",
              "street_km_per_km2", "hazard_share", "water_median_m", "sanitation_median_m",
              "health_median_m")  # fmt: skip
    colours = INFORMALITY_COLOURS if column == "informality_class" else None
    spec = _Spec("settlement cells", column, [f for f in wanted if f in cells], colours, column.replace("_", " "))
    return _workspace_map(workspace, [(cells, spec)], tiles=tiles, max_features=max_features)


def transit_map(workspace: Workspace, *, tiles: Tiles = "OpenStreetMap", max_features: int = 20_000) -> folium.Map:
    """Stops of every GTFS feed built (by feed) and the cells whose buildings have no stop within walking reach."""
    walk_m = workspace.config.transit.max_walk_m if workspace.config.transit else None
    label = f"no stop within {walk_m:g} m walk" if walk_m else "no stop within walking reach"
    layers = [
        (_read(workspace, "transit_uncovered"),
         _Spec("uncovered cells", None, ("n_buildings",), "#e6550d", "Transit coverage", label)),
        (_read(workspace, "transit_feed_stops"),
         _Spec("feed stops", "feed", ("stop_id", "feed"), None, "Stops by feed")),
    ]  # fmt: skip
    return _workspace_map(workspace, layers, tiles=tiles, max_features=max_features)


# -- internals ---------------------------------------------------------------------------
def _workspace_map(
    workspace: Workspace,
    layers: Sequence[tuple[gpd.GeoDataFrame, _Spec]],
    *,
    tiles: Tiles,
    max_features: int,
) -> folium.Map:
    """Several stored layers in feature groups, one legend, the OSM credit and a layer switcher."""
    prepared = [_prepare(gdf, spec, max_features=max_features) for gdf, spec in layers]
    m = _base_map([frame for frame, _, _ in prepared], tiles=tiles, tile_attribution=None)
    _Attribution(OSM_ATTRIBUTION).add_to(m)
    sections: list[LegendSection] = []
    for frame, _, spec in prepared:
        group = folium.FeatureGroup(name=html.escape(spec.name))
        group.add_to(m)
        sections += _draw(m, frame, spec, group=group)
    _finish(m, sections, [n for _, notes, _ in prepared for n in notes], layer_control=True)
    log.info("map of %s: %s", workspace.name, {s.name: len(f) for f, _, s in prepared})
    return m


def _finish(m: folium.Map, sections: list[LegendSection], notes: list[str], *, layer_control: bool) -> None:
    if sections:
        Legend(sections).add_to(m)
    if notes:
        text = "<br>".join(html.escape(n) for n in notes)
        _Control(text, css_class="civicmap-note", position="bottomleft").add_to(m)
    if layer_control:
        folium.LayerControl(collapsed=False, position="topright").add_to(m)


def _layer_info(workspace: Workspace, name: str) -> Any:
    try:
        return workspace.store.layer_info(name)
    except NotFoundError as exc:
        raise NotFoundError(f"workspace {workspace.name!r} has no layer {name!r}; run build() first ({exc})") from exc


def _read(workspace: Workspace, name: str) -> gpd.GeoDataFrame:
    """A stored layer without its private fields (the survey's ``meta["private_fields"]``)."""
    return _layer_info(workspace, name).public_part(workspace.read_layer(name))


def _prepare(gdf: gpd.GeoDataFrame, spec: _Spec, *, max_features: int) -> tuple[gpd.GeoDataFrame, list[str], _Spec]:
    """Check columns, keep only what is shown, reproject to EPSG:4326, drop null geometry, cap the size."""
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise InputError(f"explore needs a GeoDataFrame, got {type(gdf).__name__}; wrap it in gpd.GeoDataFrame(...)")
    if max_features < 1:
        raise InputError(f"max_features={max_features!r}: must be a positive number of features")
    require_crs(gdf, name=spec.name)
    columns = [c for c in gdf.columns if not isinstance(gdf[c].dtype, gpd.array.GeometryDtype)]
    fields = list(spec.fields) if spec.fields is not None else [c for c in columns if c not in spec.hide]
    for kind, names in (("column", [spec.column] if spec.column else []), ("popup field", fields)):
        unknown = [n for n in names if n not in columns]
        private = [n for n in names if n in spec.hide]
        if unknown:
            raise InputError(f"{spec.name}: {kind} {unknown} not in the frame; columns are {columns}")
        if private:
            raise InputError(f"{spec.name}: {kind} {private} is hidden (private); choose other columns")
    kept = list(dict.fromkeys([*([spec.column] if spec.column else []), *fields]))
    frame = gpd.GeoDataFrame(gdf[kept], geometry=gdf.geometry.values, crs=gdf.crs)
    missing = frame.geometry.isna() | frame.geometry.is_empty
    if missing.any():
        log.info("%s: %d features without geometry skipped", spec.name, int(missing.sum()))
    frame = to_wgs84(frame[~missing.to_numpy()], name=spec.name)
    if (frame.geom_type == "GeometryCollection").any():  # folium popups cannot bind to collections
        frame = frame.explode(index_parts=False)
    return (*_cap(frame, max_features, spec.name), replace(spec, fields=tuple(fields)))


def _cap(frame: gpd.GeoDataFrame, max_features: int, name: str) -> tuple[gpd.GeoDataFrame, list[str]]:
    """Simplify to ~1 px at the full extent, then sample, when the layer is too big to embed."""
    total = len(frame)
    coordinates = int(shapely.get_num_coordinates(frame.geometry.values).sum())
    if total <= max_features and coordinates <= max_features * COORDINATES_PER_FEATURE:
        return frame, []
    west, south, east, north = frame.total_bounds
    tolerance = max(east - west, north - south) / PIXELS_ACROSS
    simplified = shapely.simplify(frame.geometry.values, tolerance, preserve_topology=True)
    frame = frame.set_geometry(gpd.GeoSeries(simplified, index=frame.index, crs=frame.crs))
    notes = [f"{name}: shapes simplified to about {tolerance * 111_320:,.0f} m (1/{PIXELS_ACROSS} of the extent)"]
    if total > max_features:
        rows = np.sort(np.random.default_rng(0).choice(total, size=max_features, replace=False))
        frame = frame.iloc[rows]
        notes.append(f"{name}: showing a random sample of {max_features:,} of {total:,} features; serve it as tiles")
    log.warning("%s: %d features, %d coordinates is too much to embed: %s", name, total, coordinates, "; ".join(notes))
    return frame, notes


def _base_map(frames: Sequence[gpd.GeoDataFrame], *, tiles: Tiles, tile_attribution: str | None) -> folium.Map:
    """An empty map fitted to the frames (EPSG:4326) with the requested basemap."""
    bounds = [f.total_bounds for f in frames if len(f)]
    west, south, east, north = (
        (min(b[0] for b in bounds), min(b[1] for b in bounds), max(b[2] for b in bounds), max(b[3] for b in bounds))
        if bounds
        else (-180.0, -60.0, 180.0, 75.0)
    )
    options: dict[str, Any] = {"control_scale": True, "prefer_canvas": True, "zoom_start": 2}
    if isinstance(tiles, str) and "{" in tiles:
        if not tile_attribution:
            raise InputError(f"tiles={tiles!r} is a URL: give attribution='...' naming the tiles' source and licence")
        options.update(tiles=tiles, attr=html.escape(tile_attribution))
    elif tiles is None or isinstance(tiles, str | xyzservices.TileProvider):
        options["tiles"] = tiles
    else:
        raise InputError(f"tiles={tiles!r}: expected a name, an xyzservices.TileProvider, a URL template or None")
    try:
        m = folium.Map(location=[(south + north) / 2, (west + east) / 2], **options)
    except ValueError as exc:
        raise InputError(f"tiles={tiles!r} is not a known basemap ({exc}); try 'OpenStreetMap' or None") from exc
    m.fit_bounds([[float(south), float(west)], [float(north), float(east)]])
    return m


def _draw(
    m: folium.Map, frame: gpd.GeoDataFrame, spec: _Spec, *, group: folium.FeatureGroup | None = None
) -> list[LegendSection]:
    """Add the frame as one GeoJSON layer (in ``group``) with escaped popups; returns its legend sections."""
    sections: list[LegendSection] = []
    if spec.column is None:
        single = spec.colours if isinstance(spec.colours, str) else SINGLE_COLOUR
        colours = np.full(len(frame), _colour(single), dtype=object)
        sections = [(spec.title or spec.name, [(spec.label, single, _shape(frame))])] if spec.label else []
    elif _is_numeric(frame[spec.column]):
        colours, ramp = _numeric_colours(frame[spec.column], spec)
        ramp.add_to(m)  # a Leaflet control: belongs to the map, not to a layer group
        sections = []
    else:
        colours, entries = _category_colours(frame[spec.column], spec.colours)
        shape = _shape(frame)
        sections = [(spec.title or spec.column, [(spec.labels.get(v, v), c, shape) for v, c in entries])]
    if not len(frame):
        return sections
    fields = list(spec.fields or ())
    keys = [f"f{i}" for i in range(len(fields))]
    props = pd.DataFrame({k: _text(frame[f]) for k, f in zip(keys, fields, strict=True)}, index=frame.index)
    weight = np.where(frame.geom_type.str.contains("LineString").to_numpy(), 3, 1)
    props["style"] = pd.Series([{"color": c, "fillColor": c, "weight": int(w), "fillOpacity": 0.6, "opacity": 0.9}
                                for c, w in zip(colours, weight, strict=True)], index=frame.index)  # fmt: skip
    geometry = shapely.transform(frame.geometry.values, lambda xy: np.round(xy, 6))
    data = gpd.GeoDataFrame(props, geometry=geometry, crs=frame.crs).to_geo_dict(drop_id=True)
    aliases = [html.escape(str(f)) for f in fields]
    layer = folium.GeoJson(
        data,
        name=html.escape(spec.name),
        marker=folium.CircleMarker(radius=5),
        popup=folium.GeoJsonPopup(keys, aliases=aliases, localize=False) if keys else None,
        tooltip=folium.GeoJsonTooltip(keys[:1], aliases=aliases[:1]) if keys else None,
    )
    layer.add_to(group if group is not None else m)
    return sections


def _numeric_colours(values: pd.Series, spec: _Spec) -> tuple[np.ndarray, _Control]:
    """Colours on a linear ramp between the column's finite minimum and maximum, and its colour bar."""
    if isinstance(spec.colours, Mapping | str) or (spec.colours is not None and len(spec.colours) < 2):
        raise InputError(f"colours for numeric column {spec.column!r}: give a list of two or more '#rrggbb'")
    ramp = [_colour(c) for c in spec.colours] if spec.colours is not None else list(NUMERIC_RAMP)
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    finite = x[np.isfinite(x)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    high = high if high > low else low + 1.0
    stops = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in ramp], dtype=float)
    t = np.linspace(0, len(ramp) - 1, 256)  # a 256-step table, as a colour bar shows it
    seg = np.minimum(t.astype(int), len(ramp) - 2)
    rgb = np.rint(stops[seg] + (stops[seg + 1] - stops[seg]) * (t - seg)[:, None]).astype(int)
    table = np.array([f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb.tolist()], dtype=object)
    index = np.rint(np.clip(np.nan_to_num((x - low) / (high - low)), 0, 1) * 255).astype(int)
    bar = _colour_bar(str(spec.title or spec.column), ramp, low, high)
    return np.where(np.isfinite(x), table[index], MISSING_COLOUR), bar


def _colour_bar(title: str, ramp: Sequence[str], low: float, high: float) -> _Control:
    """A horizontal gradient with the values at its ends (plain HTML and CSS: no d3, no CDN)."""
    gradient = f"linear-gradient(to right, {', '.join(ramp)})"
    html_text = (
        f"<div style='font-weight:bold'>{html.escape(title)}</div>"
        f"<div style='width:180px;height:10px;background:{gradient}'></div>"
        "<div style='display:flex;justify-content:space-between'>"
        f"<span>{low:.4g}</span><span>{high:.4g}</span></div>"
    )
    return _Control(html_text, css_class="civicmap-colour-bar", position="bottomright")


def _category_colours(values: pd.Series, colours: Colours) -> tuple[np.ndarray, list[tuple[str, str]]]:
    if isinstance(colours, str):
        raise InputError(f"colours={colours!r}: a categorical column needs a mapping or a list of colours")
    text = values.astype("string")
    present = set(text.dropna())
    declared = {str(k): _colour(v) for k, v in colours.items()} if isinstance(colours, Mapping) else {}
    order = list(values.cat.categories.astype(str)) if isinstance(values.dtype, pd.CategoricalDtype) else []
    order = [c for c in [*declared, *order, *sorted(present)] if c in present]
    order = list(dict.fromkeys(order))
    palette = [_colour(c) for c in colours] if isinstance(colours, Sequence) and colours else list(DEFAULT_PALETTE)
    lookup = {c: declared.get(c, palette[i % len(palette)]) for i, c in enumerate(order)}
    out = text.map(lookup).fillna(MISSING_COLOUR).to_numpy(dtype=object)
    entries = [(c, lookup[c]) for c in order[:MAX_LEGEND_ENTRIES]]
    if len(order) > MAX_LEGEND_ENTRIES:
        entries.append((f"… {len(order) - MAX_LEGEND_ENTRIES} more values", MISSING_COLOUR))
    if text.isna().any():
        entries.append(("(no value)", MISSING_COLOUR))
    return out, entries


def _text(values: pd.Series) -> pd.Series:
    """Display text of a column, HTML-escaped and cut to ``MAX_TEXT`` characters (NaN -> empty)."""
    if pd.api.types.is_bool_dtype(values):
        text = values.map({True: "yes", False: "no"}).astype("string")
    elif pd.api.types.is_float_dtype(values):
        text = values.round(2).astype("string")
    else:
        text = values.astype("string")
    text = text.fillna("")
    long = text.str.len() > MAX_TEXT
    text = text.where(~long, text.str.slice(0, MAX_TEXT) + "…")
    for raw, safe in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#x27;")):
        text = text.str.replace(raw, safe, regex=False)
    return text.astype(object)


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _colour(value: object) -> str:
    if not isinstance(value, str) or not _HEX.match(value):
        raise InputError(f"colour {value!r} is not '#rrggbb' (six hex digits, e.g. '#d73027')")
    return value


def _shape(frame: gpd.GeoDataFrame) -> str:
    kinds = set(frame.geom_type.dropna())
    if kinds and kinds <= {"Point", "MultiPoint"}:
        return "circle"
    return "line" if kinds and kinds <= {"LineString", "MultiLineString"} else "box"


def _interval(lower: float, upper: float, unit: str) -> str:
    if not np.isfinite(upper):
        return f"> {lower:g} {unit}"
    return f"{lower:g}–{upper:g} {unit}"


_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _data_url(path: Path, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _leaflet_dist(web_dir: str | Path | None) -> Path:
    folder = web_dir or os.environ.get("CIVICMAP_WEB_DIR") or Path(__file__).resolve().parents[2] / "web"
    dist = Path(folder) / "node_modules" / "leaflet" / "dist"
    if not (dist / "leaflet.js").is_file() or not (dist / "leaflet.css").is_file():
        raise ConfigError(
            f"Leaflet is not installed in {dist}: run scripts/setup (npm ci in web/), or point web_dir / "
            "CIVICMAP_WEB_DIR at a folder whose node_modules holds the npm package leaflet"
        )
    return dist


def _remote(url: object) -> bool:
    parts = urlsplit(str(url))
    return parts.scheme in ("http", "https", "") and bool(parts.netloc) and parts.hostname not in _LOCAL_HOSTS


def _check_offline(m: folium.Map) -> None:
    """InputError naming every part of ``m`` that would still load something from another host."""
    problems, todo = [], list(m._children.values())
    while todo:
        element = todo.pop()
        todo.extend(element._children.values())
        if isinstance(element, folium.TileLayer) and _remote(element.tiles):
            problems.append(f"basemap tiles from {urlsplit(str(element.tiles)).hostname}")
        for _, url in [*getattr(element, "default_js", ()), *getattr(element, "default_css", ())]:
            if _remote(url):
                problems.append(f"{type(element).__name__} loads {url}")
    if problems:
        raise InputError(
            f"this map cannot work offline: {'; '.join(sorted(set(problems)))}. Make it with tiles=None "
            "(or a tile URL on localhost, e.g. civicmap serve's) and without folium plugins"
        )


def offline(m: folium.Map, *, web_dir: str | Path | None = None) -> folium.Map:
    """Make ``m`` self-contained: shown in a notebook or saved as HTML, it loads nothing from the network.

    Leaflet's script and style sheet (with its control icons) are inlined as ``data:`` URLs from
    the npm package ``leaflet`` in ``web_dir/node_modules`` (default: ``CIVICMAP_WEB_DIR``, else
    the source checkout's ``web/``, installed by ``scripts/setup``). Folium's other CDN files
    (jQuery, Bootstrap, Font Awesome, awesome-markers) are left out: civicmap's maps do not use
    them. ``m`` is changed in place and returned, e.g. ``offline(risk_map(ws, tiles=None))``.
    Raises :class:`~civicmap.errors.InputError` when the map would still load something from
    another host (basemap tiles, a plugin's script), :class:`~civicmap.errors.ConfigError` when
    Leaflet is not installed.
    """
    _check_offline(m)
    dist = _leaflet_dist(web_dir)

    def image(match: re.Match[str]) -> str:
        return f"url({_data_url(dist / 'images' / match.group(1), 'image/png')})"

    css = re.sub(r"url\(images/([\w.-]+\.png)\)", image, (dist / "leaflet.css").read_text(encoding="utf-8"))
    css_url = f"data:text/css;base64,{base64.b64encode(css.encode('utf-8')).decode('ascii')}"
    m.default_js = [("leaflet", _data_url(dist / "leaflet.js", "text/javascript"))]
    m.default_css = [("leaflet_css", css_url)]
    return m
