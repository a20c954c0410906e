"""Exposure: hazard polygons and rasters against buildings, points, roads, people; aggregation areas."""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from civicmap.crs import to_crs
from civicmap.errors import CRSError, InputError
from civicmap.layers.risk import (
    EXPOSURE_TYPES,
    FLOOD_PETABENCANA,
    FLOOD_WET_DRY,
    GENERIC,
    assign_aggregation,
    classify_hazard_polygons,
    exposed_features,
    exposed_to_raster,
    population_by_class,
)

UTM48S = "EPSG:32748"  # the local UTM zone of Jakarta, chosen by local_metric_crs


@pytest.fixture(scope="module")
def jakarta(realdata):
    return realdata / "hazard" / "jakarta"


@pytest.fixture(scope="module")
def buildings(jakarta):
    return gpd.read_file(jakarta / "jakarta_building.gpkg")


@pytest.fixture(scope="module")
def flood_tif(jakarta):
    return jakarta / "jakarta_continuous_flood.tif"


@pytest.fixture(scope="module")
def by_centroid(buildings, flood_tif):
    return exposed_to_raster(buildings, flood_tif, classification=FLOOD_PETABENCANA, stat="centroid")


@pytest.fixture(scope="module")
def by_max(buildings, flood_tif):
    return exposed_to_raster(buildings, flood_tif, classification=FLOOD_PETABENCANA, stat="max")


@pytest.fixture(scope="module")
def multipart_zones(jakarta):
    gdf = gpd.read_file(jakarta / "flood_multipart_polygons.shp")
    return classify_hazard_polygons(gdf, field="FLOODPRONE", classification=FLOOD_WET_DRY,
                                    value_map={"yes": "wet", "no": "dry"})  # fmt: skip


def classes(frame: pd.DataFrame) -> list[str | None]:
    """Class names with missing (not exposed) as None; pandas may store them as NaN in a str column."""
    return [None if pd.isna(v) else v for v in frame["hazard_class"]]


def counts(frame: pd.DataFrame) -> dict[int, int]:
    return {int(k): int(v) for k, v in frame["hazard_level"].value_counts().sort_index().items()}


def sjoin_levels(exposure: gpd.GeoDataFrame, zones: gpd.GeoDataFrame, classification) -> np.ndarray:
    """The slow, obviously right oracle: sjoin, drop edge-only contacts, most severe class per feature."""
    exp = to_crs(exposure, UTM48S)
    zon = to_crs(zones[zones["hazard_class"].notna()], UTM48S)
    zon = zon.assign(level=zon["hazard_class"].map({n: i for i, n in enumerate(classification.names)}))
    joined = gpd.sjoin(exp, zon[["level", "geometry"]], predicate="intersects", how="inner")
    partner = zon.geometry.loc[joined["index_right"]].to_numpy()
    touching = np.array([a.touches(b) for a, b in zip(joined.geometry.to_numpy(), partner, strict=True)])
    best = joined[~touching].groupby(level=0)["level"].max()
    return best.reindex(exp.index, fill_value=-1).to_numpy()


# ---- Jakarta continuous flood raster x 7689 buildings ------------------------------------------


def test_centroid_reproduces_the_realdata_readme_counts(by_centroid, buildings, flood_tif):
    # README (self-computed with [lower, upper) classes at representative points):
    # nodata 71, use_caution 3635, low 2348, medium 1343, high 292
    assert counts(by_centroid) == {-1: 71, 0: 3635, 1: 2348, 2: 1343, 3: 292}
    # Same numbers under our (lower, upper] rule because no sampled depth sits exactly on 0.1 / 0.7 / 1.5:
    pts = to_crs(buildings, "EPSG:4326").geometry.representative_point()
    with rasterio.open(flood_tif) as ds:
        depth = np.array([v[0] for v in ds.sample(zip(pts.x, pts.y, strict=True))])
    on_threshold = np.isin(depth, np.array([0.1, 0.7, 1.5], dtype=np.float32))
    assert on_threshold.sum() == 0
    # and an independent per-building check through rasterio's own sampler
    expected = np.select(
        [depth == -9999, depth <= np.float32(0.1), depth <= np.float32(0.7), depth <= np.float32(1.5)],
        [-1, 0, 1, 2], default=3,
    )  # fmt: skip
    assert (by_centroid["hazard_level"].to_numpy() == expected).all()


