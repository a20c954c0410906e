"""OGC API - Features Part 1 over the demo: landing, conformance, collections, items paging, RFC 7946 output."""

import json
import re

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient

from civicmap.serve import ServiceSettings, create_app
from civicmap.store import GeoPackageStore

GEOJSON = "application/geo+json"
CORE = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
BONDENI_BBOX = "39.2330,-6.8230,39.2380,-6.8180"


@pytest.fixture(scope="module")
def workspace(demo_build):
    return demo_build[0]


@pytest.fixture(scope="module")
def client(workspace):
    return TestClient(create_app(workspace, ServiceSettings()))


def test_landing_page_links_have_rel_and_type(client):
    r = client.get("/")
    assert r.status_code == 200
    links = r.json()["links"]
    assert all(set(link) >= {"href", "rel", "type"} for link in links)
    rels = {link["rel"]: link for link in links}
    assert {"self", "service-desc", "service-doc", "conformance", "data"} <= set(rels)
    assert rels["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    assert rels["data"]["href"] == "http://testserver/collections"
    assert client.get(rels["service-desc"]["href"]).json()["openapi"].startswith("3.")
    assert client.get(rels["service-doc"]["href"]).status_code == 200


def test_conformance_classes(client):
    classes = client.get("/conformance").json()["conformsTo"]
    assert CORE in classes
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in classes
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30" in classes


def test_collections_are_public_vector_layers_with_crs84_extent(client):
    doc = client.get("/collections").json()
    ids = {c["id"] for c in doc["collections"]}
    assert {"buildings", "roads", "amenities"} <= ids
    assert not {"dem", "orthophoto", "survey_building_survey", "traces_daladala"} & ids
    one = client.get("/collections/buildings").json()
    (bbox,) = one["extent"]["spatial"]["bbox"]
    assert one["extent"]["spatial"]["crs"].endswith("/OGC/1.3/CRS84")
    assert 39.22 < bbox[0] < bbox[2] < 39.26 and -6.83 < bbox[1] < bbox[3] < -6.80
    assert any(link["rel"] == "items" and link["type"] == GEOJSON for link in one["links"])
    assert client.get("/collections/dem").status_code == 404
    assert client.get("/collections/survey_building_survey").status_code == 404


def test_items_in_bbox_intersect_it(client):
    r = client.get(f"/collections/buildings/items?bbox={BONDENI_BBOX}&limit=500")
    assert r.status_code == 200 and r.headers["content-type"] == GEOJSON
    doc = r.json()
    assert 0 < doc["numberReturned"] <= 500 and doc["numberMatched"] >= doc["numberReturned"]
    assert doc["numberReturned"] == len(doc["features"])
    box = shapely.box(*map(float, BONDENI_BBOX.split(",")))
    geoms = shapely.from_geojson([json.dumps(f["geometry"]) for f in doc["features"]])
    assert shapely.intersects(geoms, box).all()
    six = client.get("/collections/buildings/items?bbox=39.2330,-6.8230,0,39.2380,-6.8180,100&limit=500")
    assert six.json()["numberMatched"] == doc["numberMatched"]  # 6 numbers: heights ignored


def test_numbers_and_timestamp(client):
    doc = client.get("/collections/buildings/items").json()
    assert doc["numberMatched"] == 6780
    assert doc["numberReturned"] == 10  # default limit
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", doc["timeStamp"])


def test_limit_is_clamped_to_the_maximum(client):
    doc = client.get("/collections/buildings/items?limit=10001").json()
    assert doc["numberReturned"] == 6780  # fewer than the 10 000 maximum exist
    small = TestClient(create_app(client.app.state.civicmap_workspace, ServiceSettings(max_items_limit=50)))
    doc = small.get("/collections/buildings/items?limit=10001").json()
    assert doc["numberReturned"] == 50
    nxt = next(link["href"] for link in doc["links"] if link["rel"] == "next")
    assert "limit=50" in nxt


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=-1",
        "limit=abc",
        "limit=1e9",
        "offset=-1",
        "bbox=1,2,3",
        "bbox=1,2,3,4,5",
        "bbox=a,b,c,d",
        "bbox=39.25,-6.82,39.23,-6.80",  # minx > maxx
        "bbox=39.23,-6.80,39.25,-6.82",  # miny > maxy
        "bbox=39.23,-6.82,39.25,nan",
        "bbox=-6.82,39.23,-6.80,399",
        "bbox-crs=http://www.opengis.net/def/crs/EPSG/0/3857",
        "f=xml",
        "f=html",
        "foo=bar",
    ],
)
def test_bad_items_parameters_are_400(client, query):
    r = client.get(f"/collections/buildings/items?{query}")
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "InvalidParameterValue" and body["description"]


