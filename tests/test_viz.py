"""civicmap.viz: folium maps build offline, show the right features, escape text and hide private columns."""

import json
import logging
import os
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
import xyzservices.providers as xyz
from pyproj import Transformer

from civicmap.errors import ConfigError, CRSError, InputError
from civicmap.impact import PRESETS
from civicmap.viz import (
    INFORMALITY_COLOURS,
    MISSING_COLOUR,
    NUMERIC_RAMP,
    RISK_COLOURS,
    explore,
    explore_layer,
    risk_map,
    settlement_map,
    transit_map,
)
from civicmap.viz import offline as make_offline

XSS = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"
UTM_37S = "EPSG:32737"


@pytest.fixture(scope="module")
def ws(demo_build):
    return demo_build[0]


@pytest.fixture
def offline(no_network):
    """Rendering must not touch the network (the conftest's guard)."""


def render(m) -> str:
    return m.get_root().render()


def geojson_layers(page: str) -> list[dict]:
    """Every GeoJSON FeatureCollection embedded in a rendered folium page, in drawing order."""
    decoder = json.JSONDecoder()
    return [decoder.raw_decode(page, m.end())[0] for m in re.finditer(r"geo_json_[0-9a-f]+_add\(", page)]


def legend_html(page: str) -> str:
    """The (decoded) inner HTML of the civicmap legend control."""
    match = re.search(r'"civicmap-legend"\);.*?div\.innerHTML = (".*?");', page, flags=re.S)
    assert match, "no legend in the page"
    return json.loads(match.group(1))


def attributions(page: str) -> list[str]:
    """The data credits added to the map's attribution control (decoded)."""
    return [json.loads(m) for m in re.findall(r"addAttribution\((\".*?\")\)", page)]


def popup_values(layer: dict, key: str = "f0") -> list[str]:
    return [f["properties"][key] for f in layer["features"]]