def test_max_over_touched_cells_is_never_less_severe(by_max, by_centroid):
    assert by_max.index.equals(by_centroid.index)
    # buildings straddling the raster edge get a class from the cells they overlap (71 -> 44 not exposed);
    # larger buildings reach deeper cells, so counts move to the severe classes
    assert counts(by_max) == {-1: 44, 0: 3425, 1: 2293, 2: 1538, 3: 389}
    assert (by_max["hazard_level"] >= by_centroid["hazard_level"]).all()
    assert by_max["hazard_level"].sum() > by_centroid["hazard_level"].sum()
    assert by_max.crs == UTM48S
    assert by_max["affected"].sum() == 2293 + 1538 + 389


def test_max_matches_exactextract(buildings, by_max, flood_tif):
    exactextract = pytest.importorskip("exactextract")
    raw = exactextract.exact_extract(str(flood_tif), buildings, "max", output="pandas")["max"]
    oracle = FLOOD_PETABENCANA.classify(raw.to_numpy(dtype=np.float32))  # NaN (no cell) -> -1
    assert (oracle == by_max["hazard_level"].to_numpy()).all()


def test_mean_stat_and_bad_stat(buildings, flood_tif, by_max):
    by_mean = exposed_to_raster(buildings, flood_tif, classification=FLOOD_PETABENCANA, stat="mean")
    assert (by_mean["hazard_level"] <= by_max["hazard_level"]).all()  # a mean never exceeds the max
    assert (by_mean["exposed"] == by_max["exposed"]).all()
    with pytest.raises(InputError, match="stat 'median'"):
        exposed_to_raster(buildings, flood_tif, classification=FLOOD_PETABENCANA, stat="median")


def test_exposure_types_from_the_jakarta_type_column(buildings, flood_tif):
    out = exposed_to_raster(buildings.iloc[:0], flood_tif, classification=FLOOD_PETABENCANA)
    assert len(out) == 0 and "hazard_level" in out.columns
    typed = exposed_to_raster(buildings, flood_tif, classification=FLOOD_PETABENCANA, stat="centroid",
                              exposure_type_field="TYPE", type_mapping=EXPOSURE_TYPES)  # fmt: skip
    got = typed["exposure_type"].value_counts().to_dict()
    # TYPE: School 377 + University/College 17; Clinic/Doctor 92 + Hospital 31; worship 580 + 10 + 2;
    # Police Station 20 + Fire Station 6; Commercial 147 + Supermarket 8
    assert got["education"] == 394
    assert got["health"] == 123
    assert got["place_of_worship"] == 592
    assert got["emergency_service"] == 26
    assert got["commercial"] == 155
    assert got["residential"] == 6120
    assert "other" not in got
    as_is = exposed_to_raster(buildings, flood_tif, classification=FLOOD_PETABENCANA, stat="centroid",
                              exposure_type_field="TYPE")  # fmt: skip
    assert as_is["exposure_type"].value_counts()["School"] == 377


# ---- hazard polygons x OSM buildings and roads -------------------------------------------------


