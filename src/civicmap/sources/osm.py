"""OpenStreetMap: read ``.osm`` / ``.osm.bz2`` / ``.osm.pbf`` files offline, or fetch from Overpass on request.

``read_osm(path)`` streams the file once with pyosmium (plus a cheap relations-only pass)
and returns an :class:`OSMData` of GeoDataFrames in **EPSG:4326** (lon/lat degrees; the
Workspace reprojects later). Every frame is indexed by a string ``osm_id`` such as
``"w123"``, ``"r45"`` or ``"n6"`` (also kept as a column) and has an ``osm_type`` column.

Layers (their tag columns are declared in :mod:`civicmap.sources._osm_scan`):

- ``buildings``: (Multi)Polygons from closed ways and multipolygon relations with ``building=*``
  (``building=no`` excluded). Closed building ways that are inner members of another
  building's multipolygon are separate buildings and kept (as GDAL does; pyrosm drops them).
- ``roads``: LineStrings of ``highway=*`` ways that are not ``area=yes``.
- ``amenities``: Points with a ``use`` from :data:`AMENITY_USES` (overridable), the
  ``matched_tag`` and ``geometry_source`` ("node", or "polygon" for areas, placed at a point
  on their surface, which is always inside them).
- ``waterways``: one frame, ``geometry_kind`` "line" (waterway=river/stream/canal/drain/ditch)
  or "area" (natural=water, waterway=riverbank).
- ``landuse``: polygons with ``landuse=*`` (and ``residential``, ``informal`` for HOT-style informal areas).
- ``transit_stops``: stop nodes (public_transport=platform/stop_position, highway=bus_stop,
  amenity=bus_station, railway=tram_stop/halt) plus untagged stop/platform members of
  route relations (``route_member_only=True``), so that every stop of a route has a position.
- ``transit_routes``: one row per route relation whose ``route`` is in :data:`TRANSIT_ROUTE_MODES`;
  member lists as JSON arrays of osm ids (``stop_ids``, ``platform_ids``, ``way_ids``, in
  relation order), ``route_master``, a MultiLineString of the member ways present (None if
  none is) and ``problems`` (missing members are reported there, never fatal).
- ``points``: every tagged node, with ``tags`` (all tags as a JSON object string).
- ``street_nodes`` / ``street_edges``: nodes and two-point segments of all highway ways,
  the raw material of :meth:`OSMData.street_graph`.

Invalid geometries are repaired (``make_valid``) or skipped, and always counted in
``OSMData.report``; nothing is dropped silently. Known limit: pyosmium's node-location
cache holds positive ids only, so ways made of unuploaded (negative-id) JOSM nodes get no
geometry; they are counted as ``ways_dropped_missing_nodes`` (tagged negative-id nodes are
read normally).
"""

from __future__ import annotations

import gc
import logging
import tempfile
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias
from xml.sax.saxutils import quoteattr

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from civicmap.errors import CRSError, InputError, NotFoundError
from civicmap.sources import _osm_frames as frames
from civicmap.sources import _osm_scan as scan
from civicmap.sources._clean import GeometryReport
from civicmap.sources._osm_graph import NETWORK_TYPES, build_street_graph, street_frames
from civicmap.types import BBox, Provenance

__all__ = [
    "AMENITY_USES",
    "NETWORK_TYPES",
    "OSM_LICENCE",
    "TRANSIT_ROUTE_MODES",
    "OSMData",
    "OSMReport",
    "fetch_osm",
    "read_osm",
]

log = logging.getLogger(__name__)

OSM_LICENCE = "ODbL 1.0 (© OpenStreetMap contributors)"

