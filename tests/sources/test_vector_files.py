import json

import pytest

from civicmap.errors import CRSError, InputError, NotFoundError
from civicmap.sources.vector import read_vector


def test_legacy_crs_member_is_honoured(realdata):
    # Kibera survey points are EPSG:3857 metres declared with the legacy GeoJSON `crs` member
    gdf = read_vector(realdata / "settlements" / "kibera" / "Health.geojson")
    assert gdf.crs.to_epsg() == 3857 and len(gdf) == 49
    assert 4_090_000 < gdf.geometry.x.median() < 4_100_000  # metres east, not degrees


def test_empty_geometry_is_kept_for_the_caller_to_report(realdata):
    gdf = read_vector(realdata / "hazard" / "jakarta" / "census.geojson")
    assert len(gdf) == 4 and int(gdf.geometry.is_empty.sum()) == 1


def feature_collection(coords, crs=None):
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"a": 1}, "geometry": {"type": "Point", "coordinates": coords}}
    ]}  # fmt: skip
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    return json.dumps(doc)


def test_metres_in_a_file_without_crs_member_are_refused(tmp_path):
    path = tmp_path / "x.geojson"
    path.write_text(feature_collection([4_098_000, -144_000]))  # EPSG:3857 values, read as CRS84 by GDAL
    with pytest.raises(CRSError, match="outside lon"):
        read_vector(path)


def test_bad_files(tmp_path):
    with pytest.raises(NotFoundError):
        read_vector(tmp_path / "missing.geojson")
    (tmp_path / "empty.geojson").write_text("")
    with pytest.raises(InputError, match="empty"):
        read_vector(tmp_path / "empty.geojson")
    (tmp_path / "junk.geojson").write_text("{not json")
    with pytest.raises(InputError, match="cannot be read"):
        read_vector(tmp_path / "junk.geojson")
    (tmp_path / "none.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(InputError, match="holds no features"):
        read_vector(tmp_path / "none.geojson")
    assert read_vector(tmp_path / "none.geojson", allow_empty=True).empty


def test_missing_layer_lists_layers(realdata):
    with pytest.raises(NotFoundError, match="layers: clipped_jakarta_building"):
        read_vector(realdata / "hazard" / "jakarta" / "jakarta_building.gpkg", layer="roads")
