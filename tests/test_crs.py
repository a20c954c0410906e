import geopandas as gpd
import pytest
import shapely

from civicmap.crs import (
    check_lonlat,
    local_metric_crs,
    metric_crs,
    parse_crs,
    require_crs,
    require_metric,
    to_crs,
    to_wgs84,
)
from civicmap.errors import CRSError
from civicmap.types import BBox

NAIROBI = (36.82, -1.29)


@pytest.mark.parametrize(
    ("bbox", "epsg"),
    [
        (BBox(39.23, -6.83, 39.25, -6.80), 32737),  # Dar es Salaam: UTM 37S
        (BBox(36.8, -1.3, 36.83, -1.28), 32737),  # Nairobi: UTM 37S
        (BBox(2.33, 48.85, 2.36, 48.87), 32631),  # Paris: UTM 31N
        (BBox(-73.11, 5.74, -72.91, 5.90), 32618),  # Duitama: UTM 18N
        (BBox(85.29, 27.71, 85.31, 27.72), 32645),  # Kathmandu: UTM 45N
        (BBox(179.5, -17, 179.9, -16.5), 32760),  # Fiji: the last zone
        (BBox(-10, 85, 10, 86), 32661),  # Arctic: UPS North
    ],
)
def test_local_metric_crs_is_the_utm_zone(bbox, epsg):
    assert local_metric_crs(bbox).to_epsg() == epsg


def test_to_crs_round_trip_keeps_lon_lat_order():
    gdf = gpd.GeoDataFrame(geometry=[shapely.Point(*NAIROBI)], crs=4326)
    utm = to_crs(gdf, local_metric_crs(BBox(36.8, -1.3, 36.83, -1.28)))
    x, y = utm.geometry.iloc[0].x, utm.geometry.iloc[0].y
    assert 250_000 < x < 260_000 and 9_850_000 < y < 9_860_000  # metres, southern hemisphere false northing
    back = to_wgs84(utm).geometry.iloc[0]
    assert back.x == pytest.approx(NAIROBI[0]) and back.y == pytest.approx(NAIROBI[1])


def test_missing_crs_is_an_error_naming_the_layer_and_fix():
    gdf = gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)])
    with pytest.raises(CRSError, match=r"layer 'roads' has no CRS; set one with gdf.set_crs"):
        require_crs(gdf, name="roads")


def test_degrees_are_refused_for_metric_work():
    gdf = gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)], crs=4326)
    with pytest.raises(CRSError, match="metric analysis needs a projected CRS"):
        require_metric(gdf, name="buildings")


def test_us_feet_are_refused_for_metric_work():
    gdf = gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)], crs=2263)  # NY Long Island, US survey feet
    with pytest.raises(CRSError, match="foot"):
        require_metric(gdf, name="buildings")


def test_unknown_crs_is_a_crs_error():
    with pytest.raises(CRSError, match="EPSG:999999"):
        parse_crs("EPSG:999999")


def test_metres_labelled_as_degrees_are_caught():
    gdf = gpd.GeoDataFrame(geometry=[shapely.Point(4_098_000, -144_000)], crs=4326)  # EPSG:3857 values
    with pytest.raises(CRSError, match="outside lon"):
        check_lonlat(gdf, name="points")


def test_swapped_lat_lon_is_caught_against_the_area():
    area = BBox(36.8, -1.3, 36.83, -1.28)
    swapped = gpd.GeoDataFrame(geometry=[shapely.Point(-1.29, 36.82)], crs=4326)
    with pytest.raises(CRSError, match="swapped"):
        check_lonlat(swapped, name="survey", area=area)
    check_lonlat(gpd.GeoDataFrame(geometry=[shapely.Point(*NAIROBI)], crs=4326), name="survey", area=area)


def test_non_finite_coordinates_are_caught():
    gdf = gpd.GeoDataFrame(geometry=[shapely.Point(float("nan"), 1.0)], crs=4326)
    with pytest.raises(CRSError, match="non-finite"):
        check_lonlat(gdf, name="pts")


def test_reprojection_to_inf_is_an_error():
    pole = gpd.GeoDataFrame(geometry=[shapely.Point(0, 91)], crs=4326)  # lat 91: PROJ gives inf
    with pytest.raises(CRSError, match="inf"):
        to_crs(pole, 3857, name="pole")


def test_metric_crs_keeps_metres_and_picks_utm_for_degrees():
    utm = gpd.GeoDataFrame(geometry=[shapely.Point(500_000, 9_240_000)], crs=32737)
    assert metric_crs(utm, name="b").to_epsg() == 32737
    lonlat = gpd.GeoDataFrame(geometry=[shapely.Point(*NAIROBI)], crs=4326)
    assert metric_crs(lonlat, name="b").to_epsg() == 32737
    assert metric_crs(lonlat, name="b", crs="EPSG:3857").to_epsg() == 3857
    feet = gpd.GeoDataFrame(geometry=[shapely.Point(1_000_000, 200_000)], crs=2263)
    assert metric_crs(feet, name="b").to_epsg() == 32618  # New York: US feet replaced by UTM 18N
    with pytest.raises(CRSError, match="empty"):
        metric_crs(gpd.GeoDataFrame(geometry=[], crs=4326), name="b")