#: ``use -> rules``; a rule is ``"key=value"`` or ``"key=*"``. Rules are tried key by key in the
#: order keys first appear here; an exact value wins over ``*``. Note that ``amenity=shelter``
#: also covers bus and picnic shelters: the ``shelter_type`` column tells them apart.
AMENITY_USES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "health": ("amenity=hospital", "amenity=clinic", "amenity=doctors", "amenity=health_post", "healthcare=*"),
        "education": ("amenity=school", "amenity=kindergarten", "amenity=college", "amenity=university"),
        "shelter": ("amenity=shelter", "emergency=assembly_point", "social_facility=shelter"),
        "water": (
            "amenity=drinking_water",
            "amenity=water_point",
            "man_made=water_well",
            "man_made=water_tap",
            "man_made=water_tower",
            "emergency=water_tank",
        ),
        "sanitation": ("amenity=toilets", "amenity=shower", "man_made=wastewater_plant"),
    }
)

#: ``route=*`` values of route relations read into ``transit_routes``.
TRANSIT_ROUTE_MODES = frozenset(
    {"bus", "share_taxi", "minibus", "trolleybus", "tram", "light_rail", "subway", "train", "monorail", "ferry"}
)

_SUFFIXES = {".osm": "OSM XML", ".osm.bz2": "bzip2 OSM XML", ".osm.gz": "gzip OSM XML", ".osm.pbf": "OSM PBF"}
_SUFFIXES_ALSO = {".pbf": "OSM PBF"}
Area: TypeAlias = BBox | tuple[float, float, float, float] | BaseGeometry


@dataclass(frozen=True)
class OSMReport:
    """What :func:`read_osm` read, repaired and skipped; counts only, never silent."""

    features: Mapping[str, int]
    skipped: Mapping[str, int]
    geometry: tuple[GeometryReport, ...]

    @property
    def repaired(self) -> int:
        """Geometries repaired with ``make_valid`` over all layers."""
        return sum(r.repaired for r in self.geometry)

    @property
    def dropped(self) -> int:
        """Features dropped over all layers: unrepairable geometries plus skipped objects."""
        return sum(r.dropped_null + r.dropped_empty_or_invalid for r in self.geometry) + sum(self.skipped.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "features": dict(self.features),
            "skipped": dict(self.skipped),
            "geometry": [r.__dict__ for r in self.geometry],
        }

    def __str__(self) -> str:
        feats = ", ".join(f"{k} {v}" for k, v in self.features.items())
        skipped = ", ".join(f"{k} {v}" for k, v in self.skipped.items() if v) or "none"
        return f"read: {feats}; repaired {self.repaired}; skipped: {skipped}"


@dataclass(frozen=True, eq=False)
class OSMData:
    """The layers read from one OSM extract, all GeoDataFrames in EPSG:4326 (see the module docstring)."""

    buildings: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame
    amenities: gpd.GeoDataFrame
    waterways: gpd.GeoDataFrame
    landuse: gpd.GeoDataFrame
    transit_stops: gpd.GeoDataFrame
    transit_routes: gpd.GeoDataFrame
    points: gpd.GeoDataFrame
    street_nodes: gpd.GeoDataFrame
    street_edges: gpd.GeoDataFrame
    report: OSMReport
    provenance: Provenance
    _graphs: dict[tuple[str, bool, bool], nx.MultiDiGraph] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def street_graph(
        self, network: str = "walk", *, retain_all: bool = False, simplify: bool = True
    ) -> nx.MultiDiGraph:
        """The street network as an osmnx-compatible ``networkx.MultiDiGraph``, built once and cached.

        ``network`` is an osmnx network type (``"walk"``, ``"drive"``, ``"bike"``, ``"all"``, ...) and
        selects ways with osmnx's own tag rules; walking edges go both ways, driving edges
        follow ``oneway`` as osmnx does. Graph attribute ``crs`` is ``"EPSG:4326"``; nodes have
        ``x`` (lon), ``y`` (lat) and ``street_count``; edges have ``osmid``, ``highway``, ``name``
        (when tagged), ``oneway``, ``reversed``, ``length`` (metres, great-circle) and, after
        simplification, ``geometry`` (lon/lat). Like osmnx, only the largest weakly connected
        component is kept unless ``retain_all``. The cached graph is shared: copy it before
        changing it.
        """
        key = (network, retain_all, simplify)
        if key not in self._graphs:
            with _gc_paused():
                self._graphs[key] = build_street_graph(
                    self.street_nodes, self.street_edges, network=network, retain_all=retain_all, simplify=simplify
                )
        return self._graphs[key]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one block, then restore it as it was.

    Reading allocates some 10^5 small acyclic objects (tag tuples, WKB, geometries); each
    batch would trigger a collection that walks all of them again, about a fifth of the
    reading time. Nothing made here forms reference cycles, so nothing is left behind.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _check_path(path: str | Path) -> tuple[Path, str]:
    path = Path(path)
    name = path.name.lower()
    kind = next((v for k, v in {**_SUFFIXES, **_SUFFIXES_ALSO}.items() if name.endswith(k)), None)
    if kind is None:
        raise InputError(
            f"{path} is not an OSM file civicmap reads; expected a name ending in {', '.join(_SUFFIXES)} "
            "(rename the file if its content is one of these, or convert it with osmium-tool)"
        )
    if not path.is_file():
        raise NotFoundError(f"OSM file {path} does not exist (check the path; it is resolved from {Path.cwd()})")
    if path.stat().st_size == 0:
        raise InputError(f"OSM file {path} is empty (0 bytes); expected {kind} data: download or export it again")
    return path, kind


