"""The aligned fast path of raster tiles: resampling a north-up grid onto the tile grid in numpy."""

import numpy as np
from affine import Affine
from rasterio.warp import Resampling, reproject

from civicmap.tiles._raster_read import is_north_up, resample_aligned

SRC = Affine(10.0, 0, 1000.0, 0, -10.0, 5000.0)


def test_same_grid_is_returned_unchanged():
    values = np.arange(64, dtype="float32").reshape(1, 8, 8)
    valid = np.ones((8, 8), bool)
    for method in ("nearest", "bilinear"):
        out, alpha = resample_aligned(
            values, valid, src_transform=SRC, dst_transform=SRC, dst_size=8, resampling=method
        )
        np.testing.assert_allclose(out, values, atol=1e-5)
        assert (alpha == 255).all()


def test_nearest_halving_takes_the_pixel_under_each_centre():
    values = np.arange(64, dtype="float32").reshape(1, 8, 8)
    dst = Affine(20.0, 0, 1000.0, 0, -20.0, 5000.0)
    out, _ = resample_aligned(values, np.ones((8, 8), bool), src_transform=SRC, dst_transform=dst, dst_size=4,
                              resampling="nearest")  # fmt: skip
    # a 20 m pixel's centre is at the shared corner; the source pixel below-right of it is taken (GDAL's rule)
    np.testing.assert_array_equal(out[0], values[0][1::2, 1::2])


def test_nodata_does_not_bleed_and_matches_gdal_within_noise():
    rng = np.random.default_rng(1)
    values = rng.uniform(0, 100, (1, 64, 64)).astype("float64")
    valid = np.ones((64, 64), bool)
    valid[20:30, 20:30] = False
    values[0][~valid] = -9999.0
    dst = Affine(13.0, 0, 1000.0, 0, -13.0, 5000.0)
    out, alpha = resample_aligned(values, valid, src_transform=SRC, dst_transform=dst, dst_size=48,
                                  resampling="bilinear")  # fmt: skip
    assert out[0][alpha > 0].min() >= 0  # no -9999 mixed into any visible pixel
    gdal = np.full((48, 48), np.nan)
    reproject(np.where(valid, values[0], np.nan), gdal, src_transform=SRC, dst_transform=dst, src_crs="EPSG:3857",
              dst_crs="EPSG:3857", resampling=Resampling.bilinear, src_nodata=np.nan, dst_nodata=np.nan)  # fmt: skip
    both = alpha > 0
    both &= np.isfinite(gdal)
    assert both.mean() > 0.9
    assert np.abs(out[0][both] - gdal[both]).mean() < 5.0  # same smooth surface; resampling noise only


def test_north_up_detection():
    assert is_north_up(SRC)
    assert not is_north_up(Affine(10.0, 0.5, 0, 0, -10.0, 0))  # sheared
    assert not is_north_up(Affine(10.0, 0, 0, 0, 10.0, 0))  # south-up


def test_bilinear_reproduces_a_linear_ramp_enlarged_and_shrunk():
    cols = np.arange(200, dtype="float64")
    values = np.broadcast_to(3.0 * cols + 7.0, (200, 200))[None].copy()  # value = 3 * column + 7
    valid = np.ones((200, 200), bool)
    for res in (4.0, 10.0, 19.1, 23.0):  # enlarging, same size, shrinking by about 2 and by 2.3
        dst = Affine(res, 0, 1000.0 + 200.0, 0, -res, 5000.0 - 200.0)
        out, alpha = resample_aligned(values, valid, src_transform=SRC, dst_transform=dst, dst_size=48,
                                      resampling="bilinear")  # fmt: skip
        centre_col = (200.0 + (np.arange(48) + 0.5) * res) / 10.0 - 0.5  # in source pixel centres
        inner = (centre_col > res / 10 + 1) & (centre_col < 199 - res / 10 - 1)
        # exact when enlarging; a sampled triangle when shrinking is centred to within 0.05 source pixels
        tolerance = 1e-9 if res <= 10 else 3 * 0.05
        want = np.broadcast_to(3 * centre_col + 7, (48, 48))
        np.testing.assert_allclose(out[0][:, inner], want[:, inner], rtol=0, atol=tolerance)
        assert (alpha[:, inner] == 255).all()


def test_all_valid_and_masked_paths_agree_away_from_the_hole():
    rng = np.random.default_rng(2)
    values = rng.uniform(0, 100, (2, 80, 80)).astype("float32")
    full = np.ones((80, 80), bool)
    holed = full.copy()
    holed[70:, 70:] = False  # far from the rows and columns compared below
    dst = Affine(17.0, 0, 1000.0, 0, -17.0, 5000.0)
    for method in ("nearest", "bilinear"):
        a, alpha_a = resample_aligned(
            values, full, src_transform=SRC, dst_transform=dst, dst_size=40, resampling=method
        )
        b, alpha_b = resample_aligned(
            values, holed, src_transform=SRC, dst_transform=dst, dst_size=40, resampling=method
        )
        np.testing.assert_allclose(a[:, :35, :35], b[:, :35, :35], rtol=1e-5)
        assert (alpha_a[:35, :35] == alpha_b[:35, :35]).all() and (alpha_b[45:, 45:] == 0).sum() == 0
