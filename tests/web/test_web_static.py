"""The web pages as static files: mounts, MIME types, CSP, /docs without a CDN, /summaries."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from fastapi.testclient import TestClient

from civicmap.errors import ConfigError
from civicmap.serve import ServiceSettings, create_app
from civicmap.serve._web import CONTENT_SECURITY_POLICY, default_web_dir
from civicmap.store import GeoPackageStore

WEB = Path(__file__).resolve().parents[2] / "web"
PAGE_FILES = sorted(p for folder in ("map", "form") for p in (WEB / folder).iterdir() if p.is_file())
JS = ("text/javascript", "application/javascript")


def _store(path: Path, *, summary: dict | None = None) -> GeoPackageStore:
    store = GeoPackageStore(path)
    points = gpd.GeoDataFrame({"name": ["a"]}, geometry=[shapely.Point(39.24, -6.81)], crs="EPSG:4326")
    store.write_layer("amenities", points)
    if summary is not None:
        store.write_table("risk_summary", pd.DataFrame({"document": [json.dumps(summary)]}))
        store.write_table("service_gaps", pd.DataFrame({"service": ["water"], "gap": [1]}))
    return store


@pytest.fixture
def client(tmp_path):
    summary = {"buildings": {"totals": {"affected": 12, "total": 40}}, "feeds": {"osm": {"path": "/srv/x.zip", "n": 1}}}
    ws = SimpleNamespace(name="Test town", store=_store(tmp_path / "t.gpkg", summary=summary))
    with TestClient(create_app(ws, ServiceSettings())) as c:
        yield c


def _need_node_modules() -> None:
    if not (WEB / "node_modules" / "maplibre-gl" / "dist").is_dir():
        if os.environ.get("CI"):
            pytest.fail("web/node_modules is missing on CI: run scripts/setup (npm ci in web/)")
        pytest.skip("web/node_modules not installed (scripts/setup runs npm ci)")


def test_the_repository_web_folder_is_found():
    assert default_web_dir() == WEB


@pytest.mark.parametrize("page", ["/map/", "/form/"])
def test_pages_are_html_with_csp(client, page):
    r = client.get(page)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    csp = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert (
        csp["default-src"] == "'self'"
        and csp["img-src"] == "'self' data: blob:"
        and csp["worker-src"] == "'self' blob:"
    )
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    ("path", "types"),
    [("/map/map.js", JS), ("/map/map.css", ("text/css",)), ("/form/form.js", JS), ("/form/sw.js", JS)],
)
def test_assets_have_their_mime_types(client, path, types):
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] in types
    assert "content-security-policy" in r.headers


def test_service_worker_lives_in_the_form_scope(client):
    assert client.get("/form/sw.js").status_code == 200
    assert 'register("sw.js")' in client.get("/form/form.js").text  # scope = /form/


def test_no_traversal_out_of_the_web_folder(client):
    for path in ("/map/%2e%2e/%2e%2e/pyproject.toml", "/map/..%2f..%2fpyproject.toml", "/form/%2e%2e/package.json"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "civicmap" not in r.text.lower() or "dependencies" not in r.text


@pytest.mark.parametrize("path", PAGE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pages_load_nothing_from_elsewhere_and_write_no_html(path):
    text = path.read_text()
    assert not re.search(r"https?://", text), f"{path.name} refers to another origin"
    assert "innerHTML" not in text and "insertAdjacentHTML" not in text and "document.write" not in text


def test_vendored_maplibre_is_served(client):
    _need_node_modules()
    for name in ("maplibre-gl-csp.js", "maplibre-gl-csp-worker.js"):
        r = client.get(f"/vendor/maplibre-gl/{name}")
        assert r.status_code == 200 and r.headers["content-type"].split(";")[0] in JS
        assert r.headers["cache-control"] == "max-age=86400"
    assert client.get("/vendor/maplibre-gl/maplibre-gl.css").headers["content-type"].startswith("text/css")
    assert client.get("/vendor/maplibre-gl/%2e%2e/README.md").status_code == 404  # dist only


def test_docs_use_the_npm_swagger_ui(client):
    _need_node_modules()
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/vendor/swagger-ui/swagger-ui-bundle.js" in r.text and "/vendor/swagger-ui/swagger-ui.css" in r.text
    assert not re.search(r"(src|href)=\"https?://", r.text)
    assert client.get("/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200
    assert client.get("/redoc").status_code == 404  # ReDoc would come from a CDN


def test_web_dir_setting_overrides_and_a_bad_one_is_refused(tmp_path):
    web = tmp_path / "web"
    (web / "map").mkdir(parents=True)
    (web / "map" / "index.html").write_text("<!doctype html><title>mine</title>")
    ws = SimpleNamespace(name="T", store=_store(tmp_path / "t.gpkg"))
    client = TestClient(create_app(ws, ServiceSettings.from_env({"CIVICMAP_WEB_DIR": str(web)})))
    assert client.get("/map/").text == "<!doctype html><title>mine</title>"
    assert client.get("/form/").status_code == 404  # no form folder there
    assert "Swagger UI is not installed" in client.get("/docs").text  # no node_modules there
    with pytest.raises(ConfigError, match=r"has no map/index\.html"):
        create_app(ws, ServiceSettings(web_dir=tmp_path / "nowhere"))


def test_summaries_route(client):
    assert client.get("/summaries").json() == {"summaries": ["risk_summary"]}
    r = client.get("/summaries/risk_summary")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"buildings": {"totals": {"affected": 12, "total": 40}}, "feeds": {"osm": {"n": 1}}}
    assert "etag" in r.headers
    for missing in ("transit_summary", "service_gaps", "amenities", "nope"):
        r = client.get(f"/summaries/{missing}")
        assert r.status_code == 404, missing
        assert "risk_summary, transit_summary" in r.json()["description"]
    assert client.get("/summaries/risk_summary?x=1").status_code == 400


def test_the_form_shell_cached_offline_holds_every_module_the_form_imports():
    """The service worker caches the form's static imports: a second visit without network still opens it."""
    form = WEB / "form"
    imported = set(re.findall(r"""^import [^;]+ from ["']\./([\w.-]+)["']""", (form / "form.js").read_text(), re.M))
    shell = re.search(r"const SHELL = \[([^\]]+)\]", (form / "sw.js").read_text())
    assert shell and imported, "form.js imports or sw.js SHELL not found"
    cached = set(re.findall(r'"([^"]+)"', shell.group(1)))
    assert imported <= cached and {"index.html", "form.js", "form.css"} <= cached, imported - cached
