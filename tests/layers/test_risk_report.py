"""The HTML impact report: numbers equal the summary's, the map, escaping, no network resources, size."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from civicmap.layers.risk.exposure import assign_aggregation, exposed_features
from civicmap.layers.risk.hazard import FLOOD_PETABENCANA
from civicmap.layers.risk.impact import impact_summary
from civicmap.layers.risk.report import MAX_MAP_FEATURES, impact_report_html

UTM = "EPSG:32737"
X0, Y0 = 527000.0, 9246500.0
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
KEYS = ["use_caution", "low", "medium", "high", "affected", "not_affected", "not_exposed", "total"]


def _impacted() -> gpd.GeoDataFrame:
    """40 buildings in 4 rows of 10 (south to north), a hazard band per row, two named areas; 1 row dry."""
    boxes = [
        shapely.box(X0 + 20 * i, Y0 + 20 * j, X0 + 20 * i + 10, Y0 + 20 * j + 10) for j in range(4) for i in range(10)
    ]
    kinds = np.array(["house", IMG, "school", "house"] * 10, dtype=object)
    buildings = gpd.GeoDataFrame({"kind": kinds, "people": np.arange(40) % 7 + 0.5}, geometry=boxes, crs=UTM)
    buildings.index = [f"w{k}" for k in range(40)]
    names = ["low", "medium", "high"]
    zones = gpd.GeoDataFrame(
        {"hazard_class": names}, geometry=[shapely.box(X0 - 5, Y0 + 20 * j - 5, X0 + 200, Y0 + 20 * j + 15)
                                           for j in (1, 2, 3)], crs=UTM,
    )  # fmt: skip
    areas = gpd.GeoDataFrame({"name": ["West", SCRIPT]}, geometry=[shapely.box(X0 - 10, Y0 - 10, X0 + 95, Y0 + 90),
                             shapely.box(X0 + 95, Y0 - 10, X0 + 300, Y0 + 90)], crs=UTM)  # fmt: skip
    out = exposed_features(buildings, zones, classification=FLOOD_PETABENCANA, exposure_type_field="kind")
    return assign_aggregation(out, areas, name_field="name")


@pytest.fixture(scope="module")
def case():
    impacted = _impacted()
    summary = impact_summary(impacted, classification=FLOOD_PETABENCANA, population_field="people",
                             provenance={"exposure": "buildings"})  # fmt: skip
    page = impact_report_html(
        summary, impacted, title=f"Flood {SCRIPT}", classification=FLOOD_PETABENCANA,
        notes=[f"Surveyed by {IMG}", "Depths from a <b>model</b> & guesses"],
        provenance={"buildings": "sample_data/demo/city.osm", "analyst": SCRIPT, "depth_threshold_m": [0.1, 0.7]},
    )  # fmt: skip
    return impacted, summary, page


def _tree(page: str) -> ET.Element:
    assert page.startswith("<!DOCTYPE html>\n")
    return ET.fromstring(page.split("\n", 1)[1])  # well-formed XML: any unescaped markup would break this


def _table(root: ET.Element, ident: str) -> list[tuple[str, list[float]]]:
    """(row header text, data-values of the number cells) of each body row."""
    table = root.find(f".//table[@id='{ident}']")
    assert table is not None, ident
    rows = []
    for tr in table.iter("tr"):
        th = tr.find("th")
        values = [float(td.get("data-value")) for td in tr.findall("td") if td.get("class") == "num"]
        if th is not None and values:
            rows.append(("".join(th.itertext()), values))
    return rows


def test_tables_equal_the_summary(case):
    _, summary, page = case
    root = _tree(page)
    general = _table(root, "general-table")
    assert [name.replace(" ", "_").lower() for name, _ in general] == KEYS
    assert [v[0] for _, v in general] == [summary.totals[k] for k in KEYS]
    assert summary.totals["total"] == 40 and summary.totals["not_exposed"] == 10
    by_type = _table(root, "by-exposure-type-table")
    assert {name: v for name, v in by_type[:-1]} == {t: [row[k] for k in KEYS] for t, row in
                                                      summary.by_exposure_type.items()}  # fmt: skip
    assert by_type[-1] == ("All", [summary.totals[k] for k in KEYS])
    by_area = dict(_table(root, "by-area-table"))
    assert by_area[SCRIPT] == [summary.by_aggregation[SCRIPT][k] for k in KEYS]
    assert by_area["West"] == [summary.by_aggregation["West"][k] for k in KEYS]
    population = dict(_table(root, "population-table"))
    pop = summary.population
    assert population["Affected"] == [pytest.approx(pop.affected)] and population["Total"] == [pop.total]
    assert population["Displaced"] == [pytest.approx(pop.displaced)] and pop.displaced > 0
    needs = dict(_table(root, "needs-table"))
    assert {k.replace(" ", "_"): v[0] for k, v in needs.items()} == {k: q for k, (q, _, _) in
                                                                      summary.minimum_needs.items()}  # fmt: skip
    # shown text: thousands separators and whole units; displaced rounded up
    cell = root.find(".//table[@id='population-table']//tr[@class='total']/td")
    assert cell.text == f"{int(np.ceil(pop.displaced)):,}"


def test_everything_from_data_is_escaped(case):
    _, _, page = case
    root = _tree(page)
    tags = {el.tag for el in root.iter()}
    assert not tags & {"script", "img", "iframe", "object", "embed", "link", "a", "base"}
    assert not [el for el in root.iter() if {"src", "href", "onerror", "onload"} & set(el.attrib)]
    assert SCRIPT not in page and IMG not in page and "<b>" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4  # title x2, area, analyst
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # exposure type and the note
    assert "Depths from a &lt;b&gt;model&lt;/b&gt; &amp; guesses" in page
    text = "".join(root.itertext())
    assert SCRIPT in text and IMG in text  # shown to the reader, as text


def test_no_network_resources(case):
    _, _, page = case
    # (the escaped "&lt;img src=x ..." text is harmless: the parsed tree has no src/href attribute at all)
    for needle in ("http://", "https://", "src='", 'src="', "href", "url(", "@import", "<link", "<script", "<img"):
        assert needle not in page, needle


def test_map_one_path_per_feature(case):
    impacted, _, page = case
    root = _tree(page)
    svg = root.find(".//svg[@id='impact-map']")
    paths = svg.findall("./g[@id='features']/path")
    assert len(paths) == len(impacted) == 40
    codes = sorted(int(p.get("class").split()[0][1:]) for p in paths)
    assert codes == sorted((impacted["hazard_level"] + 1).tolist())
    assert all(p.get("class").endswith(" f") and p.get("d").count("Z") == 1 for p in paths)

    def mean_y(code: int) -> float:
        ys = [float(xy.split(",")[1]) for p in paths if p.get("class").startswith(f"c{code} ")
              for xy in p.get("d").replace("M", "").replace("Z", "").split()]  # fmt: skip
        return float(np.mean(ys))

    # north is up: the northern row (high, code 4) is drawn above the dry southern row (code 0)
    assert mean_y(4) < mean_y(2) < mean_y(0)
    legend = ["".join(t.itertext()) for t in svg.findall("./g[@id='legend']/text")]
    assert legend == ["not exposed", "use_caution", "low", "medium", "high"]
    assert "#d73027" in svg.find("style").text  # the classification's colour of "high"
    scale = "".join(svg.find("./g[@id='scale-bar']/text").itertext())
    assert re.fullmatch(r"(20|50|100) m \(true at latitude -6\.8\d°\)", scale), scale
    assert svg.find("./text[@id='attribution']").text == "© OpenStreetMap contributors"
    assert svg.find("./g[@id='north-arrow']/text").text == "N"


def test_lines_points_combined_and_no_osm():
    lines = gpd.GeoDataFrame(geometry=[shapely.LineString([(X0, Y0), (X0 + 50, Y0 + 50)]),
                                       shapely.Point(X0 + 10, Y0), None], crs=UTM)  # fmt: skip
    lines["exposed"], lines["affected"], lines["exposure_type"] = [True, True, False], [True, False, False], "all"
    combined = lines  # the columns combine_hazards leaves: exposed, affected, no hazard_level
    summary = impact_summary(combined, classification=None)
    page = impact_report_html(summary, combined, title="Combined", classification=None, provenance={"dem": "x.tif"})
    root = _tree(page)
    paths = root.findall(".//g[@id='features']/path")
    assert [p.get("class") for p in paths] == ["c1 d", "c2 s"]  # not affected point first, affected line on top
    assert paths[0].get("d").endswith("h0") and "Z" not in paths[1].get("d")
    assert root.find(".//text[@id='attribution']").text is None  # no OSM input, no OSM credit
    assert [n for n, _ in _table(root, "general-table")] == ["Affected", "Not affected", "Not exposed", "Total"]
    assert "1 features without geometry are not on the map" in page
    assert root.find(".//table[@id='thresholds']") is None
    assert "In the event of these combined hazards" in page


def test_size_is_bounded_for_200000_features():
    n = 200_000
    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 5000, (n, 2)) + np.array([X0, Y0])
    levels = rng.integers(-1, 4, n).astype(np.int16)
    frame = gpd.GeoDataFrame(
        {"hazard_level": levels, "exposed": levels >= 0, "affected": levels >= 1, "exposure_type": "house"},
        geometry=shapely.points(xy), crs=UTM,
    )  # fmt: skip
    summary = impact_summary(frame, classification=FLOOD_PETABENCANA)
    page = impact_report_html(summary, frame, title="Big", classification=FLOOD_PETABENCANA, provenance={})
    assert len(page.encode()) < 1_500_000
    root = _tree(page)
    paths = root.findall(".//g[@id='features']/path")
    assert len(paths) == 5  # one per class, plus not exposed
    assert f"200,000 features are more than the {MAX_MAP_FEATURES:,} drawn one by one" in page
    general = dict(_table(root, "general-table"))
    assert general["Total"] == [n] and general["Not exposed"] == [float((levels < 0).sum())]


def test_feature_cap_is_a_parameter(case):
    impacted, summary, _ = case
    page = impact_report_html(summary, impacted, title="t", classification=FLOOD_PETABENCANA, max_features=10)
    paths = _tree(page).findall(".//g[@id='features']/path")
    assert len(paths) == impacted["hazard_level"].nunique() == 4
    assert "id='impact-map'" not in impact_report_html(summary, None, title="t", classification=FLOOD_PETABENCANA)
    table = pd.DataFrame(impacted.drop(columns="geometry"))  # e.g. population_by_class output: no geometry
    page = impact_report_html(summary, table, title="t", classification=FLOOD_PETABENCANA)
    assert "id='impact-map'" not in page and "no geometry: no map" in page
