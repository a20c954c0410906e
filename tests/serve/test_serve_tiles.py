"""Tiles over HTTP: XYZ MVT/PNG/JPEG, OGC API Tiles path, 204/304/400/404, gzip, TileJSON, /layers."""

import gzip
import struct
import zlib

import mapbox_vector_tile
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pyproj import Transformer

from civicmap.serve import ServiceSettings, create_app
from civicmap.store import GeoPackageStore
from civicmap.tiles.grid import tile_bounds, tiles_for_bbox

MVT = "application/vnd.mapbox-vector-tile"


@pytest.fixture(scope="module")
def workspace(demo_build):
    return demo_build[0]


@pytest.fixture(scope="module")
def client(workspace):
    return TestClient(create_app(workspace, ServiceSettings(tile_max_age_s=1234)))


@pytest.fixture(scope="module")
def informal_tile(workspace):
    """The z16 tile over the middle of Bondeni, the informal neighbourhood."""
    landuse = workspace.read_layer("landuse", crs="EPSG:4326")
    bondeni = landuse[landuse["name"] == "Bondeni"].geometry.iloc[0].representative_point()
    return next(iter(tiles_for_bbox((bondeni.x, bondeni.y, bondeni.x + 1e-7, bondeni.y + 1e-7), 16)))


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    assert zlib.crc32(data[12:29]) == struct.unpack(">I", data[29:33])[0]
    return struct.unpack(">II", data[16:24])