def test_floods_shp_buildings_against_sjoin(jakarta):
    buildings = gpd.read_file(jakarta / "buildings_osm_4326.shp")
    zones = classify_hazard_polygons(gpd.read_file(jakarta / "floods.shp"), field="FLOODPRONE",
                                     classification=FLOOD_WET_DRY, value_map={"YES": "wet"})  # fmt: skip
    out = exposed_features(buildings, zones, classification=FLOOD_WET_DRY)
    expected = sjoin_levels(buildings, zones.zones, FLOOD_WET_DRY)
    assert (out["hazard_level"].to_numpy() == expected).all()
    # floods.shp holds only wet zones: nothing can be "exposed but not affected"
    wet = int((expected == 1).sum())
    assert wet > 0
    assert int(out["affected"].sum()) == wet
    assert int((out["exposed"] & ~out["affected"]).sum()) == 0
    assert int((~out["exposed"]).sum()) == 250 - wet


def test_multipart_zones_buildings_against_sjoin(jakarta, multipart_zones):
    buildings = gpd.read_file(jakarta / "buildings_osm_4326.shp")
    out = exposed_features(buildings, multipart_zones, classification=FLOOD_WET_DRY)
    expected = sjoin_levels(buildings, multipart_zones.zones, FLOOD_WET_DRY)
    assert (out["hazard_level"].to_numpy() == expected).all()
    assert counts(out) == {0: 182, 1: 68}  # every building lies in some RW: none is "not exposed"
    assert out["hazard_class"].value_counts().to_dict() == {"dry": 182, "wet": 68}


def test_points_instead_of_polygons_use_point_semantics(jakarta, multipart_zones):
    buildings = gpd.read_file(jakarta / "buildings_osm_4326.shp")
    points = buildings.set_geometry(to_crs(buildings, UTM48S).representative_point().to_crs(4326))
    out = exposed_features(points, multipart_zones, classification=FLOOD_WET_DRY)
    expected = sjoin_levels(points, multipart_zones.zones, FLOOD_WET_DRY)
    assert (out["hazard_level"].to_numpy() == expected).all()
    # a point can only be in fewer zones than its polygon: never more severe
    polys = exposed_features(buildings, multipart_zones, classification=FLOOD_WET_DRY)
    assert (out["hazard_level"] <= polys["hazard_level"]).all()


def test_roads_are_cut_and_lengths_add_up(jakarta, multipart_zones):
    roads = gpd.read_file(jakarta / "roads_osm_4326.shp")
    out = exposed_features(roads, multipart_zones, classification=FLOOD_WET_DRY)
    roads_m = to_crs(roads, UTM48S)
    # all pieces (exposed or not) add up to the whole network
    assert out["length_m"].sum() == pytest.approx(roads_m.length.sum(), rel=1e-6)
    # exposed pieces add up to the roads clipped to the zones (geopandas clip as the oracle), within 0.1 %
    zones_m = to_crs(multipart_zones.classified, UTM48S)
    clipped = gpd.clip(roads_m, zones_m.union_all()).length.sum()
    assert out.loc[out["exposed"], "length_m"].sum() == pytest.approx(clipped, rel=1e-3)
    wet_clipped = gpd.clip(roads_m, zones_m[zones_m["hazard_class"] == "wet"].union_all()).length.sum()
    assert out.loc[out["hazard_class"] == "wet", "length_m"].sum() == pytest.approx(wet_clipped, rel=1e-3)
    assert set(out.index) <= set(roads.index) and not out.index.is_unique  # pieces repeat their road's index


def test_roads_on_the_flood_raster(jakarta, flood_tif):
    roads = gpd.read_file(jakarta / "roads_osm_4326.shp")
    out = exposed_to_raster(roads, flood_tif, classification=FLOOD_PETABENCANA)
    assert out["length_m"].sum() == pytest.approx(to_crs(roads, UTM48S).length.sum(), rel=1e-3)
    # the raster starts at 106.8203 E and most roads lie west of it: those metres are "not exposed"
    per = out.groupby("hazard_level")["length_m"].sum()
    assert per[-1] > 0 and per.drop(-1).sum() > 0


# ---- aggregation --------------------------------------------------------------------------------