def squares(n: int, *, crs: str = UTM_37S, size_m: float = 10.0) -> gpd.GeoDataFrame:
    side = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    x0, y0 = 520_000 + (i % side) * size_m * 2, 9_240_000 + (i // side) * size_m * 2
    geoms = shapely.box(x0, y0, x0 + size_m, y0 + size_m)
    return gpd.GeoDataFrame({"value": i.astype(float), "kind": np.where(i % 2, "a", "b")}, geometry=geoms, crs=crs)


# -- workspace maps ----------------------------------------------------------------------
def test_risk_map_draws_every_layer_with_declared_colours(ws, offline):
    m = risk_map(ws)
    page = render(m)
    zones, buildings, routes, facilities = geojson_layers(page)
    stored = {n: ws.read_layer(n) for n in ("hazard_zones", "risk_buildings", "evacuation_routes", "amenities")}
    assert len(zones["features"]) == stored["hazard_zones"].geometry.notna().sum() > 0
    assert len(buildings["features"]) == len(stored["risk_buildings"]) == 6780
    assert len(routes["features"]) == len(stored["evacuation_routes"]) == stored["risk_buildings"]["affected"].sum()
    uses = stored["amenities"]["use"].value_counts()
    assert len(facilities["features"]) == uses["shelter"] + uses["health"] == 10
    classes = {c.name: c.colour for c in PRESETS["flood_petabencana"].classes}
    assert {f["properties"]["f0"]: f["properties"]["style"]["color"] for f in zones["features"]} == {
        name: classes[name] for name in stored["hazard_zones"]["hazard_class"].unique()
    }
    risk = {(f["properties"]["f3"], f["properties"]["style"]["fillColor"]) for f in buildings["features"]}
    assert risk == {(k, RISK_COLOURS[k]) for k in stored["risk_buildings"]["risk_class"].unique()}
    legend = legend_html(page)
    assert legend.count("civicmap-legend-item") == 4 + 5 + 1 + 2  # hazard classes, risk classes, route, facilities
    assert "high (&gt; 1.5 m)" in legend and "low (0.1–0.7 m)" in legend
    assert any("© OpenStreetMap contributors" in a for a in attributions(page))
    assert "respondent_name" not in page and "respondent_phone" not in page
    assert m._repr_html_().startswith("<div")


def test_settlement_map_shows_public_cells_by_class_or_index(ws, offline):
    cells = ws.read_layer("settlement_cells")
    page = render(settlement_map(ws))
    (layer,) = geojson_layers(page)
    assert len(layer["features"]) == len(cells) == 231
    assert legend_html(page).count("civicmap-legend-item") == cells["informality_class"].nunique() == 3
    colours = {f["properties"]["f3"]: f["properties"]["style"]["color"] for f in layer["features"]}
    assert colours == {k: INFORMALITY_COLOURS[k] for k in cells["informality_class"].unique()}
    by_index = render(settlement_map(ws, "informality_index"))
    assert "civicmap-legend-item" not in by_index and "informality index" in by_index  # colour bar caption
    map_name = re.search(r"var (map_[0-9a-f]+) = L\.map", by_index).group(1)
    bar = re.search(
        r"var (civicmap_control_[0-9a-f]+) = L\.control[^;]*;\s*\1\.onAdd[^}]*civicmap-colour-bar", by_index
    )
    assert bar and re.search(rf"{bar.group(1)}\.addTo\((map_[0-9a-f]+)\)", by_index).group(1) == map_name  # on the map
    assert len(geojson_layers(by_index)[0]["features"]) == 231


def test_transit_map_shows_feed_stops_and_uncovered_cells(ws, offline):
    page = render(transit_map(ws))
    uncovered, stops = geojson_layers(page)
    stored = ws.read_layer("transit_uncovered")
    assert len(uncovered["features"]) == stored.geometry.notna().sum() > 0  # null geometries are skipped
    assert len(stops["features"]) == len(ws.read_layer("transit_feed_stops")) == 60
    assert {f["properties"]["f1"] for f in stops["features"]} == {"osm", "traces_daladala"}
    legend = legend_html(page)
    assert legend.count("civicmap-legend-item") == 3 and "no stop within 500 m walk" in legend


def test_explore_layer_never_embeds_private_survey_fields(ws, offline, caplog):
    private = ws.store.layer_info("survey_building_survey").meta["private_fields"]
    raw = ws.read_layer("survey_building_survey")
    with caplog.at_level(logging.WARNING, logger="civicmap.viz"):
        page = render(explore_layer(ws, "survey_building_survey", "wall_material"))
    assert len(geojson_layers(page)[0]["features"]) == len(raw) == 333
    for name in private:
        assert name not in page
    phones = raw["respondent_phone"].dropna().astype(str)
    assert len(phones) and not any(p in page for p in phones)
    assert "Not a public layer" in page and "not public" in caplog.text
    with pytest.raises(InputError, match="hidden"):
        explore_layer(ws, "survey_building_survey", "respondent_name")
    with pytest.raises(InputError, match="raster"):
        explore_layer(ws, "dem")


# -- explore -------------------------------------------------------------------------------
def test_explore_caps_a_big_frame_with_a_warning_and_a_note(offline, caplog):
    gdf = squares(50_000)
    with caplog.at_level(logging.WARNING, logger="civicmap.viz"):
        page = render(explore(gdf, "kind", tiles=None))
    (layer,) = geojson_layers(page)
    assert len(layer["features"]) == 20_000
    assert "random sample of 20,000 of 50,000" in caplog.text
    assert "random sample of 20,000 of 50,000 features" in page  # the note on the map
    assert len(geojson_layers(render(explore(gdf.head(500), tiles=None)))[0]["features"]) == 500
    small = render(explore(gdf.head(500), tiles=None, max_features=100))
    assert len(geojson_layers(small)[0]["features"]) == 100


def test_explore_simplifies_a_huge_polygon_without_dropping_it(offline, caplog):
    ring = shapely.Point(530_000, 9_245_000).buffer(1_000, quad_segs=50_000)  # 200 001 vertices
    gdf = gpd.GeoDataFrame({"name": ["ward"]}, geometry=[ring], crs=UTM_37S)
    with caplog.at_level(logging.WARNING, logger="civicmap.viz"):
        (layer,) = geojson_layers(render(explore(gdf, tiles=None, max_features=1_000)))
    coords = layer["features"][0]["geometry"]["coordinates"][0]
    assert len(layer["features"]) == 1 and 50 < len(coords) < 5_000
    assert "simplified" in caplog.text


def test_explore_escapes_every_text_it_shows(offline):
    gdf = squares(3, crs="EPSG:4326", size_m=0.001).assign(kind=[XSS, "b", None])
    gdf[XSS] = ["x", "y", "z"]
    m = explore(gdf, "kind", tiles=None, legend_title=XSS, attribution=XSS, popup_fields=["kind", XSS])
    page = render(m)
    assert "<img" not in page.lower()
    (layer,) = geojson_layers(page)
    assert popup_values(layer)[0] == ESCAPED
    aliases = [json.loads(a) for a in re.findall(r"let aliases = (\[.*?\]);", page)]
    assert ["kind", ESCAPED] in aliases  # popup column labels
    legend = legend_html(page)
    assert legend.count(ESCAPED) == 2 and "<img" not in legend  # title and category
    assert "(no value)" in legend
    assert attributions(page) == [ESCAPED]


def test_explore_hide_keeps_columns_out_of_the_page(offline):
    gdf = squares(4, crs="EPSG:4326", size_m=0.001).assign(respondent_phone="+255 700 123 456")
    for hide in (["respondent_phone"], "respondent_phone"):
        page = render(explore(gdf, "kind", tiles=None, hide=hide))
        assert "respondent_phone" not in page and "700 123 456" not in page
    with pytest.raises(InputError, match="hidden"):
        explore(gdf, tiles=None, popup_fields=["respondent_phone"], hide=["respondent_phone"])
    with pytest.raises(InputError, match="hidden"):
        explore(gdf, "respondent_phone", hide=["respondent_phone"])


def test_explore_draws_utm_input_as_lon_lat(offline):
    lon, lat = 39.2395, -6.8154  # Dar es Salaam
    x, y = Transformer.from_crs("EPSG:4326", UTM_37S, always_xy=True).transform(lon, lat)
    gdf = gpd.GeoDataFrame({"name": ["stop"]}, geometry=[shapely.Point(x, y)], crs=UTM_37S)
    gdf["buffer"] = gdf.buffer(10)  # a second geometry column is not a popup field
    (layer,) = geojson_layers(render(explore(gdf, tiles=None)))
    assert layer["features"][0]["geometry"]["coordinates"] == pytest.approx([lon, lat], abs=1e-6)
    assert layer["features"][0]["properties"]["f0"] == "stop" and "f1" not in layer["features"][0]["properties"]
    assert "crs" not in layer


def test_explore_numeric_column_gets_a_ramp_and_grey_for_missing(offline):
    gdf = squares(3, crs="EPSG:4326", size_m=0.001).assign(value=[0.0, 10.0, np.nan])
    page = render(explore(gdf, "value", tiles=None))
    (layer,) = geojson_layers(page)
    colours = [f["properties"]["style"]["color"] for f in layer["features"]]
    assert colours == [NUMERIC_RAMP[0], NUMERIC_RAMP[-1], MISSING_COLOUR]
    assert popup_values(layer) == ["0.0", "10.0", ""]
    assert "civicmap-colour-bar" in page and "d3.min.js" not in page  # our own colour bar: no d3 from a CDN


def test_explore_skips_null_and_empty_geometries(offline):
    gdf = squares(3, crs="EPSG:4326", size_m=0.001)
    gdf.loc[1, "geometry"] = None
    gdf.loc[2, "geometry"] = shapely.Polygon()
    (layer,) = geojson_layers(render(explore(gdf, "kind", tiles=None)))
    assert len(layer["features"]) == 1
    collection = shapely.GeometryCollection([shapely.Point(39.24, -6.81), shapely.box(39.2, -6.8, 39.21, -6.79)])
    mixed = gpd.GeoDataFrame({"kind": ["gc"]}, geometry=[collection], crs="EPSG:4326")
    (layer,) = geojson_layers(render(explore(mixed, "kind", tiles=None)))  # no folium GeometryCollection warning
    assert sorted(f["geometry"]["type"] for f in layer["features"]) == ["Point", "Polygon"]


def test_explore_categories_use_declared_colours_in_order(offline):
    gdf = squares(4, crs="EPSG:4326", size_m=0.001).assign(kind=["high", "low", "high", "other"])
    page = render(explore(gdf, "kind", tiles=None, colours={"low": "#00ff00", "high": "#ff0000"}))
    legend = legend_html(page)
    assert legend.index("low") < legend.index("high") < legend.index("other")
    colours = [f["properties"]["style"]["color"] for f in geojson_layers(page)[0]["features"]]
    assert colours[:3] == ["#ff0000", "#00ff00", "#ff0000"]


def test_tiles_none_gives_a_map_without_tile_requests(offline):
    gdf = squares(2, crs="EPSG:4326", size_m=0.001)
    assert "tile.openstreetmap.org" in render(explore(gdf))
    page = render(explore(gdf, tiles=None))
    assert "tileLayer" not in page and "openstreetmap.org/{z}" not in page and "{z}" not in page
    custom = render(explore(gdf, tiles="https://tiles.example.org/{z}/{x}/{y}.png", attribution="© Example"))
    assert "https://tiles.example.org/{z}/{x}/{y}.png" in custom and "\\u00a9 Example" in custom
    assert "server.arcgisonline.com" in render(explore(gdf, tiles=xyz.Esri.WorldImagery))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"column": "nope"}, InputError, "not in the frame"),
        ({"popup_fields": ["nope"]}, InputError, "not in the frame"),
        ({"tiles": "https://t.example/{z}/{x}/{y}.png"}, InputError, "attribution"),
        ({"tiles": "NoSuchProvider"}, InputError, "not a known basemap"),
        ({"tiles": 42}, InputError, "expected a name"),
        ({"column": "kind", "colours": {"a": "red;x:url(y)"}}, InputError, "rrggbb"),
        ({"column": "value", "colours": {"a": "#ff0000"}}, InputError, "list of two or more"),
        ({"max_features": 0}, InputError, "positive"),
    ],
)
def test_explore_rejects_bad_arguments_clearly(kwargs, error, match):
    with pytest.raises(error, match=match):
        explore(squares(2, crs="EPSG:4326", size_m=0.001), **kwargs)