def test_mvt_over_the_informal_area_decodes_to_buildings_in_the_demo(client, workspace, informal_tile):
    z, x, y = informal_tile
    r = client.get(f"/tiles/buildings/{z}/{x}/{y}.mvt", headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200
    assert r.headers["content-type"] == MVT
    assert "content-encoding" not in r.headers
    tile = mapbox_vector_tile.decode(r.content)
    assert list(tile) == ["buildings"]
    layer = tile["buildings"]
    assert layer["extent"] == 4096 and len(layer["features"]) > 50
    # back-project one vertex: tile units -> EPSG:3857 -> lon/lat, inside the demo bbox
    w, s, e, n = tile_bounds(informal_tile)
    ring = layer["features"][0]["geometry"]["coordinates"]
    while isinstance(ring[0][0], list):
        ring = ring[0]
    px, py = ring[0]
    mx, my = w + px / 4096 * (e - w), s + py / 4096 * (n - s)  # decoder flips y to point up
    lon, lat = Transformer.from_crs(3857, 4326, always_xy=True).transform(mx, my)
    west, south, east, north = workspace.bbox
    assert west - 1e-3 <= lon <= east + 1e-3 and south - 1e-3 <= lat <= north + 1e-3
    ids = {f["properties"]["osm_id"] for f in layer["features"]}
    assert all(i.startswith("w") for i in ids)


def test_several_layers_in_one_tile(client, informal_tile):
    z, x, y = informal_tile
    r = client.get(f"/tiles/buildings,roads/{z}/{x}/{y}.mvt")
    assert r.status_code == 200
    assert set(mapbox_vector_tile.decode(r.content)) == {"buildings", "roads"}
    assert client.get(f"/tiles/buildings,buildings/{z}/{x}/{y}.mvt").status_code == 400
    assert client.get(f"/tiles/buildings,dem/{z}/{x}/{y}.mvt").status_code == 404


def test_gzip_is_deterministic_and_etags_differ_per_encoding(client, informal_tile):
    z, x, y = informal_tile
    url = f"/tiles/buildings/{z}/{x}/{y}.mvt"
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    with client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as r:
        raw = b"".join(r.iter_raw())
        zipped_headers = r.headers
    with client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as r:
        raw_again = b"".join(r.iter_raw())
    assert zipped_headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == plain.content
    assert raw == raw_again
    assert len(raw) < 0.8 * len(plain.content)
    assert zipped_headers["etag"] != plain.headers["etag"]
    assert "Accept-Encoding" in zipped_headers["vary"]


def test_etag_and_cache_control_and_304(client, informal_tile):
    z, x, y = informal_tile
    url = f"/tiles/buildings/{z}/{x}/{y}.mvt"
    r = client.get(url)
    etag = r.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert r.headers["cache-control"] == "public, max-age=1234"
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


def test_dem_and_orthophoto_images(client, informal_tile):
    z, x, y = informal_tile
    dem = client.get(f"/tiles/dem/{z - 2}/{x // 4}/{y // 4}.png")
    assert dem.status_code == 200 and dem.headers["content-type"] == "image/png"
    assert png_size(dem.content) == (256, 256)
    ortho_tile = next(iter(tiles_for_bbox((39.2429, -6.8157, 39.24291, -6.81569), 17)))
    ortho = client.get("/tiles/orthophoto/{}/{}/{}.png".format(*ortho_tile))
    assert ortho.status_code == 200 and png_size(ortho.content) == (256, 256)
    jpg = client.get("/tiles/orthophoto/{}/{}/{}.jpg".format(*ortho_tile))
    assert jpg.status_code == 200 and jpg.headers["content-type"] == "image/jpeg"
    assert jpg.content[:3] == b"\xff\xd8\xff"


def test_ogc_api_tiles_path_is_row_then_column(client, informal_tile):
    z, x, y = informal_tile
    xyz = client.get(f"/tiles/buildings/{z}/{x}/{y}.mvt")
    ogc = client.get(f"/collections/buildings/tiles/WebMercatorQuad/{z}/{y}/{x}")
    assert ogc.status_code == 200 and ogc.content == xyz.content
    dem = client.get(f"/collections/dem/tiles/WebMercatorQuad/{z - 2}/{y // 4}/{x // 4}?f=png")
    assert dem.status_code == 200 and png_size(dem.content) == (256, 256)
    assert client.get(f"/collections/buildings/tiles/WebMercatorQuad/{z}/{y}/{x}?f=png").status_code == 404
    assert client.get(f"/collections/buildings/tiles/WebMercatorQuad/{z}/{y}/{x}?g=1").status_code == 400
    assert client.get(f"/collections/buildings/tiles/WorldCRS84Quad/{z}/{y}/{x}").status_code == 404


def test_empty_tiles_are_204(client):
    assert client.get("/tiles/buildings/16/0/0.mvt").status_code == 204
    r = client.get("/tiles/dem/12/0/0.png")
    assert r.status_code == 204 and r.content == b""
    assert client.get("/tiles/buildings/16/0/0.mvt").status_code == 204  # cached empty tile, same answer


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/tiles/buildings/31/0/0.mvt", 404),
        ("/tiles/buildings/-1/0/0.mvt", 404),
        ("/tiles/buildings/3/8/0.mvt", 404),  # x = 2**z
        ("/tiles/buildings/3/0/-1.mvt", 404),
        ("/tiles/buildings/3/1.5/0.mvt", 400),
        ("/tiles/buildings/3/abc/0.mvt", 400),
        ("/tiles/buildings/3/0/0x1.mvt", 400),
        ("/tiles/..%2F..%2Fetc%2Fpasswd/1/0/0.mvt", 404),
        ("/tiles/../../etc/passwd/1/0/0.mvt", 404),
        ("/tiles/%2e%2e/1/0/0.mvt", 404),
        ("/tiles/nope/1/0/0.mvt", 404),
        ("/tiles/survey_building_survey/16/39911/34011.mvt", 404),  # private layer
        ("/tiles/traces_daladala/16/39911/34011.mvt", 404),
        ("/tiles/dem/14/9977/8502.mvt", 404),  # wrong extension for a raster
        ("/tiles/buildings/14/9977/8502.png", 404),  # wrong extension for a vector layer
        ("/tiles/dem/14/9977/8502.jpg", 404),  # JPEG only for imagery
        ("/tiles/buildings/14/9977/8502.mvt?layers=roads", 400),  # unknown parameter
    ],
)
def test_bad_tile_requests(client, path, status):
    r = client.get(path)
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"code", "description"}
    assert body["code"] == ("NotFound" if status == 404 else "InvalidParameterValue")
    assert "x-request-id" in r.headers


