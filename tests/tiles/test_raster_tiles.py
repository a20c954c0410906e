import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.enums import ColorInterp, Resampling
from rasterio.transform import from_origin

from civicmap.errors import InputError
from civicmap.tiles import _encode
from civicmap.tiles.colormaps import ELEVATION, FLOOD_DEPTH_M, HAZARD_CLASSES, ContinuousColormap
from civicmap.tiles.grid import tile_bounds, tiles_for_bbox
from civicmap.tiles.raster import TileStyle, render_png, render_tile
from civicmap.types import TileXYZ
from tile_images import decode_png

E0, N0 = 250_000.0, 9_860_000.0  # EPSG:32737, near Nairobi (lat ~ -1.27)


def write(path, data, *, crs, transform, nodata=None, overviews=(), colorinterp=None):
    count = 1 if data.ndim == 2 else data.shape[0]
    arr = data[None] if data.ndim == 2 else data
    profile = {
        "driver": "GTiff",
        "width": arr.shape[2],
        "height": arr.shape[1],
        "count": count,
        "dtype": arr.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        if colorinterp:
            dst.colorinterp = colorinterp
        if overviews:
            dst.build_overviews(list(overviews), Resampling.nearest)
    return path


def pattern(h, w):
    rows, cols = np.mgrid[0:h, 0:w]
    return ((rows * 7 + cols * 13) % 251).astype("uint8")


def centre_tile(lon, lat, z):
    return next(tiles_for_bbox((lon, lat, lon + 1e-7, lat + 1e-7), z))


def expected_nearest(tile, crs, transform, values, nodata=None, size=256):
    """Source value under each tile pixel centre (NaN outside), by direct computation."""
    w, _s, e, n = tile_bounds(tile)
    res = (e - w) / size
    jj, ii = np.meshgrid(np.arange(size), np.arange(size))
    x = w + (jj + 0.5) * res
    y = n - (ii + 0.5) * res
    sx, sy = Transformer.from_crs(3857, crs, always_xy=True).transform(x, y)
    col, row = ~transform * (sx, sy)
    col, row = np.floor(col).astype(int), np.floor(row).astype(int)
    inside = (col >= 0) & (row >= 0) & (col < values.shape[1]) & (row < values.shape[0])
    out = np.full((size, size), np.nan)
    out[inside] = values[row[inside], col[inside]]
    if nodata is not None:
        out[out == nodata] = np.nan
    return out


@pytest.fixture
def utm_raster(tmp_path):
    values = pattern(1000, 1000)
    transform = from_origin(E0, N0, 10, 10)
    return (
        write(tmp_path / "utm.tif", values, crs="EPSG:32737", transform=transform, overviews=(2, 4, 8)),
        values,
        transform,
    )


def test_utm_tile_pixels_match_direct_computation(utm_raster):
    path, values, transform = utm_raster
    lon, lat = Transformer.from_crs(32737, 4326, always_xy=True).transform(E0 + 5000, N0 - 5000)
    tile = centre_tile(lon, lat, 14)
    img = decode_png(render_png(path, tile))
    assert img.shape == (4, 256, 256)
    want = expected_nearest(tile, "EPSG:32737", transform, values)
    inside = ~np.isnan(want)
    assert inside.mean() == 1.0  # the 10 km raster covers this 2.4 km tile
    assert (img[0][inside] == want[inside]).mean() > 0.97
    assert (img[0] == img[1]).all() and (img[3] == 255).all()


def test_lonlat_raster_and_transparency_outside_and_nodata(tmp_path):
    values = pattern(800, 800)
    values[:50, :50] = 0  # nodata corner
    transform = from_origin(36.75, -1.25, 0.0001, 0.0001)
    path = write(tmp_path / "ll.tif", values, crs="EPSG:4326", transform=transform, nodata=0)
    tile = centre_tile(36.7501, -1.2501, 14)  # the raster's north-west corner lies in this tile
    img = decode_png(render_png(path, tile))
    want = expected_nearest(tile, "EPSG:4326", transform, values, nodata=0)
    valid = ~np.isnan(want)
    assert 0.02 < valid.mean() < 0.98
    assert ((img[3] == 255) == valid).mean() > 0.99  # outside and nodata -> transparent
    assert (img[0][valid & (img[3] == 255)] == want[valid & (img[3] == 255)]).mean() > 0.97


def test_outside_tile_is_none_and_tilesize(utm_raster):
    path, _, _ = utm_raster
    assert render_png(path, TileXYZ(14, 0, 0)) is None
    lon, lat = Transformer.from_crs(32737, 4326, always_xy=True).transform(E0 + 5000, N0 - 5000)
    img = decode_png(render_png(path, centre_tile(lon, lat, 15), tilesize=512))
    assert img.shape[1:] == (512, 512)


def test_all_nodata_tile_is_none(tmp_path):
    values = np.zeros((300, 300), dtype="uint8")
    path = write(tmp_path / "nd.tif", values, crs="EPSG:32737", transform=from_origin(E0, N0, 10, 10), nodata=0)
    lon, lat = Transformer.from_crs(32737, 4326, always_xy=True).transform(E0 + 1500, N0 - 1500)
    assert render_png(path, centre_tile(lon, lat, 15)) is None


def halves(tmp_path, left, right, dtype="float32"):
    values = np.full((500, 500), left, dtype=dtype)
    values[:, 250:] = right
    path = write(tmp_path / "h.tif", values, crs="EPSG:32737", transform=from_origin(E0, N0, 10, 10), nodata=-9999)
    lon, lat = Transformer.from_crs(32737, 4326, always_xy=True).transform(E0 + 2500, N0 - 2500)
    return path, centre_tile(lon, lat, 15)


def test_continuous_colormap_stops_and_interpolation(tmp_path):
    path, tile = halves(tmp_path, 0.5, 0.75)
    img = decode_png(render_png(path, tile, colormap=FLOOD_DEPTH_M))
    colours = {tuple(c) for c in img.reshape(4, -1).T}
    assert colours == {(107, 174, 214, 255), (70, 144, 198, 255)}  # a stop, and halfway to the next stop


def test_classed_colormap_and_zero_class_transparent(tmp_path):
    path, tile = halves(tmp_path, 0, 3, dtype="int16")
    img = decode_png(render_png(path, tile, colormap="hazard_classes"))
    colours = {tuple(c) for c in img.reshape(4, -1).T}
    assert colours == {(0, 0, 0, 0), (253, 141, 60, 255)}
    with pytest.raises(InputError, match="nearest"):
        render_png(path, tile, colormap=HAZARD_CLASSES, resampling="bilinear")


def test_rescale_to_grey_and_non_uint8_needs_rescale(tmp_path):
    path, tile = halves(tmp_path, 10.0, 30.0)
    img = decode_png(render_png(path, tile, rescale=(0, 40)))
    assert set(np.unique(img[0])) == {64, 191}
    with pytest.raises(InputError, match="rescale"):
        render_png(path, tile)


def test_bilinear_does_not_bleed_nodata(tmp_path):
    values = np.full((500, 500), 100, dtype="uint8")
    values[230:270, 230:270] = 0  # a 400 m hole in the middle of the tile
    path = write(tmp_path / "b.tif", values, crs="EPSG:32737", transform=from_origin(E0, N0, 10, 10), nodata=0)
    lon, lat = Transformer.from_crs(32737, 4326, always_xy=True).transform(E0 + 2500, N0 - 2500)
    img = decode_png(render_png(path, centre_tile(lon, lat, 16), resampling="bilinear"))
    opaque = img[3] > 0
    assert 0.1 < (~opaque).mean() < 0.9
    assert np.abs(img[0][opaque].astype(int) - 100).max() <= 1


def plane(tmp_path, slope_east, slope_north, name="dem.tif"):
    rows, cols = np.mgrid[0:600, 0:600]
    dem = (1000 + slope_east * cols * 10 - slope_north * rows * 10).astype("float32")
    return write(tmp_path / name, dem, crs="EPSG:32737", transform=from_origin(E0, N0, 10, 10), nodata=-9999)


@pytest.mark.parametrize(
    ("east", "north", "expected"), [(0.0, 0.0, 180), (0.1, 0.0, 192), (-0.1, 0.0, 167), (0.0, 0.1, 167)]
)
def test_hillshade_of_a_plane_is_uniform_and_right(tmp_path, east, north, expected):
    # n·s with sun azimuth 315°, altitude 45°: flat = 255 sin 45° = 180; rising east faces west -> lit
    path = plane(tmp_path, east, north)
    lon, lat = Transformer.from_crs(32737, 4326, always_xy=True).transform(E0 + 3000, N0 - 3000)
    img = decode_png(render_png(path, centre_tile(lon, lat, 15), hillshade=True, resampling="bilinear"))
    assert (img[3] == 255).all()
    assert np.abs(img[0].astype(int) - expected).max() <= 1


def test_hillshade_tiles_agree_at_the_seam(tmp_path):
    rows, cols = np.mgrid[0:1600, 0:1600]  # 1 m pixels: finer than the tiles' 2.4 m, so not piecewise planar
    dem = (800 * np.exp(-((rows - 800.0) ** 2 + (cols - 800.0) ** 2) / 8e4)).astype("float32")
    path = write(tmp_path / "hill.tif", dem, crs="EPSG:3857", transform=from_origin(4_000_000, -150_000, 1, 1))
    lon, lat = Transformer.from_crs(3857, 4326, always_xy=True).transform(4_000_800, -150_800)
    parent = centre_tile(lon, lat, 15)
    # a 512 px render of the z15 tile has the pixels of its four z16 children at 256 px; the
    # children's edges are inside the parent, so a seam-free child equals its quarter exactly
    whole = decode_png(render_png(path, parent, hillshade=True, resampling="bilinear", tilesize=512))
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        child = TileXYZ(16, 2 * parent.x + dx, 2 * parent.y + dy)
        part = decode_png(render_png(path, child, hillshade=True, resampling="bilinear"))
        quarter = whole[:, dy * 256 : dy * 256 + 256, dx * 256 : dx * 256 + 256]
        assert np.abs(part[0].astype(int) - quarter[0]).max() <= 1
    assert whole[0].std() > 10  # the hill is really shaded


def test_pixel_budget_without_overviews_and_with(tmp_path):
    values = pattern(3000, 3000)
    t = from_origin(E0, N0, 2, 2)
    bare = write(tmp_path / "bare.tif", values, crs="EPSG:32737", transform=t)
    cog = write(tmp_path / "cog.tif", values, crs="EPSG:32737", transform=t, overviews=(2, 4, 8, 16))
    lon, lat = Transformer.from_crs(32737, 4326, always_xy=True).transform(E0 + 3000, N0 - 3000)
    tile = centre_tile(lon, lat, 11)
    with pytest.raises(InputError, match="no overviews"):
        render_png(bare, tile)
    img = decode_png(render_png(cog, tile))
    assert (img[3] == 255).sum() > 100
    assert render_png(bare, centre_tile(lon, lat, 15)) is not None


def test_jpeg_and_webp_formats(utm_raster):
    path, _, _ = utm_raster
    lon, lat = Transformer.from_crs(32737, 4326, always_xy=True).transform(E0 + 5000, N0 - 5000)
    tile = centre_tile(lon, lat, 14)
    jpeg = render_tile(path, tile, format="jpeg")
    assert jpeg[:3] == b"\xff\xd8\xff" and decode_png(jpeg).shape == (3, 256, 256)
    webp = render_tile(path, tile, format="webp")
    assert webp[:4] == b"RIFF" and webp[8:12] == b"WEBP"
    with pytest.raises(InputError, match="format"):
        render_tile(path, tile, format="gif")


def test_style_errors():
    with pytest.raises(InputError, match="hillshade and colormap"):
        TileStyle(colormap="greys", hillshade=True).checked()
    with pytest.raises(InputError, match="not known"):
        TileStyle(colormap="nope").checked()
    with pytest.raises(InputError, match="rescale"):
        TileStyle(rescale=(5, 1)).checked()
    with pytest.raises(InputError, match="ascending"):
        ContinuousColormap("bad", ((1.0, (0, 0, 0, 255)), (0.0, (1, 1, 1, 255))))


def test_open_dataset_can_be_reused(utm_raster):
    path, _, _ = utm_raster
    lon, lat = Transformer.from_crs(32737, 4326, always_xy=True).transform(E0 + 5000, N0 - 5000)
    tile = centre_tile(lon, lat, 14)
    with rasterio.open(path) as ds:
        assert render_png(ds, tile) == render_png(path, tile)
        assert not ds.closed


def test_realdata_rgb_centre_tile(realdata):
    path = realdata / "raster" / "rasterio_RGB.byte.tif"
    with rasterio.open(path) as ds:
        centre = ds.xy(ds.height // 2, ds.width // 2)
        lon, lat = Transformer.from_crs(ds.crs, 4326, always_xy=True).transform(*centre)
    tile = centre_tile(lon, lat, 10)
    img = decode_png(render_png(path, tile))
    assert img.shape == (4, 256, 256)
    opaque = img[3] == 255
    assert opaque.mean() > 0.9
    with rasterio.open(path) as ds:
        src, crs, transform = ds.read(), ds.crs, ds.transform
    want = np.stack([expected_nearest(tile, crs, transform, band) for band in src])
    shown = opaque & ((want > 0).any(axis=0))  # nodata = 0 in all three bands
    assert shown.mean() > 0.85
    same = (img[:3][:, shown] == want[:, shown]).all(axis=0).mean()
    assert same > 0.95  # the very pixels of the source, in the right places
    means = img[:3][:, shown].mean(axis=1)
    assert all(20 < m < 150 for m in means)  # Landsat TM: dark land and sea, not saturated, not black


# -- overview choice, GDAL reference, palette PNG --------------------------------------------

CORNER = centre_tile(36.82, -1.29, 13)  # rasters below start at its north-west corner (EPSG:3857)


def corner_tiles(zooms):
    """The tile at the north-west corner of ``CORNER`` at each zoom (all inside the rasters below)."""
    return [TileXYZ(z, CORNER.x << (z - 13), CORNER.y << (z - 13)) for z in zooms]


def levelled(tmp_path, res_m, size=2048):
    """A 3857 raster whose full resolution holds 1 and whose overviews 2, 4, 8 hold 2, 4, 8."""
    path = tmp_path / "levels.tif"
    w, _, _, n = tile_bounds(CORNER)
    write(path, np.ones((size, size), "uint8"), crs="EPSG:3857", transform=from_origin(w, n, res_m, res_m),
          overviews=(2, 4, 8))  # fmt: skip
    for level, value in enumerate((2, 4, 8)):
        with rasterio.open(path, "r+", overview_level=level) as ovr:
            ovr.write(np.full((1, ovr.height, ovr.width), value, "uint8"))
    return path


@pytest.mark.parametrize("resampling", ["nearest", "bilinear"])
def test_overview_choice_is_gdals(tmp_path, resampling):
    # 2.81 m pixels: z13..z16 ask 6.8, 3.4, 1.7 and 0.85 source pixels per tile pixel, where GDAL's
    # rule (factor < desired * 1.2 + 0.1 for nearest, * 1.0 + 0.1 otherwise) picks different overviews
    path = levelled(tmp_path, 2.81)
    style = TileStyle(rescale=(0, 10), resampling=resampling)
    seen = set()
    with rasterio.open(path) as ds:
        for tile in corner_tiles(range(13, 17)):
            window = rasterio.windows.from_bounds(*tile_bounds(tile), transform=ds.transform)
            gdal = ds.read(1, window=window, out_shape=(256, 256), resampling=Resampling[resampling])
            img = decode_png(render_tile(ds, tile, style=style))
            ours = np.unique(np.round(img[0] / 25.5))
            assert list(ours) == list(np.unique(gdal)), (tile, resampling)
            seen.add(float(gdal[0, 0]))
    assert seen == ({8.0, 4.0, 2.0, 1.0} if resampling == "nearest" else {4.0, 2.0, 1.0})


def smooth_dem(tmp_path, size=1024, res_m=5.0):
    rows, cols = np.mgrid[0:size, 0:size].astype("float32")
    dem = 1600 + 120 * np.sin(cols / 60) * np.cos(rows / 80) + 0.05 * (rows + cols)
    path = tmp_path / "dem3857.tif"
    w, _, _, n = tile_bounds(CORNER)
    transform = from_origin(w, n, res_m, res_m)
    write(path, dem, crs="EPSG:3857", transform=transform, nodata=-9999, overviews=(2, 4))
    return path, (float(dem.min()), float(dem.max()))


def test_colormapped_tiles_match_a_gdal_read_of_the_same_overview(tmp_path):
    # the reference is what rio-tiler does for a 3857 COG: a GDAL bilinear read of the tile window
    path, value_range = smooth_dem(tmp_path)
    lo, hi = value_range
    table = ELEVATION.lut().astype(int)
    with rasterio.open(path) as ds:
        for tile in corner_tiles(range(14, 19)):
            window = rasterio.windows.from_bounds(*tile_bounds(tile), transform=ds.transform)
            gdal = ds.read(1, window=window, out_shape=(256, 256), resampling=Resampling.bilinear)
            want = table[np.clip(np.rint((gdal - lo) * 255 / (hi - lo)), 0, 255).astype(int)]
            img = decode_png(render_tile(ds, tile, style=TileStyle(ELEVATION, value_range, resampling="bilinear")))
            diff = np.abs(np.moveaxis(img, 0, 2).astype(int) - want)
            assert (img[3] == 255).all()
            # the same overview and kernel: equal but for rounding at a few pixels (the old rule, full
            # resolution at z14, gave a mean of 0.36 here)
            assert diff.mean() < 0.02 and np.percentile(diff, 99.9) <= 1 and diff.max() <= 4, (tile, diff.mean())


def png_colour_type(data):
    assert data[12:16] == b"IHDR"
    return data[25]


def test_one_band_tiles_are_palette_pngs_and_lossless(tmp_path):
    path, value_range = smooth_dem(tmp_path)
    (tile,) = corner_tiles([15])
    png = render_png(path, tile, colormap=ELEVATION, rescale=value_range, resampling="bilinear")
    assert png_colour_type(png) == 3  # palette: one byte per pixel
    rgb = render_png(realdata_free_rgb(tmp_path), tile)
    assert png_colour_type(rgb) == 6  # three bands stay RGBA
    rng = np.random.default_rng(5)
    mixed = rng.integers(0, 256, (256, 4), dtype=np.uint8)
    mixed[:40, 3] = 0  # some invisible colours
    mixed[40:60, 3] = 128  # some translucent ones
    opaque = mixed.copy()
    opaque[:, 3] = 255
    for table in (mixed, opaque):
        for spread, holes in ((200, False), (200, True), (256, False), (256, True)):
            levels = rng.integers(0, spread, (64, 48), dtype=np.uint8)
            alpha = np.full((64, 48), 255, dtype=np.uint8)
            alpha[10:30, 5:20] = 0 if holes else 255
            image = _encode.Indexed(levels, table, alpha)
            data = _encode._png_palette(image)
            if table is opaque and spread == 256 and holes:  # 256 colours and transparent: one too many
                assert data is None
                continue
            assert png_colour_type(data) == 3
            np.testing.assert_array_equal(np.moveaxis(decode_png(data), 0, 2), image.rgba())
    image = _encode.Indexed(levels, mixed, np.full((64, 48), 200, dtype=np.uint8))
    assert _encode._png_palette(image) is None  # partial alpha: RGBA instead


def realdata_free_rgb(tmp_path):
    rgb = np.stack([pattern(1024, 1024), pattern(1024, 1024)[::-1], pattern(1024, 1024)[:, ::-1]])
    path = tmp_path / "rgb.tif"
    w, _, _, n = tile_bounds(CORNER)
    transform = from_origin(w, n, 5.0, 5.0)
    interp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
    return write(path, rgb, crs="EPSG:3857", transform=transform, colorinterp=interp)