def test_aggregation_by_districts(by_max, jakarta):
    districts = gpd.read_file(jakarta / "district_osm_jakarta.geojson")
    out = assign_aggregation(by_max, districts, name_field="KAB_NAME")
    # oracle: sjoin of representative points within the (repaired) districts
    dist_m = to_crs(districts, UTM48S).assign(geometry=lambda d: d.make_valid())
    pts = gpd.GeoDataFrame(geometry=by_max.representative_point(), crs=by_max.crs)
    joined = gpd.sjoin(pts, dist_m[["KAB_NAME", "geometry"]], predicate="intersects")
    joined = joined[~joined.index.duplicated()]
    assert len(out) == len(joined) == 7687  # 2 buildings fall outside all five districts
    assert (out["aggregation"] == joined["KAB_NAME"].reindex(out.index)).all()
    assert any("1 repaired" in n for n in out.attrs["notes"])  # one district polygon is invalid
    assert any("2 features outside" in n for n in out.attrs["notes"])


def test_census_with_empty_geometry_is_reported(jakarta, multipart_zones, caplog):
    buildings = gpd.read_file(jakarta / "buildings_osm_4326.shp")
    census = gpd.read_file(jakarta / "census.geojson")
    assert census.geometry.is_empty.sum() == 1
    impacted = exposed_features(buildings, multipart_zones, classification=FLOOD_WET_DRY)
    with caplog.at_level(logging.INFO, logger="civicmap"):
        out = assign_aggregation(impacted, census, name_field="name")
    assert any("1 empty/unrepairable dropped" in n for n in out.attrs["notes"])
    assert "outside the aggregation areas dropped" in caplog.text
    assert set(out["aggregation"]) <= {"Magomeni", "Makurumula", "Tandale"}
    assert out["aggregation"].value_counts().to_dict() == {"Makurumula": 35, "Tandale": 13, "Magomeni": 11}


def test_roads_split_by_district(jakarta, multipart_zones):
    roads = gpd.read_file(jakarta / "roads_osm_4326.shp")
    out = exposed_features(roads, multipart_zones, classification=FLOOD_WET_DRY)
    districts = gpd.read_file(jakarta / "district_osm_jakarta.geojson")
    agg = assign_aggregation(out, districts, name_field="KAB_NAME")
    assert agg["length_m"].sum() == pytest.approx(out["length_m"].sum(), rel=1e-3)


# ---- synthetic units ----------------------------------------------------------------------------


def zones_frame(crs="EPSG:32748"):
    # two adjacent zones sharing the line x = 10: dry on the left, wet on the right
    return gpd.GeoDataFrame(
        {"hazard_class": ["dry", "wet"]}, geometry=[shapely.box(0, 0, 10, 10), shapely.box(10, 0, 20, 10)], crs=crs
    )


def test_building_across_two_zones_takes_the_more_severe():
    buildings = gpd.GeoDataFrame(
        geometry=[
            shapely.box(8, 4, 12, 6),  # overlaps both -> wet
            shapely.box(2, 2, 4, 4),  # dry only -> exposed, not affected
            shapely.box(5, 4, 10, 6),  # touches the wet zone only along x = 10 -> dry
            shapely.box(30, 30, 31, 31),  # outside -> not exposed
        ],
        crs="EPSG:32748",
    )
    out = exposed_features(buildings, zones_frame(), classification=FLOOD_WET_DRY)
    assert classes(out) == ["wet", "dry", "dry", None]
    assert out["affected"].tolist() == [True, False, False, False]
    assert out["exposed"].tolist() == [True, True, True, False]


def test_point_on_a_shared_boundary_takes_the_more_severe():
    points = gpd.GeoDataFrame(geometry=shapely.points([(10, 5), (0, 5), (5, 5)]), crs="EPSG:32748")
    out = exposed_features(points, zones_frame(), classification=FLOOD_WET_DRY)
    assert classes(out) == ["wet", "dry", "dry"]  # on the outer edge still counts as inside


