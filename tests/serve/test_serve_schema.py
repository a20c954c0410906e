"""Property-based run of every operation in /openapi.json (schemathesis): no request may cause a 5xx."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from civicmap.serve import ServiceSettings, create_app
from civicmap.tiles.grid import tiles_for_bbox

EXAMPLES_PER_OPERATION = 20
LAYERS = ("buildings", "roads", "amenities", "streets_walk_edges", "dem", "orthophoto", "buildings,roads")
FEATURES = ("w333", "w20", "0", "3")
DEMO_TILES = tuple(tiles_for_bbox((39.2299, -6.8249, 39.2497, -6.8051), [12, 15, 17]))


def _real(case, layer, feature, tile, ext):
    """Point half of the generated cases at layers, features and tiles that exist, keeping the rest random."""
    params = case.path_parameters or {}
    z, x, y = tile
    real = {
        "layer": layer.split(",")[0], "layers": layer, "collection_id": layer.split(",")[0], "feature_id": feature,
        "z": str(z), "x": str(x), "y": str(y), "ext": ext, "tileMatrix": str(z), "tileRow": str(y), "tileCol": str(x),
    }  # fmt: skip
    for key in params:
        if key in real:
            params[key] = real[key]
    return case


def cases(operation):
    random = operation.as_strategy()
    realistic = st.builds(
        _real,
        random,
        st.sampled_from(LAYERS),
        st.sampled_from(FEATURES),
        st.sampled_from(DEMO_TILES),
        st.sampled_from(("mvt", "png", "jpg", "webp")),
    )
    return st.one_of(random, realistic)


@pytest.fixture(scope="module")
def api_schema(demo_build):
    ws = demo_build[0]
    app = create_app(ws, ServiceSettings(max_items_limit=200))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.slow
def test_no_operation_answers_with_a_server_error(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 11
    calls = []
    for operation in operations:

        @given(case=cases(operation))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call()
            calls.append(response.status_code)
            case.validate_response(response, checks=[not_a_server_error])

        check()
    assert len(calls) >= 5 * len(operations)
    assert not [c for c in calls if c >= 500]
    assert calls.count(200) >= 2 * len(operations)  # real layers, features and tiles were served, not only errors
