"""civicmap.sources.osm against independent readers (GDAL, osmnx, pyosmium) and hostile inputs."""

from __future__ import annotations

import dataclasses
import gc
import json
import zipfile
from pathlib import Path

import osmium
import osmnx as ox
import pandas as pd
import pyogrio
import pytest
import shapely

from civicmap.errors import CRSError, InputError, NotFoundError
from civicmap.sources.osm import AMENITY_USES, OSM_LICENCE, OSMData, fetch_osm, read_osm
from civicmap.types import BBox

DUITAMA = "osm/trufi_duitama_colombia.osm.pbf"
OAKLAND = "osm/osmnx_West-Oakland.osm.bz2"
BAVARIA = "osm/osmnx_planet_10.068_48.135_10.071_48.137.osm"
SALIDA = "osm/osmfieldwork_odk_pois_salida_co.osm"

# A bow-tie building (w10, self-intersecting), a closed way of two nodes (w11), a road with a
# node missing from the file (w12), a school drawn as an area (w14) and a clinic node (n7).
TINY_OSM = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="civicmap-test">
  <node id="1" lat="0.0" lon="0.0"/>
  <node id="2" lat="0.0" lon="0.001"/>
  <node id="3" lat="0.001" lon="0.0"/>
  <node id="4" lat="0.001" lon="0.001"/>
  <node id="5" lat="0.002" lon="0.002"/>
  <node id="6" lat="0.002" lon="0.003"/>
  <node id="7" lat="0.0005" lon="0.0025"><tag k="amenity" v="clinic"/><tag k="name" v="Posta"/></node>
  <node id="8" lat="0.003" lon="0.003"/>
  <node id="9" lat="0.003" lon="0.004"/>
  <node id="10" lat="0.004" lon="0.004"/>
  <way id="10"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="4"/><nd ref="1"/><tag k="building" v="yes"/></way>
  <way id="11"><nd ref="5"/><nd ref="6"/><nd ref="5"/><tag k="building" v="yes"/></way>
  <way id="12"><nd ref="5"/><nd ref="99"/><nd ref="6"/><tag k="highway" v="residential"/></way>
  <way id="14"><nd ref="8"/><nd ref="9"/><nd ref="10"/><nd ref="8"/><tag k="amenity" v="school"/></way>