def test_explore_needs_a_crs_and_a_geodataframe():
    with pytest.raises(CRSError):
        explore(squares(2).set_crs(None, allow_override=True))
    with pytest.raises(InputError, match="GeoDataFrame"):
        explore(squares(2).drop(columns="geometry"))


LEAFLET = Path(__file__).resolve().parents[1] / "web" / "node_modules" / "leaflet" / "dist" / "leaflet.js"
REMOTE = re.compile(r"""(?:src|href)=["']?(?:https?:)?//""")


def test_offline_map_inlines_leaflet_and_loads_nothing_remote(ws, offline):
    if not LEAFLET.is_file():
        if os.environ.get("CI"):
            pytest.fail("web/node_modules/leaflet is missing on CI: scripts/setup runs npm ci")
        pytest.skip("run scripts/setup (npm ci in web/) for Leaflet")
    online = render(transit_map(ws, tiles=None))
    assert REMOTE.search(online)  # folium's CDN links, as made
    page = render(make_offline(transit_map(ws, tiles=None)))
    assert not REMOTE.search(page), REMOTE.search(page)
    assert page.count('src="data:text/javascript;base64,') == 1 and page.count('href="data:text/css;base64,') == 1
    assert len(geojson_layers(page)) == len(geojson_layers(online)) > 0


def test_offline_map_refuses_remote_tiles_and_missing_leaflet(ws, tmp_path):
    with pytest.raises(InputError, match=r"tile\.openstreetmap\.org.*tiles=None"):
        make_offline(transit_map(ws))
    local = explore(
        ws.read_layer("amenities"), tiles="http://127.0.0.1:8000/tiles/dem/{z}/{x}/{y}.png", attribution="x"
    )
    with pytest.raises(ConfigError, match="npm ci"):
        make_offline(local, web_dir=tmp_path)  # a local tile server is fine; Leaflet is not in tmp_path