def test_no_intersection_gives_zeros_not_errors():
    far = gpd.GeoDataFrame(geometry=[shapely.box(100, 100, 101, 101)], crs="EPSG:32748")
    out = exposed_features(far, zones_frame(), classification=FLOOD_WET_DRY)
    assert out["hazard_level"].tolist() == [-1]
    empty_zones = zones_frame().iloc[:0]
    assert exposed_features(far, empty_zones, classification=FLOOD_WET_DRY)["exposed"].tolist() == [False]


def test_bow_tie_hazard_is_repaired_before_use():
    bow_tie = shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10), (0, 0)])
    zones = gpd.GeoDataFrame({"hazard_class": ["wet"]}, geometry=[bow_tie], crs="EPSG:32748")
    house = gpd.GeoDataFrame(geometry=[shapely.box(8, 4, 9, 6)], crs="EPSG:32748")  # in the right lobe
    out = exposed_features(house, zones, classification=FLOOD_WET_DRY)
    assert classes(out) == ["wet"]
    assert any("1 repaired" in n for n in out.attrs["notes"])


def test_hazard_crs_checks(multipart_zones, jakarta, caplog):
    buildings = gpd.read_file(jakarta / "buildings_osm_4326.shp")
    with pytest.raises(CRSError, match="no CRS"):
        exposed_features(buildings, zones_frame(crs=None), classification=FLOOD_WET_DRY)
    same = exposed_features(buildings, multipart_zones, classification=FLOOD_WET_DRY)
    moved = multipart_zones.zones.to_crs(3857)
    with caplog.at_level(logging.INFO, logger="civicmap"):
        other = exposed_features(buildings, moved, classification=FLOOD_WET_DRY)
    assert "reprojected" in caplog.text
    assert (other["hazard_level"] == same["hazard_level"]).all()
    with pytest.raises(InputError, match="hazard_class"):
        exposed_features(buildings, gpd.read_file(jakarta / "floods.shp"), classification=FLOOD_WET_DRY)


# ---- synthetic rasters --------------------------------------------------------------------------


def write_raster(path, values, *, nodata=-9999.0, x0=0.0, y0=40.0, cell=10.0):
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[1], height=values.shape[0], count=1,
                       dtype=values.dtype, crs="EPSG:32748", transform=from_origin(x0, y0, cell, cell),
                       nodata=nodata) as ds:  # fmt: skip
        ds.write(values, 1)
    return path


@pytest.fixture
def small_raster(tmp_path):
    # 4 x 4 cells of 10 m, origin (0, 40); depths increase to the right, one nodata cell
    depth = np.array([[0.0, 0.5, 1.0, 2.0]] * 4, dtype=np.float32)
    depth[3, 3] = -9999
    return write_raster(tmp_path / "depth.tif", depth)


def test_raster_polygon_rules(small_raster):
    polys = gpd.GeoDataFrame(
        geometry=[
            shapely.box(5, 25, 25, 35),  # overlaps columns 0..2 -> max depth 1.0 -> medium; centre col 1 -> low
            shapely.box(12, 12, 13, 13),  # tiny, inside one cell (col 1) -> low
            shapely.box(10, 20, 20, 30),  # exactly one cell; only touches its neighbours' edges -> low
            shapely.box(35, 2, 38, 8),  # on the nodata cell -> not exposed
            shapely.box(100, 100, 110, 110),  # outside the raster -> not exposed
            shapely.box(-5, 25, 5, 35),  # half outside: the overlapped cell counts -> use_caution
        ],
        crs="EPSG:32748",
    )
    got = exposed_to_raster(polys, small_raster, classification=FLOOD_PETABENCANA)
    assert got["hazard_level"].tolist() == [2, 1, 1, -1, -1, 0]
    cen = exposed_to_raster(polys, small_raster, classification=FLOOD_PETABENCANA, stat="centroid")
    # the last one's representative point is (0, 30), on the raster's west edge: it goes to the cell on its right
    assert cen["hazard_level"].tolist() == [1, 1, 1, -1, -1, 0]
    mean = exposed_to_raster(polys, small_raster, classification=FLOOD_PETABENCANA, stat="mean")
    assert mean["hazard_level"].tolist()[0] == 1  # mean(0, 0.5, 1.0, 0, 0.5, 1.0) = 0.5 -> low


