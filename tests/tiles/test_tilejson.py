import json
import re

import pytest

from civicmap.errors import InputError
from civicmap.tiles.grid import MAX_LATITUDE
from civicmap.tiles.tilejson import TileSetMeta, tilejson

# mapbox/tilejson-spec 3.0.0/schema.json re-expressed (types, patterns, ranges, required keys).
SEMVER = {"type": "string", "pattern": r"\d+\.\d+\.\d+\w?[\w\d]*"}
STRINGS = {"type": "array", "items": {"type": "string"}}
NUMBERS = {"type": "array", "items": {"type": "number"}}
ZOOM = {"type": "integer", "minimum": 0, "maximum": 30}
SCHEMA = {
    "type": "object",
    "required": ["tilejson", "tiles", "vector_layers"],
    "properties": {
        "tilejson": SEMVER,
        "tiles": STRINGS,
        "vector_layers": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "fields"],
                "properties": {
                    "id": {"type": "string"},
                    "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                    "description": {"type": "string"},
                    "maxzoom": {"type": "integer"},
                    "minzoom": {"type": "integer"},
                },
            },
        },
        "attribution": {"type": "string"},
        "bounds": NUMBERS,
        "center": NUMBERS,
        "data": STRINGS,
        "description": {"type": "string"},
        "fillzoom": ZOOM,
        "grids": STRINGS,
        "legend": {"type": "string"},
        "maxzoom": ZOOM,
        "minzoom": ZOOM,
        "name": {"type": "string"},
        "scheme": {"type": "string"},
        "template": {"type": "string"},
        "version": SEMVER,
    },
}
# README §3.3: "When describing a set of raster tiles ... the vector_layers key is not required."
RASTER_SCHEMA = {**SCHEMA, "required": ["tilejson", "tiles"]}
TYPES = {
    "string": str,
    "array": list,
    "object": dict,
    "number": (int, float),
    "integer": int,
}


def schema_errors(value, schema, path="$"):
    """A tiny validator for the keywords the TileJSON schema uses."""
    errors = []
    expected = TYPES[schema["type"]]
    if not isinstance(value, expected) or isinstance(value, bool):
        return [f"{path}: {value!r} is not {schema['type']}"]
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if ("minimum" in schema and value < schema["minimum"]) or ("maximum" in schema and value > schema["maximum"]):
        errors.append(f"{path}: {value} out of range")
    for key in schema.get("required", []):
        if key not in value:
            errors.append(f"{path}: missing {key}")
    for key, sub in schema.get("properties", {}).items():
        if isinstance(value, dict) and key in value:
            errors += schema_errors(value[key], sub, f"{path}.{key}")
    if "items" in schema:
        errors += [e for i, item in enumerate(value) for e in schema_errors(item, schema["items"], f"{path}[{i}]")]
    if "additionalProperties" in schema:
        errors += [e for k, v in value.items() for e in schema_errors(v, schema["additionalProperties"], f"{path}.{k}")]
    return errors


def test_validator_can_fail():
    errors = schema_errors({"tilejson": "3", "tiles": ["x"]}, SCHEMA)
    assert "$: missing vector_layers" in errors
    assert any("$.tilejson" in e for e in errors)
    assert (
        len(schema_errors({"tilejson": "3.0.0", "tiles": ["x"], "vector_layers": [{"id": "a"}], "minzoom": 31}, SCHEMA))
        == 2
    )


def vector_doc(**kw):
    args = {
        "tiles_url": "https://maps.example.org/tiles/buildings/{z}/{x}/{y}.mvt",
        "bounds_lonlat": (36.65, -1.45, 37.10, -1.16),
        "minzoom": 10,
        "maxzoom": 18,
        "vector_layers": [{"id": "buildings", "fields": {"height": "Number", "name": "String"}, "minzoom": 12}],
    }
    return tilejson("buildings", **{**args, **kw})


def test_vector_tilejson_validates_and_has_spec_values():
    doc = vector_doc(
        meta=TileSetMeta(name="Buildings", description="OSM buildings", attribution="© OpenStreetMap contributors")
    )
    assert schema_errors(doc, SCHEMA) == []
    assert doc["tilejson"] == "3.0.0"
    assert doc["scheme"] == "xyz"
    assert doc["version"] == "1.0.0"
    assert doc["bounds"] == [36.65, -1.45, 37.10, -1.16]
    assert doc["center"][:2] == pytest.approx([36.875, -1.305])
    assert 10 <= doc["center"][2] <= 18 and isinstance(doc["center"][2], int)
    assert doc["vector_layers"][0] == {
        "id": "buildings",
        "fields": {"height": "Number", "name": "String"},
        "minzoom": 12,
    }
    assert doc["attribution"] == "© OpenStreetMap contributors"
    json.dumps(doc)


def test_raster_tilejson_validates_without_vector_layers():
    doc = tilejson("flood", tiles_url="http://localhost:8000/tiles/flood/{z}/{x}/{y}.png", minzoom=0, maxzoom=16)
    assert "vector_layers" not in doc
    assert schema_errors(doc, RASTER_SCHEMA) == []
    assert doc["bounds"] == pytest.approx([-180, -MAX_LATITUDE, 180, MAX_LATITUDE])
    assert doc["name"] == "flood"


def test_attribution_is_html_escaped():
    doc = vector_doc(meta=TileSetMeta(attribution='<script>alert("x")</script><img src=x onerror=alert(1)>'))
    assert "<" not in doc["attribution"] and ">" not in doc["attribution"]
    assert doc["attribution"].startswith("&lt;script&gt;alert(&quot;x&quot;)")


@pytest.mark.parametrize(
    "url", ["/tiles/{z}/{x}/{y}.png", "tiles/{z}/{x}/{y}.png", "//host/{z}/{x}/{y}.png", "ftp://h/{z}/{x}/{y}.png"]
)
def test_relative_or_non_http_urls_are_refused(url):
    with pytest.raises(InputError, match="absolute"):
        tilejson("x", tiles_url=url)


def test_url_without_placeholders_is_refused():
    with pytest.raises(InputError, match=r"\{y\}"):
        tilejson("x", tiles_url="https://h/{z}/{x}.png")


def test_bounds_never_wrap_and_are_clamped():
    doc = vector_doc(bounds_lonlat=(170.0, -90.0, -170.0, 90.0))
    assert doc["bounds"] == pytest.approx([-180, -MAX_LATITUDE, 180, MAX_LATITUDE])
    assert doc["bounds"][0] <= doc["bounds"][2]


def test_bad_zooms_center_and_layers():
    with pytest.raises(InputError, match="minzoom"):
        vector_doc(minzoom=12, maxzoom=10)
    with pytest.raises(InputError, match="minzoom"):
        vector_doc(maxzoom=31)
    with pytest.raises(InputError, match="center"):
        vector_doc(center=[10.0, 10.0, 12])
    assert vector_doc(center=[36.8, -1.3, 14])["center"] == [36.8, -1.3, 14]
    with pytest.raises(InputError, match="vector_layers"):
        vector_doc(vector_layers=None)
    with pytest.raises(InputError, match="'id'"):
        vector_doc(vector_layers=[{"fields": {}}])
    with pytest.raises(InputError, match="maxzoom"):
        vector_doc(vector_layers=[{"id": "a", "fields": {}, "maxzoom": 20}])
    with pytest.raises(InputError, match="semver"):
        vector_doc(meta=TileSetMeta(version="v1"))
