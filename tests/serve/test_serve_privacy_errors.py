"""Private fields never leave the service; CORS is opt-in; 5xx bodies hold only a request id; settings."""

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from fastapi.testclient import TestClient
from rasterio.transform import from_origin

from civicmap.errors import ConfigError
from civicmap.serve import ServiceSettings, create_app
from civicmap.store import GeoPackageStore
from civicmap.tiles.grid import tiles_for_bbox

SECRETS = ("Zawadi Secretname", "+255700111222", "Mama Siri Kabisa", "+255788999000")
PRIVATE = ("respondent_name", "respondent_phone")


class _WS:
    def __init__(self, store):
        self.name = "privacy test"
        self.store = store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A survey layer published (public=True) with two private fields, a hidden layer, and a raster."""
    store = GeoPackageStore(tmp_path_factory.mktemp("privacy") / "p.gpkg")
    survey = gpd.GeoDataFrame(
        {
            "wall_material": ["brick", "mud"],
            "occupants": [5, 7],
            "respondent_name": [SECRETS[0], SECRETS[2]],
            "respondent_phone": [SECRETS[1], SECRETS[3]],
        },
        geometry=[shapely.Point(39.2400, -6.8150), shapely.Point(39.2401, -6.8151)],
        crs=4326,
    ).to_crs(32737)
    meta = {"private_fields": list(PRIVATE), "public": True}
    store.write_layer("survey_buildings", survey, meta=meta)
    by_name = survey.set_index("respondent_name", drop=False)  # the index itself is private: ids become positions
    store.write_layer("survey_named", by_name, meta=meta)
    hidden = survey.assign(respondent_name="Hidden Person")
    store.write_layer("traces_hidden", hidden, meta={"public": False})
    with rasterio.open(
        store.raster_path("dem"), "w", driver="GTiff", width=20, height=20, count=1, dtype="float32",
        crs="EPSG:32737", transform=from_origin(526590, 9246902, 25, 25), nodata=-9999,
    ) as dst:  # fmt: skip
        dst.write(np.arange(400, dtype="float32").reshape(1, 20, 20))
    store.register_raster("dem", meta={"raster_kind": "dem"})
    return store


@pytest.fixture(scope="module")
def client(store):
    return TestClient(create_app(_WS(store), ServiceSettings()))


def _every_route(client):
    tile = next(iter(tiles_for_bbox((39.2400, -6.8150, 39.24001, -6.81499), 16)))
    z, x, y = tile
    paths = [
        "/", "/conformance", "/collections", "/health", "/layers", "/openapi.json", "/docs",
        "/layers/survey_buildings/tilejson.json", "/layers/survey_named/tilejson.json", "/layers/dem/tilejson.json",
        "/collections/survey_buildings", "/collections/survey_buildings/items",
        "/collections/survey_buildings/items?bbox=39.2,-6.9,39.3,-6.7&limit=10000",
        "/collections/survey_named/items", "/collections/survey_named/items/0",
        f"/collections/survey_named/items/{SECRETS[0]}",
        f"/tiles/survey_buildings/{z}/{x}/{y}.mvt", f"/tiles/survey_named/{z}/{x}/{y}.mvt",
        f"/tiles/survey_buildings,survey_named/{z}/{x}/{y}.mvt",
        f"/collections/survey_buildings/tiles/WebMercatorQuad/{z}/{y}/{x}",
        f"/tiles/survey_buildings/{z - 4}/{x >> 4}/{y >> 4}.mvt", "/tiles/dem/14/9977/8502.png",
        "/collections/traces_hidden/items", f"/tiles/traces_hidden/{z}/{x}/{y}.mvt",
        "/layers/traces_hidden/tilejson.json",
    ]  # fmt: skip
    first = client.get("/collections/survey_buildings/items").json()["features"][0]["id"]
    paths.append(f"/collections/survey_buildings/items/{first}")
    return {p: client.get(p, headers={"Accept-Encoding": "identity"}) for p in paths}


def test_private_fields_never_appear_on_any_route(client):
    responses = _every_route(client)
    served = [p for p, r in responses.items() if r.status_code == 200]
    assert len(served) >= 20
    for path, r in responses.items():
        assert r.status_code < 500, path
        for secret in (*SECRETS, *PRIVATE, "Hidden Person", "traces_hidden"):
            if secret in path:  # a 404 may echo what the caller asked for; that is no leak
                assert r.status_code == 404, path
                continue
            assert secret.encode() not in r.content, f"{secret!r} in {path}"
    doc = responses["/collections/survey_buildings/items"].json()
    assert [f["properties"]["wall_material"] for f in doc["features"]] == ["brick", "mud"]
    assert set(doc["features"][0]["properties"]) == {"wall_material", "occupants"}
    assert responses["/collections/traces_hidden/items"].status_code == 404


def test_cors_is_off_unless_configured(store):
    headers = {"Origin": "https://evil.example", "Cookie": "session=abc", "Authorization": "Bearer x"}
    plain = TestClient(create_app(_WS(store), ServiceSettings()))
    r = plain.get("/collections", headers=headers)
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    listed = TestClient(create_app(_WS(store), ServiceSettings(cors_origins=("https://map.example.org",))))
    evil = listed.get("/collections", headers=headers)
    assert "access-control-allow-origin" not in evil.headers
    good = listed.get("/collections", headers={**headers, "Origin": "https://map.example.org"})
    assert good.headers["access-control-allow-origin"] == "https://map.example.org"
    assert good.headers["access-control-allow-credentials"] == "true"
    anyone = TestClient(create_app(_WS(store), ServiceSettings(cors_origins=("*",))))
    r = anyone.get("/collections", headers=headers)
    assert r.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in r.headers


def test_broken_layer_file_gives_500_with_only_a_request_id(tmp_path, caplog):
    store = GeoPackageStore(tmp_path / "b.gpkg")
    with rasterio.open(
        store.raster_path("broken"), "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8",
        crs="EPSG:32737", transform=from_origin(526590, 9246902, 25, 25),
    ) as dst:  # fmt: skip
        dst.write(np.ones((1, 4, 4), dtype="uint8"))
    info = store.register_raster("broken", meta={"raster_kind": "other"})
    info.path.write_bytes(b"II*\x00 this is not a GeoTIFF any more")
    c = TestClient(create_app(_WS(store), ServiceSettings()))
    r = c.get("/tiles/broken/16/39911/34011.png", headers={"X-Request-ID": "trace-42"})
    assert r.status_code == 500
    assert r.json() == {"code": "InternalError", "request_id": "trace-42"}
    assert r.headers["x-request-id"] == "trace-42"
    assert "trace-42" in caplog.text and "broken" in caplog.text  # details are logged, not shown


def test_unexpected_exception_gives_500_with_only_a_request_id(client, monkeypatch):
    def boom(name):
        raise RuntimeError(f"secret internals of {name} at /srv/data/p.gpkg")

    monkeypatch.setattr(client.app.state.civicmap.catalog, "vector", boom)
    r = client.get("/collections/survey_buildings/items?offset=1")
    assert r.status_code == 500
    body = r.json()
    assert set(body) == {"code", "request_id"} and body["request_id"] == r.headers["x-request-id"]
    assert "secret" not in r.text and "/srv" not in r.text


def test_every_response_has_a_request_id(client):
    ids = {client.get(p).headers["x-request-id"] for p in ("/", "/nope", "/collections/x/items", "/health")}
    assert len(ids) == 4
    evil = client.get("/", headers={"X-Request-ID": "<script>alert(1)</script>"})
    assert evil.headers["x-request-id"] != "<script>alert(1)</script>"


def test_health(client):
    doc = client.get("/health").json()
    assert doc["status"] == "ok" and doc["layers"] == 3  # two survey layers and the dem; not traces_hidden


def test_settings_from_env():
    env = {
        "CIVICMAP_PORT": "9000",
        "CIVICMAP_CORS_ORIGINS": "https://a.example, https://b.example/",
        "CIVICMAP_MAX_ITEMS_LIMIT": "500",
        "CIVICMAP_DEFAULT_LIMIT": "20",
        "CIVICMAP_TILE_CACHE_DIR": "/tmp/tiles",
        "CIVICMAP_REQUEST_TIMEOUT": "2.5",
        "CIVICMAP_BASE_URL": "https://maps.example.org/",
    }
    s = ServiceSettings.from_env(env)
    assert s.port == 9000 and s.cors_origins == ("https://a.example", "https://b.example")
    assert s.max_items_limit == 500 and s.default_limit == 20 and s.request_timeout_s == 2.5
    assert str(s.tile_cache_dir) == "/tmp/tiles" and s.base_url == "https://maps.example.org"
    assert s.cors_allow_credentials
    assert not ServiceSettings(cors_origins=("*",)).cors_allow_credentials
    assert ServiceSettings.from_env({}) == ServiceSettings()
    with pytest.raises(ConfigError, match="CIVICMAP_PORT"):
        ServiceSettings.from_env({"CIVICMAP_PORT": "eighty"})
    with pytest.raises(ConfigError, match="default_limit"):
        ServiceSettings(default_limit=20_000)
    with pytest.raises(ConfigError, match="base_url"):
        ServiceSettings(base_url="maps.example.org")


def test_timeout_gives_503(store, monkeypatch):
    import time

    c = TestClient(create_app(_WS(store), ServiceSettings(request_timeout_s=0.2)))
    state = c.app.state.civicmap

    def slow(key, render):
        time.sleep(1.0)
        return b""

    monkeypatch.setattr(state.cache, "get_or_render", slow)
    r = c.get("/tiles/survey_buildings/16/39911/34011.mvt")
    assert r.status_code == 503 and set(r.json()) == {"code", "request_id"}
    assert r.headers["retry-after"]


def test_run_builds_the_app_and_starts_uvicorn(monkeypatch, store):
    import civicmap.serve.app as app_module

    seen = {}
    monkeypatch.setattr(app_module, "open_workspace", lambda path: _WS(store))
    monkeypatch.setattr(app_module.uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    monkeypatch.setenv("CIVICMAP_PORT", "9999")
    app_module.run("some/project", host="0.0.0.0")
    assert seen["host"] == "0.0.0.0" and seen["port"] == 9999  # env for what the call leaves out
    assert seen["app"].state.civicmap.settings.host == "0.0.0.0"


def test_raster_handles_are_never_shared_between_concurrent_users(client):
    raster = client.app.state.civicmap.catalog.raster("dem")
    with raster.pool.dataset() as a, raster.pool.dataset() as b:
        assert a is not b and not a.closed and not b.closed
    with raster.pool.dataset() as again:
        assert again in (a, b)  # handles are reused, not reopened


def test_json_documents_are_gzipped_when_large(client):
    r = client.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert client.get("/conformance", headers={"Accept-Encoding": "gzip"}).headers.get("content-encoding") is None