def test_tilejson_is_valid_3_0_0(client):
    for layer, ext in (("buildings", "mvt"), ("dem", "png")):
        doc = client.get(f"/layers/{layer}/tilejson.json").json()
        assert doc["tilejson"] == "3.0.0"
        assert doc["tiles"] == [f"http://testserver/tiles/{layer}/{{z}}/{{x}}/{{y}}.{ext}"]
        assert 0 <= doc["minzoom"] <= doc["maxzoom"] <= 30
        w, s, e, n = doc["bounds"]
        assert 39.2 < w < e < 39.26 and -6.83 < s < n < -6.80
        assert w <= doc["center"][0] <= e and s <= doc["center"][1] <= n
    vector = client.get("/layers/buildings/tilejson.json").json()
    (layer,) = vector["vector_layers"]
    assert layer["id"] == "buildings" and layer["fields"]["building"] == "String"
    assert "vector_layers" not in client.get("/layers/dem/tilejson.json").json()
    assert client.get("/layers/survey_building_survey/tilejson.json").status_code == 404


def test_tilejson_uses_the_configured_base_url(workspace):
    c = TestClient(create_app(workspace, ServiceSettings(base_url="https://maps.example.org/city")))
    doc = c.get("/layers/roads/tilejson.json").json()
    assert doc["tiles"] == ["https://maps.example.org/city/tiles/roads/{z}/{x}/{y}.mvt"]


def test_layers_catalog_is_public_lon_lat_and_complete(client):
    layers = {e["id"]: e for e in client.get("/layers").json()}
    assert {"buildings", "roads", "dem", "orthophoto"} <= set(layers)
    assert not [n for n in layers if n.startswith(("survey_", "traces_"))]
    assert layers["buildings"]["type"] == "vector" and layers["dem"]["type"] == "raster"
    for entry in layers.values():
        w, s, e, n = entry["bounds"]
        assert 39.2 < w < e < 39.26 and -6.83 < s < n < -6.80
        assert entry["tiles"].startswith("http://testserver/tiles/")
        assert entry["tilejson"] == f"http://testserver/layers/{entry['id']}/tilejson.json"
    assert "building" in layers["buildings"]["fields"]
    legend = layers["dem"]["legend"]
    assert legend["type"] == "ramp"
    values = [s["value"] for s in legend["stops"]]
    assert values == sorted(values) and 0.5 < values[0] < 1.5 and 38 < values[-1] < 40  # DEM 0.62..39.03 m
    assert layers["orthophoto"]["legend"] is None


def test_hazard_legend_and_osm_attribution(tmp_path):
    import geopandas as gpd
    import shapely

    from civicmap.types import Provenance

    store = GeoPackageStore(tmp_path / "h.gpkg")
    frame = gpd.GeoDataFrame(
        {"hazard_class": [1, 3]}, geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 1, 2, 2)], crs=4326
    )
    store.write_layer("zones", frame, provenance=Provenance("x.osm", "ODbL-1.0 <script>"))
    ws = type("WS", (), {"name": "h", "store": store})()
    c = TestClient(create_app(ws, ServiceSettings()))
    (entry,) = c.get("/layers").json()
    assert [k["label"] for k in entry["legend"]["classes"]] == ["low", "medium", "high", "very high"]
    assert entry["attribution"] == "© OpenStreetMap contributors"
    assert c.get("/layers/zones/tilejson.json").json()["attribution"] == "© OpenStreetMap contributors"


def test_new_layer_version_is_served_without_restart(tmp_path):
    import geopandas as gpd
    import shapely

    store = GeoPackageStore(tmp_path / "v.gpkg")
    store.write_layer("pts", gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.Point(0.001, 0.001)], crs=4326))
    ws = type("WS", (), {"name": "v", "store": store})()
    c = TestClient(create_app(ws, ServiceSettings(catalog_ttl_s=0)))
    first = c.get("/tiles/pts/10/512/511.mvt")
    store.write_layer("pts", gpd.GeoDataFrame({"a": [2, 3]}, geometry=[shapely.Point(0.001, 0.001)] * 2, crs=4326))
    second = c.get("/tiles/pts/10/512/511.mvt", headers={"If-None-Match": first.headers["etag"]})
    assert second.status_code == 200
    values = sorted(f["properties"]["a"] for f in mapbox_vector_tile.decode(second.content)["pts"]["features"])
    assert values == [2, 3]
    assert np.isin(["pts"], [e["id"] for e in c.get("/layers").json()]).all()