</osm>
"""


@pytest.fixture(scope="module")
def duitama(realdata: Path) -> OSMData:
    return read_osm(realdata / DUITAMA)


@pytest.fixture(scope="module")
def oakland(realdata: Path) -> OSMData:
    return read_osm(realdata / OAKLAND)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.osm"
    path.write_text(TINY_OSM, encoding="utf-8")
    return path


# --- Duitama, Colombia (PBF, a whole small city) -------------------------------------------


def test_duitama_buildings_equal_gdal(realdata: Path, duitama: OSMData) -> None:
    # GDAL (multipolygons layer, building IS NOT NULL) gives 36961 = 36734 closed building ways
    # + 227 multipolygon relations. The realdata README's pyrosm figure, 36845, is 116 lower:
    # pyrosm drops the 118 closed building ways that are `inner` members of a building
    # multipolygon (buildings in a courtyard, tagged building=* themselves) and adds the
    # 2 unclosed building ways as LineStrings. Those inner buildings are real buildings, so
    # GDAL's count is the right one and civicmap matches it id for id.
    gdal = pyogrio.read_dataframe(
        realdata / DUITAMA, layer="multipolygons", columns=["osm_id", "osm_way_id"], where="building IS NOT NULL"
    )
    gdal_ids = {f"r{i}" for i in gdal["osm_id"].dropna()} | {f"w{i}" for i in gdal["osm_way_id"].dropna()}
    assert len(gdal) == 36961
    assert len(duitama.buildings) == len(gdal)
    assert set(duitama.buildings.index) == gdal_ids
    assert (duitama.buildings["osm_type"] == "relation").sum() == 227
    assert duitama.buildings.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    assert duitama.buildings.crs.to_epsg() == 4326
    assert duitama.report.skipped["area_ways_not_closed"] == 2  # the 2 unclosed building ways, counted


def test_duitama_roads_equal_gdal_lines(realdata: Path, duitama: OSMData) -> None:
    gdal = pyogrio.read_dataframe(realdata / DUITAMA, layer="lines", columns=["osm_id"], where="highway IS NOT NULL")
    assert len(duitama.roads) == len(gdal) == 5012
    assert set(duitama.roads.index) == {f"w{i}" for i in gdal["osm_id"]}
    assert duitama.roads.geom_type.eq("LineString").all()
    assert {"highway", "name", "surface", "oneway", "bridge", "tunnel", "lanes", "maxspeed"} <= set(duitama.roads)


def test_duitama_drive_graph(duitama: OSMData) -> None:
    # Measured here: osmnx's "drive" filter keeps 3247 ways (18228 segments); pyrosm's
    # "driving" keeps 3249 ways / 18250 segments / 16986 nodes (the README's figures): the 2
    # extra ways are tagged access=private, which osmnx excludes. Unsimplified, all components:
    # 16965 nodes. Largest component, simplified as osmnx does: 3663 nodes, 9086 edges
    # (pyrosm's to_graph, with its own filter: 3762 / 9258).
    raw = duitama.street_graph("drive", retain_all=True, simplify=False)
    assert len(raw) == 16965
    graph = duitama.street_graph("drive")
    assert (len(graph), len(graph.edges)) == (3663, 9086)
    assert graph.graph["crs"] == "EPSG:4326"
    *_, data = next(iter(graph.edges(data=True)))
    assert {"osmid", "highway", "oneway", "reversed", "length"} <= set(data)
    assert all("street_count" in d and {"x", "y"} <= set(d) for _, d in graph.nodes(data=True))
    assert sum(d["length"] for *_, d in graph.edges(data=True)) > 500_000  # metres of a city's streets
    assert duitama.street_graph("drive") is graph  # cached


def test_duitama_transit_routes(realdata: Path, duitama: OSMData) -> None:
    # Independent count with pyosmium: every relation type=route, route=bus (the file's only
    # transit mode; GDAL spreads route relations over other layers, so it is no oracle here).
    fp = osmium.FileProcessor(str(realdata / DUITAMA), osmium.osm.RELATION)
    bus = {f"r{r.id}" for r in fp if r.tags.get("type") == "route" and r.tags.get("route") == "bus"}
    routes = duitama.transit_routes
    assert len(bus) == 54
    assert set(routes.index) == bus
    # The trufi GTFS feed was generated from this very file: its 52 route_ids are our 52
    # routes without problems; the 2 others are intercity routes whose ways lie mostly outside.
    with zipfile.ZipFile(realdata / "gtfs/duitama_trufi_osm_gtfs.zip") as feed:
        gtfs_ids = {f"r{i}" for i in pd.read_csv(feed.open("routes.txt"))["route_id"]}
    assert set(routes.index[routes["problems"].isna()]) == gtfs_ids
    assert routes.loc[routes["problems"].notna(), "problems"].str.contains("member ways missing").all()
    assert routes["route_master"].notna().sum() == 52
    assert routes.geometry.geom_type.eq("MultiLineString").all()
    ways = json.loads(routes.iloc[0]["way_ids"])
    assert ways and all(w.startswith("w") for w in ways)


def test_duitama_area_filter(realdata: Path, duitama: OSMData) -> None:
    box = BBox(-73.05, 5.81, -73.03, 5.83)
    part = read_osm(realdata / DUITAMA, box)
    assert 0 < len(part.buildings) < len(duitama.buildings)
    assert part.buildings.intersects(shapely.box(*box)).all()
    outside = duitama.buildings.loc[~duitama.buildings.index.isin(part.buildings.index)]
    assert not outside.intersects(shapely.box(*box)).any()
    nodes = part.street_nodes
    inside = shapely.intersects_xy(shapely.box(*box), nodes["x"], nodes["y"])
    inside_ids = set(nodes.loc[inside, "osmid"])
    edges = part.street_edges
    assert (edges["u"].isin(inside_ids) | edges["v"].isin(inside_ids)).all()
    assert part.provenance.details["area_bounds"] == list(box)


# --- West Oakland (osmnx's own test file) -----------------------------------------------------


def test_oakland_graph_equals_osmnx(realdata: Path, oakland: OSMData) -> None:
    # osmnx's test_osm_xml uses graph_from_xml with its defaults (every way, directed,
    # largest component, simplified). The same ways are osmnx's "all" network type here.
    expected = ox.graph_from_xml(realdata / OAKLAND)
    graph = oakland.street_graph("all")
    assert (len(graph), len(graph.edges)) == (len(expected), len(expected.edges)) == (47, 106)
    assert set(graph.nodes) == set(expected.nodes)
    assert set(graph.edges(keys=True)) == set(expected.edges(keys=True))
    for edge in expected.edges(keys=True):
        ours, theirs = dict(graph.edges[edge]), dict(expected.edges[edge])
        assert ours.pop("length") == pytest.approx(theirs.pop("length"))
        ours_geom, theirs_geom = ours.pop("geometry", None), theirs.pop("geometry", None)
        assert ours == theirs
        assert (ours_geom is None) == (theirs_geom is None)
        assert ours_geom is None or ours_geom.equals(theirs_geom)


def test_oakland_published_facts(oakland: OSMData) -> None:
    graph = oakland.street_graph("all")
    node = 53098262
    for neighbour in (53092170, 53060438, 53027353, 667744075):
        assert graph.edges[node, neighbour, 0]["name"] in ("8th Street", "Willow Street")
    walk = oakland.street_graph("walk")
    assert all(walk.has_edge(v, u) for u, v in walk.edges())  # walking ignores oneway
    assert not any(d["oneway"] for *_, d in walk.edges(data=True))
    assert len(oakland.buildings) == 23


# --- Bavaria clip with incomplete geometries, and JOSM file with negative ids ----------------


def test_bavaria_incomplete_extract(realdata: Path) -> None:
    data = read_osm(realdata / BAVARIA)
    features = ox.features_from_xml(realdata / BAVARIA)
    features.index = [f"{kind[0]}{osmid}" for kind, osmid in features.index]
    osmnx_buildings = set(features.index[features["building"].notna()])
    osmnx_roads = set(features.index[features["highway"].notna() & features.geom_type.eq("LineString")])
    assert set(data.buildings.index) == osmnx_buildings and len(osmnx_buildings) == 32
    assert set(data.roads.index) == osmnx_roads and len(osmnx_roads) == 14
    # Ways cut by the clip down to one node in the file cannot be lines: skipped and counted.
    assert data.report.skipped["ways_too_short"] == 6
    assert data.report.skipped["multipolygons_not_assembled"] == 1


def test_salida_negative_ids(realdata: Path) -> None:
    data = read_osm(realdata / SALIDA)
    assert len(data.points) == 8
    assert "n-25369" in data.points.index
    assert data.points.loc["n-25369", "name"] == "146 taphousr"
    assert json.loads(data.points.loc["n4379975394", "tags"])["amenity"] == "cafe"
    assert data.report.skipped["ways_without_nodes"] == 6


# --- repairs, classification, bad inputs --------------------------------------------------------


def test_tiny_repairs_and_counts(tiny: Path) -> None:
    data = read_osm(tiny)
    assert list(data.buildings.index) == ["w10"]
    assert data.buildings.geometry.iloc[0].geom_type == "MultiPolygon"  # bow-tie split in two triangles
    assert data.buildings.geometry.iloc[0].is_valid
    report = data.report
    assert next(r for r in report.geometry if r.layer == "buildings").repaired == 1
    assert report.skipped["buildings_rings_too_short"] == 1  # w11, a closed way of two nodes
    assert report.skipped["ways_with_missing_nodes"] == 1  # w12 kept from the nodes present
    assert list(data.roads.index) == ["w12"]
    assert report.features["buildings"] == 1
    assert data.provenance.licence == OSM_LICENCE == "ODbL 1.0 (© OpenStreetMap contributors)"


def test_tiny_amenities(tiny: Path) -> None:
    amenities = read_osm(tiny).amenities
    assert amenities.loc["n7", ["use", "matched_tag", "geometry_source"]].tolist() == [
        "health",
        "amenity=clinic",
        "node",
    ]
    school = amenities.loc["w14"]
    assert (school["use"], school["geometry_source"]) == ("education", "polygon")
    assert school.geometry.geom_type == "Point"
    custom = read_osm(tiny, amenity_uses={"schools": ("amenity=school",)}).amenities
    assert list(custom.index) == ["w14"] and custom.loc["w14", "use"] == "schools"
    with pytest.raises(TypeError):
        AMENITY_USES["x"] = ()  # type: ignore[index]


def test_osmdata_is_frozen(tiny: Path) -> None:
    data = read_osm(tiny)
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.buildings = data.roads  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "content", "error", "words"),
    [
        ("empty.osm", b"", InputError, "0 bytes"),
        ("text.osm.pbf", b"this is not a protocol buffer\n", InputError, "OSM PBF"),
        ("nothing.osm", b'<osm version="0.6"></osm>', InputError, "no tagged"),
        ("broken.osm", b'<osm version="0.6"><node id="1" lat="1"', InputError, "OSM XML"),
        ("data.geojson", b"{}", InputError, "expected a name ending in"),
    ],
)
def test_bad_files(tmp_path: Path, name: str, content: bytes, error: type[Exception], words: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error, match=words) as info:
        read_osm(path)
    assert name in str(info.value)


def test_truncated_pbf(realdata: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.osm.pbf"
    path.write_bytes((realdata / DUITAMA).read_bytes()[:300_000])
    with pytest.raises(InputError, match="truncated"):
        read_osm(path)


def test_missing_file_and_bad_area(tmp_path: Path, tiny: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        read_osm(tmp_path / "nowhere.osm.pbf")
    with pytest.raises(InputError, match="west"):
        read_osm(tiny, (1.0, 0.0, 0.0, 1.0))
    with pytest.raises(CRSError, match="EPSG:4326"):
        read_osm(tiny, shapely.box(500_000, 9_000_000, 501_000, 9_001_000))
    with pytest.raises(InputError, match="Point"):
        read_osm(tiny, shapely.Point(0, 0))
    with pytest.raises(InputError, match="network"):
        read_osm(tiny).street_graph("boat")


@pytest.mark.network
def test_fetch_osm_small_area(tmp_path: Path) -> None:
    # Same West Oakland block as the osmnx test file; needs the internet (deselected by default).
    data = fetch_osm(BBox(-122.3026, 37.8061, -122.2982, 37.8091), cache_dir=tmp_path)
    assert len(data.roads) > 10 and len(data.buildings) > 10
    assert data.provenance.source.startswith("Overpass")
    assert 53098262 in data.street_graph("all")


# --- the array-built street graph against osmnx's own graph functions --------------------------


def _graph_rows(graph: object) -> tuple[list[object], list[object]]:
    """Nodes and edges of a graph in iteration order, geometries as WKB (comparable with ==)."""
    nodes = list(graph.nodes(data=True))  # type: ignore[attr-defined]
    edges = [
        (u, v, k, {a: (b.wkb if a == "geometry" else b) for a, b in d.items()})
        for u, v, k, d in graph.edges(keys=True, data=True)  # type: ignore[attr-defined]
    ]
    return nodes, edges


def _osmnx_simplified(raw: object) -> object:
    """osmnx's simplify_graph and count_streets_per_node on our unsimplified graph (the reference path)."""
    expected = ox.simplify_graph(raw)
    for node, count in ox.stats.count_streets_per_node(expected).items():
        expected.nodes[node]["street_count"] = count
    return expected