def test_raster_points_and_code_map(tmp_path):
    codes = np.array([[1, 2], [3, 0]], dtype=np.uint8)
    path = write_raster(tmp_path / "codes.tif", codes, nodata=0, y0=20.0)
    pts = gpd.GeoDataFrame(geometry=shapely.points([(5, 15), (15, 15), (5, 5), (15, 5), (10, 15)]), crs=UTM48S)
    out = exposed_to_raster(pts, path, classification=GENERIC, code_map={1: "low", 2: "medium", 3: "high"})
    # (10, 15) lies on the edge between columns 0 and 1: it goes to the cell on its right (code 2)
    assert classes(out) == ["low", "medium", "high", None, "medium"]
    with pytest.raises(InputError, match="continuous raster"):
        exposed_to_raster(pts, path, classification=GENERIC, code_map={1: "low"}, stat="mean")


def test_exposure_without_crs_fails(small_raster):
    with pytest.raises(CRSError):
        exposed_to_raster(gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1)]), small_raster,
                          classification=GENERIC)  # fmt: skip


def test_lines_mixed_with_polygons_fail():
    mixed = gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1), shapely.LineString([(0, 0), (1, 1)])], crs=UTM48S)
    with pytest.raises(InputError, match="mixes lines"):
        exposed_features(mixed, zones_frame(), classification=FLOOD_WET_DRY)


# ---- population ---------------------------------------------------------------------------------


def test_population_on_the_hazard_grid(jakarta, tmp_path):
    hazard = jakarta / "continuous_flood_20_20.asc"
    with rasterio.open(hazard) as ds:
        profile = ds.profile | {"driver": "GTiff", "dtype": "float32", "nodata": -1.0}
        people = np.full((ds.height, ds.width), 10, dtype=np.float32)
        people[0, 0] = -1  # nodata: ignored
        with rasterio.open(tmp_path / "pop.tif", "w", **profile) as out:
            out.write(people, 1)
    table = population_by_class(tmp_path / "pop.tif", hazard, classification=FLOOD_PETABENCANA)
    # 40 / 120 / 160 / 80 cells per class (see test_risk_hazard); cell (0, 0) has depth 0.0 -> use_caution - 1
    assert dict(zip(classes(table), table["population"], strict=True)) == {
        None: 0.0, "use_caution": 390.0, "low": 1200.0, "medium": 1600.0, "high": 800.0,
    }  # fmt: skip


def test_population_under_hazard_polygons_with_areas(tmp_path):
    people = np.full((4, 4), 5, dtype=np.float32)  # 4 x 4 cells of 10 m at (0..40, 0..40)
    path = write_raster(tmp_path / "pop.tif", people, nodata=-1)
    zones = gpd.GeoDataFrame(
        {"hazard_class": ["dry", "wet"]}, geometry=[shapely.box(0, 0, 40, 40), shapely.box(0, 20, 20, 40)], crs=UTM48S
    )
    areas = gpd.GeoDataFrame({"name": ["west", "east"]},
                             geometry=[shapely.box(0, 0, 20, 40), shapely.box(20, 0, 40, 40)], crs=UTM48S)  # fmt: skip
    table = population_by_class(path, zones, classification=FLOOD_WET_DRY, aggregation=areas, aggregation_field="name")
    got = table.set_index(["aggregation", "hazard_class"])["population"]
    # west: 8 cells, 4 under the wet square (most severe wins over dry) -> 20 wet, 20 dry; east: 8 dry cells
    assert got[("west", "wet")] == 20 and got[("west", "dry")] == 20 and got[("east", "dry")] == 40
    assert table["population"].sum() == 80
