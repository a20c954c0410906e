"""The demo exported as MBTiles, and the web-optimised COGs the build writes for raster tiles."""

import gzip
import json
import sqlite3

import mapbox_vector_tile
import numpy as np
import pytest
import rasterio
import shapely
from typer.testing import CliRunner

from civicmap import cli
from civicmap.builds.export import MAX_EXPORT_TILES, export_tiles
from civicmap.crs import to_crs
from civicmap.errors import InputError, NotFoundError
from civicmap.serve.deps import load_raster
from civicmap.tiles.grid import tile_bounds, tiles_for_bbox
from civicmap.tiles.raster import render_tile
from civicmap.types import TileXYZ
from tile_images import decode_png

LAYERS = ["buildings", "roads", "hazard_zones", "dem"]


@pytest.fixture(scope="module")
def workspace(demo_build):
    return demo_build[0]


@pytest.fixture(scope="module")
def exported(workspace, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    return out, export_tiles(workspace, out, layers=LAYERS, minzoom=12, maxzoom=15, progress=False)


def tiles_of(path):
    with sqlite3.connect(path) as con:
        return {(z, x, (1 << z) - 1 - r): d for z, x, r, d in con.execute("SELECT * FROM tiles")}


def metadata_of(path):
    with sqlite3.connect(path) as con:
        return dict(con.execute("SELECT name, value FROM metadata"))


# -- web-optimised COGs --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dem", "orthophoto"])
def test_build_writes_a_web_cog_in_epsg3857_beside_the_analysis_cog(workspace, name):
    info = workspace.store.layer_info(name)
    assert info.meta["web_cog"] == f"{name}_web.tif"
    web = info.tile_path
    assert web == info.path.with_name(f"{name}_web.tif")
    with rasterio.open(info.path) as analysis, rasterio.open(web) as ds:
        assert analysis.crs == workspace.crs  # the metric grid stays for the analysis
        assert ds.crs.to_epsg() == 3857
        assert ds.block_shapes[0] == (256, 256) and ds.overviews(1)
        # GoogleMapsCompatible: the pixel size is a zoom level's, and the origin is on that zoom's tile grid
        zoom = np.log2(2 * 20037508.342789244 / (256 * ds.res[0]))
        assert abs(zoom - round(zoom)) < 1e-9
        tile_m = 256 * ds.res[0]
        assert abs((ds.bounds.left + 20037508.342789244) / tile_m % 1) < 1e-6


def test_tiles_from_the_web_cog_match_tiles_from_the_analysis_cog(workspace):
    info = workspace.store.layer_info("dem")
    raster = load_raster(info)  # opens the web COG, styled as the service styles the dem
    try:
        tiles = [t for t in tiles_for_bbox(workspace.bbox, [13, 15, 17]) if t.x % 2 == 0][:8]
        assert len(tiles) >= 5
        for tile in tiles:
            with raster.pool.dataset() as ds:
                assert ds.crs.to_epsg() == 3857
                web = decode_png(render_tile(ds, tile, style=raster.style))
            analysis = decode_png(render_tile(info.path, tile, style=raster.style))
            both = (web[3] == 255) & (analysis[3] == 255)
            either = (web[3] > 0) | (analysis[3] > 0)
            assert both.sum() > 0.97 * either.sum() > 0, tile  # the same footprint (edges may differ by a pixel)
            diff = np.abs(web[:3].astype(int) - analysis[:3])[:, both]
            # two bilinear resamplings (UTM -> 3857 at build time, then to the tile) vs one
            assert diff.mean() < 2.0, (tile, diff.mean())
            assert np.percentile(diff, 99) <= 12, (tile, np.percentile(diff, 99))
    finally:
        raster.pool.close()


# -- MBTiles export ------------------------------------------------------------------------


def test_export_writes_one_pbf_file_for_the_vectors_and_one_png_file_per_raster(exported, workspace):
    _, files = exported
    assert [(f.path.name, f.format, f.layers) for f in files] == [
        ("Mkondo_demo_city_vector.mbtiles", "pbf", ("buildings", "roads", "hazard_zones")),
        ("dem.mbtiles", "png", ("dem",)),
    ]
    expected = set(tiles_for_bbox(workspace.bbox, range(12, 16)))
    assert len(expected) == 16
    for f in files:  # every tile over the area has something in the demo
        assert f.tiles == len(expected)
        assert set(tiles_of(f.path)) == expected
    meta = metadata_of(files[0].path)
    assert meta["format"] == "pbf" and (meta["minzoom"], meta["maxzoom"]) == ("12", "15")
    w, s, e, n = (float(v) for v in meta["bounds"].split(","))
    assert np.allclose((w, s, e, n), workspace.bbox, atol=1e-6)
    layers = {v["id"]: v for v in json.loads(meta["json"])["vector_layers"]}
    assert set(layers) == {"buildings", "roads", "hazard_zones"}
    assert layers["hazard_zones"]["fields"]["hazard_level"] == "Number"
    assert metadata_of(files[1].path)["format"] == "png"


def test_exported_vector_tiles_hold_every_layer_and_the_right_features(exported, workspace):
    _, files = exported
    tiles = tiles_of(files[0].path)
    z12 = [t for t in tiles if t[0] == 12]
    assert len(z12) == 1
    decoded = mapbox_vector_tile.decode(gzip.decompress(tiles[z12[0]]))
    assert set(decoded) == {"buildings", "roads", "hazard_zones"}
    roads = workspace.read_layer("roads")
    assert len(decoded["roads"]["features"]) == len(roads)  # the z12 tile covers the whole town
    assert {f["properties"]["hazard_class"] for f in decoded["hazard_zones"]["features"]} >= {"high", "low"}


def test_exported_png_tiles_equal_the_service_tiles(exported, workspace):
    _, files = exported
    tiles = tiles_of(files[1].path)
    raster = load_raster(workspace.store.layer_info("dem"))
    try:
        for tile in [TileXYZ(*t) for t in sorted(tiles)[::5]]:
            with raster.pool.dataset() as ds:
                assert tiles[tile] == render_tile(ds, tile, style=raster.style)
    finally:
        raster.pool.close()


def test_empty_tiles_are_left_out(workspace, tmp_path):
    (f,) = export_tiles(workspace, tmp_path, layers=["amenities"], minzoom=17, maxzoom=17, progress=False)
    points = to_crs(workspace.read_layer("amenities"), "EPSG:3857").geometry.to_numpy()
    every = list(tiles_for_bbox(workspace.bbox, 17))
    margin = 64 / 4096  # encode_mvt's buffer, as a fraction of the tile
    expected = set()
    for t in every:
        w, s, e, n = tile_bounds(t)
        pad = (e - w) * margin
        if shapely.intersects(shapely.box(w - pad, s - pad, e + pad, n + pad), points).any():
            expected.add(t)
    assert 0 < len(expected) < len(every) / 2
    assert set(tiles_of(f.path)) == expected and f.tiles == len(expected)


def test_the_tile_count_guard(workspace, tmp_path):
    with pytest.raises(InputError, match=r"needs more than 10 tiles; lower maxzoom.*force=True"):
        export_tiles(workspace, tmp_path, layers=["roads", "dem"], minzoom=12, maxzoom=15, max_tiles=10, progress=False)
    assert not list(tmp_path.iterdir())
    files = export_tiles(
        workspace, tmp_path, layers=["roads"], minzoom=12, maxzoom=15, max_tiles=10, force=True, progress=False
    )
    assert files[0].tiles == 16
    assert MAX_EXPORT_TILES == 200_000
    with pytest.raises(InputError, match="more than 200,000 tiles"):
        export_tiles(workspace, tmp_path, layers=["roads"], minzoom=12, maxzoom=24, progress=False)


def test_private_unknown_layers_and_bad_zooms_are_refused(workspace, tmp_path):
    with pytest.raises(NotFoundError, match=r"\['survey_building_survey'\] are private"):
        export_tiles(workspace, tmp_path, layers=["survey_building_survey"], progress=False)
    with pytest.raises(NotFoundError, match=r"no layers \['nope'\]"):
        export_tiles(workspace, tmp_path, layers=["roads", "nope"], progress=False)
    with pytest.raises(InputError, match="minzoom <= maxzoom"):
        export_tiles(workspace, tmp_path, layers=["roads"], minzoom=15, maxzoom=12, progress=False)


def test_cli_export_tiles(workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "open_workspace", lambda project: workspace)
    args = ["export-tiles", "demo", "--out", str(tmp_path), "--layers", "roads,dem", "--minzoom", "12"]
    result = CliRunner().invoke(cli.app, [*args, "--maxzoom", "13", "-q"])
    assert result.exit_code == 0, result.output
    assert "Mkondo_demo_city_vector.mbtiles  (pbf, 3 tiles: roads)" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Mkondo_demo_city_vector.mbtiles", "dem.mbtiles"]
    result = CliRunner().invoke(cli.app, [*args, "--maxzoom", "24", "-q"])
    assert result.exit_code == 1 and "--force" in result.output