@pytest.mark.parametrize("network", ["drive", "walk"])
def test_duitama_simplified_graph_equals_osmnx_simplify(duitama: OSMData, network: str) -> None:
    # civicmap simplifies on arrays; osmnx's simplify_graph on the same unsimplified graph must
    # give the very same nodes, edges, keys, attributes (merged osmid lists, summed lengths,
    # geometries), street counts, and even the same iteration order.
    raw = duitama.street_graph(network, retain_all=True, simplify=False)
    ours = duitama.street_graph(network, retain_all=True)
    expected = _osmnx_simplified(raw)
    assert _graph_rows(ours) == _graph_rows(expected)
    assert (len(ours), len(ours.edges)) == ((3691, 9124) if network == "drive" else (6519, 16948))


def test_duitama_largest_component_equals_osmnx(duitama: OSMData) -> None:
    raw = duitama.street_graph("drive", retain_all=True, simplify=False)
    largest = ox.truncate.largest_component(raw)
    ours = duitama.street_graph("drive", simplify=False)
    assert list(ours.nodes) == sorted(largest.nodes)
    assert set(ours.edges(keys=True)) == set(largest.edges(keys=True))
    # lengths are osmnx's great-circle metres, to the last bit
    recomputed = ox.distance.add_edge_lengths(ours.copy())
    assert all(d["length"] == ours.edges[u, v, k]["length"] for u, v, k, d in recomputed.edges(keys=True, data=True))
    # and the default graph is osmnx's simplification of that component
    nodes, edges = _graph_rows(_osmnx_simplified(largest))
    ours_nodes, ours_edges = _graph_rows(duitama.street_graph("drive"))
    assert dict(ours_nodes) == dict(nodes)
    assert {(u, v, k): d for u, v, k, d in ours_edges} == {(u, v, k): d for u, v, k, d in edges}


def test_read_osm_leaves_garbage_collector_as_it_was(tiny: Path) -> None:
    # read_osm pauses the cyclic garbage collector while it allocates; it must restore it.
    assert gc.isenabled()
    read_osm(tiny).street_graph("all")
    assert gc.isenabled()
    gc.disable()
    try:
        read_osm(tiny)
        assert not gc.isenabled()
    finally:
        gc.enable()