def test_offset_beyond_the_end_is_an_empty_page_without_next(client):
    doc = client.get("/collections/buildings/items?offset=7000&limit=10").json()
    assert doc["features"] == [] and doc["numberReturned"] == 0 and doc["numberMatched"] == 6780
    rels = {link["rel"] for link in doc["links"]}
    assert "next" not in rels and "prev" in rels


def test_next_links_walk_every_feature_exactly_once(client):
    url = f"/collections/buildings/items?bbox={BONDENI_BBOX}&limit=300"
    seen, pages = [], 0
    while url:
        doc = client.get(url).json()
        seen += [f["id"] for f in doc["features"]]
        url = next((link["href"] for link in doc["links"] if link["rel"] == "next"), None)
        pages += 1
    assert len(seen) == len(set(seen)) == doc["numberMatched"]
    assert pages == -(-len(seen) // 300)


def test_item_by_id_and_missing_item(client):
    first = client.get("/collections/buildings/items?limit=1").json()["features"][0]
    r = client.get(f"/collections/buildings/items/{first['id']}")
    assert r.status_code == 200 and r.headers["content-type"] == GEOJSON
    feature = r.json()
    assert feature["type"] == "Feature" and feature["id"] == first["id"]
    assert feature["geometry"] == first["geometry"]
    assert {link["rel"] for link in feature["links"]} == {"self", "collection"}
    missing = client.get("/collections/buildings/items/w999999999")
    assert missing.status_code == 404 and missing.json()["code"] == "NotFound"
    numeric = client.get("/collections/streets_walk_edges/items/3")
    assert numeric.status_code == 200 and numeric.json()["id"] == 3


def _rings(geometry):
    kind, coords = geometry["type"], geometry["coordinates"]
    polygons = [coords] if kind == "Polygon" else coords if kind == "MultiPolygon" else []
    return [p[0] for p in polygons], [hole for p in polygons for hole in p[1:]]


def _signed_area(ring):
    xy = np.asarray(ring)
    return 0.5 * np.sum(xy[:-1, 0] * xy[1:, 1] - xy[1:, 0] * xy[:-1, 1])


def test_output_is_rfc_7946(client):
    r = client.get("/collections/buildings/items?limit=10000")
    text = r.text
    doc = json.loads(text)
    assert "crs" not in doc and all("crs" not in f for f in doc["features"])
    numbers = re.findall(r"-?\d+\.(\d+)", json.dumps([f["geometry"] for f in doc["features"]]))
    assert numbers and max(len(n) for n in numbers) <= 6
    exteriors, holes = [], []
    for f in doc["features"]:
        ext, hol = _rings(f["geometry"])
        exteriors += ext
        holes += hol
    assert len(exteriors) >= 6780  # the repaired bow-tie is a MultiPolygon of two
    assert all(_signed_area(r) > 0 for r in exteriors)  # counter-clockwise
    assert all(_signed_area(r) < 0 for r in holes)
    coords = np.concatenate([np.asarray(r) for r in exteriors])
    assert (coords[:, 0] > 39.2).all() and (coords[:, 0] < 39.26).all()  # x is longitude
    assert (coords[:, 1] > -6.83).all() and (coords[:, 1] < -6.80).all()


def test_items_etag_304_and_gzip(client):
    url = "/collections/buildings/items?limit=100"
    r = client.get(url)
    assert r.headers["content-encoding"] == "gzip" and r.headers["cache-control"].startswith("public, max-age=")
    again = client.get(url, headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    assert client.get(url, headers={"Accept-Encoding": "identity"}).content == r.content


def test_null_geometry_is_served_as_null(tmp_path):
    import geopandas as gpd

    store = GeoPackageStore(tmp_path / "n.gpkg")
    frame = gpd.GeoDataFrame({"name": ["here", "nowhere"]}, geometry=[shapely.Point(36.82, -1.29), None], crs=4326)
    store.write_layer("places", frame)
    c = TestClient(create_app(type("WS", (), {"name": "n", "store": store})(), ServiceSettings()))
    features = c.get("/collections/places/items").json()["features"]
    assert [f["geometry"] for f in features] == [{"type": "Point", "coordinates": [36.82, -1.29]}, None]
    assert c.get("/tiles/places/10/616/514.mvt").status_code in (200, 204)