def _area_geometry(area: Area | None) -> BaseGeometry | None:
    """The area as a shapely polygon in EPSG:4326, checked; None stays None."""
    if area is None:
        return None
    if isinstance(area, BaseGeometry):
        if area.geom_type not in ("Polygon", "MultiPolygon") or area.is_empty:
            raise InputError(f"area is a {area.geom_type}; expected a BBox or a non-empty (Multi)Polygon in EPSG:4326")
        west, south, east, north = area.bounds
        if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
            raise CRSError(
                f"area bounds {area.bounds} are not lon/lat degrees; reproject the polygon to EPSG:4326 "
                "(civicmap.crs.to_wgs84) before passing it"
            )
        return shapely.make_valid(area) if not area.is_valid else area
    box = BBox.parse(area)
    return shapely.box(*box)


def _keep_in_area(
    frame: gpd.GeoDataFrame, area: BaseGeometry | None, *, keep_missing: bool = False
) -> gpd.GeoDataFrame:
    if area is None or not len(frame):
        return frame
    geoms = frame.geometry.to_numpy()
    shapely.prepare(area)
    mask = shapely.intersects(area, geoms)
    if keep_missing:
        mask |= shapely.is_missing(geoms)
    return frame.loc[mask]


def _streets_in_area(
    nodes: gpd.GeoDataFrame, edges: gpd.GeoDataFrame, area: BaseGeometry | None
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Keep the segments with at least one end inside the area, and the nodes they use."""
    if area is None or not len(edges):
        return nodes, edges
    inside = shapely.intersects_xy(area, nodes["x"].to_numpy(), nodes["y"].to_numpy())
    inside_ids = nodes["osmid"].to_numpy()[inside]
    keep = np.isin(edges["u"].to_numpy(), inside_ids) | np.isin(edges["v"].to_numpy(), inside_ids)
    edges = edges.loc[keep]
    used = np.union1d(edges["u"].to_numpy(), edges["v"].to_numpy())
    return nodes.loc[np.isin(nodes["osmid"].to_numpy(), used)], edges


def _build_layers(result: scan.Scan, route_modes: frozenset[str]) -> tuple[dict[str, gpd.GeoDataFrame], OSMReport]:
    layers, reports, skipped = {}, [], Counter(result.skipped)
    polygon_layers: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("buildings", scan.BUILDING_TAGS),
        ("landuse", scan.LANDUSE_TAGS),
    )
    for name, columns in polygon_layers:
        layers[name], report, short = frames.layer_frame(result.layers[name], columns, layer=name, family="polygon")
        reports.append(report)
        skipped[f"{name}_rings_too_short"] += short
    layers["roads"], report, _ = frames.layer_frame(
        result.layers["roads"], scan.ROAD_TAGS, layer="roads", family="line"
    )
    reports.append(report)
    mixed_layers: tuple[tuple[str, Any, tuple[str, ...]], ...] = (
        ("amenities", frames.amenity_frame, (*scan.AMENITY_TAGS, "use", "matched_tag")),
        ("waterways", frames.waterway_frame, scan.WATERWAY_TAGS),
    )
    for name, build, columns in mixed_layers:
        layers[name], more, short = build(result.layers[name], columns)
        reports += more
        skipped[f"{name}_rings_too_short"] += short
    layers["points"] = frames.points_frame(result.layers["points"])
    layers["transit_stops"] = frames.stops_frame(result.layers["stops"], scan.STOP_TAGS, result.member_nodes)
    layers["transit_routes"], route_problems = frames.routes_frame(
        result.relations, result.member_wkb, result.member_nodes, columns=scan.ROUTE_TAGS, modes=route_modes
    )
    skipped.update(route_problems)
    layers["street_nodes"], layers["street_edges"] = street_frames(
        result.street_ids, result.street_nodes, result.street_tags, result.street_wkb, result.node_tags
    )
    return layers, OSMReport(features={}, skipped=MappingProxyType(dict(skipped)), geometry=tuple(reports))


def _is_empty(result: scan.Scan) -> bool:
    return not (any(rows.ids for rows in result.layers.values()) or result.street_ids or result.relations.routes)


def read_osm(
    path: str | Path,
    area: Area | None = None,
    *,
    amenity_uses: Mapping[str, Iterable[str]] | None = None,
    route_modes: Iterable[str] = TRANSIT_ROUTE_MODES,
    progress: bool = False,
) -> OSMData:
    """Read an OSM extract (``.osm``, ``.osm.bz2``, ``.osm.gz``, ``.osm.pbf``) offline into :class:`OSMData`.

    ``area`` (a :class:`~civicmap.types.BBox` in lon/lat or a shapely (Multi)Polygon in
    EPSG:4326) keeps the whole features that intersect it, and the street segments with a
    node inside it; route relations without any geometry are kept. ``amenity_uses``
    replaces :data:`AMENITY_USES`; ``route_modes`` replaces :data:`TRANSIT_ROUTE_MODES`.
    Output is EPSG:4326. Raises :class:`NotFoundError` for a missing file and
    :class:`InputError` for an empty, truncated, corrupt or wrongly named one.
    """
    path, kind = _check_path(path)
    clip = _area_geometry(area)
    rules = scan.UseRules.compile(AMENITY_USES if amenity_uses is None else amenity_uses)
    try:
        with _gc_paused():
            result = scan.scan_file(path, rules, progress=progress)
    except RuntimeError as exc:
        raise InputError(
            f"{path} could not be read as {kind}: {exc}. The file may be truncated, corrupt or of another "
            f"format than its name says; download or export it again as {kind}"
        ) from exc
    if _is_empty(result):
        raise InputError(
            f"{path} holds no tagged OSM nodes, ways or route relations; expected an {kind} extract with data"
        )
    with _gc_paused():
        layers, report = _build_layers(result, frozenset(route_modes))
    for name in ("buildings", "roads", "amenities", "waterways", "landuse", "transit_stops", "points"):
        layers[name] = _keep_in_area(layers[name], clip)
    layers["transit_routes"] = _keep_in_area(layers["transit_routes"], clip, keep_missing=True)
    layers["street_nodes"], layers["street_edges"] = _streets_in_area(
        layers["street_nodes"], layers["street_edges"], clip
    )
    counts = {name: len(frame) for name, frame in layers.items()}
    report = OSMReport(features=MappingProxyType(counts), skipped=report.skipped, geometry=report.geometry)
    details = {"format": kind, "area_bounds": None if clip is None else list(clip.bounds)}
    provenance = Provenance(source=str(path), licence=OSM_LICENCE, details=details)
    log.info("read %s: %s", path, report)
    return OSMData(**layers, report=report, provenance=provenance)


@contextmanager
def _osmnx_settings(**values: Any) -> Iterator[None]:
    """Set osmnx's global settings for one block and restore them afterwards."""
    import osmnx as ox  # noqa: PLC0415 - osmnx settings are only touched here

    saved = {k: getattr(ox.settings, k) for k in values}
    try:
        for k, v in values.items():
            setattr(ox.settings, k, v)
        yield
    finally:
        for k, v in saved.items():
            setattr(ox.settings, k, v)


def _overpass_elements(polygon: BaseGeometry, *, timeout_s: int) -> list[dict[str, Any]]:
    from osmnx import _overpass  # noqa: PLC0415 - network code is only loaded on request

    elements: list[dict[str, Any]] = []
    for coords in _overpass._make_overpass_polygon_coord_strs(polygon):
        query = f'[out:json][timeout:{timeout_s}];(nwr(poly:"{coords}"););(._;>;);out;'
        response = _overpass._overpass_request(OrderedDict(data=query))
        if "remark" in response:
            raise InputError(f"Overpass answered with an error: {response['remark']!r}; try a smaller area or later")
        elements += response.get("elements", [])
    return elements


def _write_osm_xml(elements: list[dict[str, Any]], path: Path) -> None:
    """Overpass JSON elements as OSM XML, nodes then ways then relations, each once."""
    order = {"node": 0, "way": 1, "relation": 2}
    unique = {(e["type"], e["id"]): e for e in elements}
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6" generator="civicmap">\n')
        for (kind, _), el in sorted(unique.items(), key=lambda item: (order[item[0][0]], item[0][1])):
            attrs = f' lat="{el["lat"]}" lon="{el["lon"]}"' if kind == "node" else ""
            out.write(f'<{kind} id="{el["id"]}"{attrs}>')
            out.writelines(f'<nd ref="{ref}"/>' for ref in el.get("nodes", ()))
            out.writelines(
                f'<member type={quoteattr(m["type"])} ref="{m["ref"]}" role={quoteattr(m.get("role", ""))}/>'
                for m in el.get("members", ())
            )
            out.writelines(f"<tag k={quoteattr(k)} v={quoteattr(str(v))}/>" for k, v in el.get("tags", {}).items())
            out.write(f"</{kind}>\n")
        out.write("</osm>\n")


def fetch_osm(
    area: Area,
    *,
    cache_dir: str | Path | None = None,
    user_agent: str = "civicmap (participatory GIS; https://github.com/civicmap)",
    timeout_s: int = 180,
    amenity_uses: Mapping[str, Iterable[str]] | None = None,
    progress: bool = False,
) -> OSMData:
    """Download everything inside ``area`` (EPSG:4326) from Overpass through osmnx, then read it.

    The only function here that touches the network. Responses are cached by osmnx in
    ``cache_dir`` (default: osmnx's own cache folder); osmnx's settings are set for the call
    only and restored afterwards. Errors Overpass reports (HTTP 200 with a ``remark``) raise
    :class:`InputError` and are not cached. The result is the same as :func:`read_osm` on
    the downloaded data, with ``area`` applied.
    """
    polygon = _area_geometry(area)
    if polygon is None:
        raise InputError("fetch_osm needs an area (a BBox or a Polygon in EPSG:4326); got None")
    overrides: dict[str, Any] = {"http_user_agent": user_agent, "requests_timeout": timeout_s, "use_cache": True}
    if cache_dir is not None:
        overrides["cache_folder"] = str(cache_dir)
    with _osmnx_settings(**overrides):
        elements = _overpass_elements(polygon, timeout_s=timeout_s)
    if not elements:
        raise InputError(f"Overpass returned no OSM data inside {polygon.bounds}; check the area (lon/lat order?)")
    with tempfile.TemporaryDirectory(prefix="civicmap-overpass-") as tmp:
        path = Path(tmp) / "overpass.osm"
        _write_osm_xml(elements, path)
        data = read_osm(path, polygon, amenity_uses=amenity_uses, progress=progress)
    details = {**data.provenance.details, "query": "Overpass nwr(poly) via osmnx", "elements": len(elements)}
    provenance = Provenance(source="Overpass API (via osmnx)", licence=OSM_LICENCE, details=details)
    fields = {name: getattr(data, name) for name in data.__dataclass_fields__ if not name.startswith("_")}
    return OSMData(**{**fields, "provenance": provenance})
