"""Tests for civicmap.sources.raster on the real rasters in ../shared/realdata and small synthetic ones."""

from __future__ import annotations

import math
import re
import struct
import tracemalloc
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import transform_bounds
from rio_cogeo.cogeo import cog_validate
from shapely.geometry import Point

from civicmap.crs import local_metric_crs, to_crs
from civicmap.errors import CRSError, GeometryError, InputError, NotFoundError
from civicmap.sources import raster
from civicmap.sources.raster import (
    RasterInfo,
    clip_raster,
    mosaic_rasters,
    open_raster,
    read_raster_info,
    read_window,
    reproject_raster,
    sample_raster,
    validate_raster,
    write_cog,
)
from civicmap.types import BBox

RASTERS = [
    "raster/dronemapper_ortho_center100.tif",
    "raster/osmnx_elevation1.tif",
    "raster/osmnx_elevation2.tif",
    "raster/pysheds_dem.tif",
    "raster/pysheds_dir.asc",
    "raster/pysheds_roi.tif",
    "raster/rasterio_RGB.byte.tif",
    "raster/rasterio_shade.tif",
    "hazard/jakarta/jakarta_continuous_flood.tif",
    "hazard/jakarta/jakarta_flood_design.tif",
    "hazard/jakarta/tsunami_wgs84.tif",
    "hazard/jakarta/classified_flood_20_20.asc",
    "hazard/jakarta/continuous_flood_20_20.asc",
]
NO_PRJ = {"raster/pysheds_dir.asc": "EPSG:4326"}
FLOOD = "hazard/jakarta/jakarta_continuous_flood.tif"


def _checksums(path: Path) -> list[int]:
    with rasterio.open(path) as ds:
        return [ds.checksum(i) for i in ds.indexes]


def _assert_cog(path: Path, blocksize: int) -> None:
    """A valid COG: rio-cogeo agrees, tiled, and the first IFD follows the header and GDAL's ghost area."""
    valid, errors, _ = cog_validate(str(path), quiet=True)
    assert valid, errors
    head = path.read_bytes()[:200]
    big = head[2:4] == b"+\x00"  # BigTIFF: IFD offset is a uint64 at byte 8, else a uint32 at byte 4
    ifd = struct.unpack("<Q", head[8:16])[0] if big else struct.unpack("<I", head[4:8])[0]
    start = 16 if big else 8
    line = re.match(rb"GDAL_STRUCTURAL_METADATA_SIZE=(\d{6}) bytes\n", head[start:])
    assert line is not None and b"LAYOUT=IFDS_BEFORE_DATA" in head
    assert ifd - (start + line.end() + int(line.group(1))) in (0, 1)  # TIFF word-aligns the IFD
    with rasterio.open(path) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert ds.block_shapes[0] == (blocksize, blocksize)
        # GDAL's OVERVIEWS=AUTO halves the raster until it fits in one tile
        assert bool(ds.overviews(1)) == (max(ds.width, ds.height) > blocksize)


def _utm_for(info: RasterInfo) -> CRS:
    lonlat = transform_bounds(info.crs.to_wkt(), "EPSG:4326", *info.bounds, densify_pts=21)
    return local_metric_crs(BBox(*lonlat))


def _valid(path: Path, band: int = 1) -> np.ma.MaskedArray:
    with rasterio.open(path) as ds:
        return ds.read(band, masked=True)


def test_folder_holds_exactly_the_rasters_tested(realdata: Path) -> None:
    found = {
        p.relative_to(realdata).as_posix()
        for pattern in ("raster/*", "hazard/jakarta/*.tif", "hazard/jakarta/*.asc")
        for p in realdata.glob(pattern)
    }
    assert found == set(RASTERS)


@pytest.mark.parametrize("rel", RASTERS)
def test_every_real_raster_validates_reprojects_and_becomes_a_cog(realdata: Path, tmp_path: Path, rel: str) -> None:
    src = realdata / rel
    info = validate_raster(src, crs=NO_PRJ.get(rel))
    assert info.crs is not None and info.width > 0 and info.height > 0
    assert info.bounds.west < info.bounds.east and info.bounds.south < info.bounds.north
    utm = _utm_for(info)
    assert utm.is_projected and utm.axis_info[0].unit_name == "metre"

    out = reproject_raster(src, tmp_path / "utm.tif", dst_crs=utm, src_crs=NO_PRJ.get(rel))
    assert out.crs.equals(utm) and out.is_tiled and out.count == info.count and out.dtype == info.dtype
    before, after = _valid(src), _valid(tmp_path / "utm.tif")
    assert after.count() > 0
    # bilinear (continuous) and nearest never leave the source value range
    assert before.min() <= after.min() and after.max() <= before.max()

    cog = write_cog(tmp_path / "utm.tif", tmp_path / "cog.tif", blocksize=128)
    _assert_cog(tmp_path / "cog.tif", 128)
    assert cog.is_tiled and cog.crs.equals(utm)
    np.testing.assert_array_equal(_valid(tmp_path / "cog.tif"), after)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cog.tif", "utm.tif"]  # no temp files left


def test_ascii_grid_without_prj_needs_a_crs(realdata: Path) -> None:
    path = realdata / "raster/pysheds_dir.asc"
    with pytest.raises(CRSError, match=r"has no CRS \(its bounds look like longitude/latitude degrees\); pass crs="):
        validate_raster(path)
    info = validate_raster(path, crs="EPSG:4326")
    assert info.crs.to_epsg() == 4326 and info.driver == "AAIGrid" and (info.width, info.height) == (367, 359)
    with open_raster(path, crs="EPSG:4326") as ds:
        assert ds.crs.to_epsg() == 4326
        np.testing.assert_array_equal(ds.read(1), _valid(path).data)  # assigning a CRS changes no value
    assert read_raster_info(path).crs is None


def test_crs_argument_does_not_override_a_files_crs(realdata: Path) -> None:
    with pytest.raises(CRSError, match=r"already has CRS EPSG:32618 but crs='EPSG:4326'"):
        validate_raster(realdata / "raster/rasterio_RGB.byte.tif", crs="EPSG:4326")
    # OGC:CRS84 (the .prj of the 20x20 grids) is EPSG:4326 up to axis order: accepted
    validate_raster(realdata / "hazard/jakarta/continuous_flood_20_20.asc", crs="EPSG:4326")


@pytest.mark.parametrize(
    ("rel", "checksums"),
    [("raster/rasterio_RGB.byte.tif", [25420, 29131, 37860]), ("raster/rasterio_shade.tif", [5581])],
)
def test_cog_without_resampling_keeps_gdal_checksums(
    realdata: Path, tmp_path: Path, rel: str, checksums: list[int]
) -> None:
    assert _checksums(realdata / rel) == checksums
    info = write_cog(realdata / rel, tmp_path / "c.tif")
    _assert_cog(tmp_path / "c.tif", 512)
    assert _checksums(tmp_path / "c.tif") == checksums
    assert info.has_overviews and info.nodata == read_raster_info(realdata / rel).nodata


def test_cog_keeps_dem_range_and_nodata(realdata: Path, tmp_path: Path) -> None:
    info = write_cog(realdata / "raster/pysheds_dem.tif", tmp_path / "dem.tif", blocksize=128)
    dem = _valid(tmp_path / "dem.tif")
    assert (dem.min(), dem.max(), info.nodata, info.dtype) == (147, 298, -32768, "int16")
    with rasterio.open(tmp_path / "dem.tif") as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2" and ds.overviews(1) == [2, 4]


def test_cog_keeps_jakarta_flood_depths(realdata: Path, tmp_path: Path) -> None:
    write_cog(realdata / FLOOD, tmp_path / "flood.tif", blocksize=128, resampling="average")
    depth = _valid(tmp_path / "flood.tif")
    assert depth.count() == 66105 and int((depth > 0).sum()) == 40118
    assert float(depth.max()) == pytest.approx(5.8627, abs=1e-4)
    np.testing.assert_array_equal(depth, _valid(realdata / FLOOD))


def test_web_optimized_cog_is_on_the_google_maps_grid(realdata: Path, tmp_path: Path) -> None:
    info = write_cog(realdata / FLOOD, tmp_path / "web.tif", web_optimized=True, blocksize=256)
    _assert_cog(tmp_path / "web.tif", 256)
    assert info.crs.to_epsg() == 3857
    zoom = math.log2(2 * math.pi * 6378137 / 256 / info.res[0])
    assert zoom == pytest.approx(round(zoom), abs=1e-6)  # a whole XYZ zoom level
    tile = 2 * math.pi * 6378137 / 2 ** round(zoom)  # metres per 256-px tile at that zoom
    assert (info.bounds.west + math.pi * 6378137) / tile == pytest.approx(
        round((info.bounds.west + math.pi * 6378137) / tile)
    )


def test_mosaic_of_adjacent_elevation_tiles(realdata: Path, tmp_path: Path) -> None:
    one, two = realdata / "raster/osmnx_elevation1.tif", realdata / "raster/osmnx_elevation2.tif"
    info = mosaic_rasters([one, two], tmp_path / "m.tif")
    a, b, m = _valid(one), _valid(two), _valid(tmp_path / "m.tif")
    # the tiles share one column (elevation1's last, all nodata there): 24 + 23 - 1 = 46
    assert (info.width, info.height) == (46, 37) and m.shape == (37, 46)
    assert info.bounds.west == pytest.approx(-122.40930555555555) and info.bounds.east == pytest.approx(
        -122.39652777777776
    )
    np.testing.assert_array_equal(m[:, :23], a[:, :23])
    np.testing.assert_array_equal(m[:, 23:], b)  # the seam column comes from the tile that has data there
    assert a[:, 23].mask.all() and m[1:, 23].count() == 36 and info.nodata == -32768


def test_mosaic_refuses_mixed_crs_naming_both(realdata: Path, tmp_path: Path) -> None:
    two = realdata / "raster/osmnx_elevation2.tif"
    reproject_raster(two, tmp_path / "utm.tif", dst_crs="EPSG:32610")
    with pytest.raises(CRSError, match=r"is EPSG:4326, but .*utm.tif is EPSG:32610.*reproject_raster"):
        mosaic_rasters([realdata / "raster/osmnx_elevation1.tif", tmp_path / "utm.tif"], tmp_path / "m.tif")
    assert not (tmp_path / "m.tif").exists()


def test_state_plane_in_us_feet_reprojects_to_metres(realdata: Path, tmp_path: Path) -> None:
    src = realdata / "raster/pysheds_roi.tif"
    info = validate_raster(src)
    assert info.crs.axis_info[0].unit_name == "US survey foot" and info.res == (30.0, 30.0)
    utm = _utm_for(info)
    assert utm.to_epsg() == 32616 + 1  # Kentucky: UTM 17N
    out = reproject_raster(src, tmp_path / "roi.tif", dst_crs=utm)
    assert out.res[0] == pytest.approx(30 * 1200 / 3937, rel=0.01)  # 30 US ft = 9.144 m
    roi = _valid(tmp_path / "roi.tif")
    area_ft2 = 7000 * 30 * 30 * (1200 / 3937) ** 2
    assert roi.count() * out.res[0] * out.res[1] == pytest.approx(area_ft2, rel=0.03)
    # a 300 m square at 10 m resolution around the centre: exactly 30 x 30 pixels
    cx, cy = (out.bounds.west + out.bounds.east) / 2, (out.bounds.south + out.bounds.north) / 2
    box = (cx - 150, cy - 150, cx + 150, cy + 150)
    sub = reproject_raster(src, tmp_path / "box.tif", dst_crs=utm, bounds=box, resolution=10)
    assert (sub.width, sub.height, sub.res) == (30, 30, (10.0, 10.0))
    assert sub.bounds == pytest.approx(box)
    with pytest.raises(InputError, match="do not overlap"):
        reproject_raster(src, tmp_path / "far.tif", dst_crs=utm, bounds=(0, 0, 100, 100))


def test_drone_orthophoto_cog_compressions(realdata: Path, tmp_path: Path) -> None:
    src = realdata / "raster/dronemapper_ortho_center100.tif"
    write_cog(src, tmp_path / "deflate.tif", blocksize=64)
    assert _checksums(tmp_path / "deflate.tif") == _checksums(src) == [53168, 56042, 53465, 57182]
    write_cog(src, tmp_path / "jpeg.tif", blocksize=64, compress="JPEG")
    write_cog(src, tmp_path / "webp.tif", blocksize=64, compress="webp")
    for name in ("deflate", "jpeg", "webp"):
        _assert_cog(tmp_path / f"{name}.tif", 64)
    with rasterio.open(tmp_path / "jpeg.tif") as ds:  # alpha became a mask
        assert ds.count == 3 and ds.mask_flag_enums[0] == [MaskFlags.per_dataset]
        assert ds.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == "YCbCr JPEG"
    with rasterio.open(tmp_path / "webp.tif") as ds:
        assert ds.colorinterp[3] == ColorInterp.alpha
    assert (tmp_path / "jpeg.tif").stat().st_size < (tmp_path / "deflate.tif").stat().st_size / 3
    with pytest.raises(InputError, match=r"compress=JPEG is lossy and needs 8-bit imagery .* 1 x float32"):
        write_cog(realdata / FLOOD, tmp_path / "bad.tif", compress="JPEG")
    with pytest.raises(InputError, match="blocksize 100 must be a multiple of 16"):
        write_cog(src, tmp_path / "bad.tif", blocksize=100)


def test_drone_orthophoto_alpha_survives_reprojection(realdata: Path, tmp_path: Path) -> None:
    src = realdata / "raster/dronemapper_ortho_center100.tif"
    info = reproject_raster(src, tmp_path / "o.tif", dst_crs="EPSG:4326")
    with rasterio.open(tmp_path / "o.tif") as ds:
        alpha = ds.read(4)
        assert ds.colorinterp[3] == ColorInterp.alpha
    # rotated into lon/lat the square gets transparent corners, never opaque black
    assert info.count == 4 and 0 < (alpha == 0).sum() < alpha.size / 2 and set(np.unique(alpha)) <= {0, 255}


def _write(path: Path, data: np.ndarray, **profile: object) -> Path:
    meta = {"driver": "GTiff", "count": 1, "dtype": data.dtype.name, "width": data.shape[1], "height": data.shape[0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **(meta | profile)) as ds:
            ds.write(data, 1)
    return path


def test_bad_files_give_clear_errors(realdata: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        validate_raster(tmp_path / "missing.tif")
    (tmp_path / "empty.tif").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty \(0 bytes\)"):
        validate_raster(tmp_path / "empty.tif")
    (tmp_path / "text.tif").write_text("station,depth\nA,1.2\n")
    with pytest.raises(InputError, match=r"text.tif' could not be opened as a raster: GDAL says .*not recognized"):
        validate_raster(tmp_path / "text.tif")


@pytest.mark.parametrize("rel", ["raster/rasterio_RGB.byte.tif", "raster/pysheds_dem.tif", "raster/pysheds_roi.tif"])
def test_truncated_geotiff_is_refused(realdata: Path, tmp_path: Path, rel: str) -> None:
    (tmp_path / "cut.tif").write_bytes((realdata / rel).read_bytes()[:1000])
    # GDAL fails at open (directory beyond byte 1000), finds no georeference, or cannot read pixels
    with pytest.raises(InputError, match=r"cut.tif.*(TIFFReadDirectory|no georeference|truncated)"):
        validate_raster(tmp_path / "cut.tif")


def test_png_without_georeference_lists_every_problem(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(tmp_path / "a.png", "w", driver="PNG", width=8, height=8, count=1, dtype="uint8") as ds:
            ds.write(np.ones((1, 8, 8), "uint8"))
    with pytest.raises(InputError, match="no georeference") as caught:
        validate_raster(tmp_path / "a.png")
    assert type(caught.value) is InputError and "has no CRS" in str(caught.value)


def test_rotated_geotransform_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "rot.tif", np.ones((10, 10), "uint8"), crs="EPSG:32737", transform=Affine(1, 0.5, 1e5, 0.2, -1, 9e6)
    )
    with pytest.raises(InputError, match=r"rotated or sheared geotransform \(row rotation 0.5, column rotation 0.2\)"):
        validate_raster(path)
    assert read_raster_info(path).bounds == pytest.approx((1e5, 9e6 - 10, 1e5 + 15, 9e6 + 2))


@pytest.mark.parametrize(
    "path",
    [
        "/vsicurl/http://169.254.169.254/x.tif",
        "http://169.254.169.254/latest/meta-data/x.tif",
        "/vsizip//vsicurl/https://example.org/a.zip/a.tif",
        "/vsis3/bucket/a.tif",
        "WMS:http://example.org/wms",
    ],
)
def test_network_paths_are_refused(path: str) -> None:
    with pytest.raises(InputError, match=r"refusing to open"):
        validate_raster(path)
    with pytest.raises(InputError, match=r"refusing to open"):
        read_raster_info(path)


def test_vrt_is_refused_unless_trusted(realdata: Path, tmp_path: Path) -> None:
    target = realdata / "raster/pysheds_dem.tif"
    vrt = tmp_path / "dem.vrt"
    with rasterio.open(target) as ds:
        vrt.write_text(
            f'<VRTDataset rasterXSize="{ds.width}" rasterYSize="{ds.height}"><SRS>EPSG:4326</SRS>'
            f"<GeoTransform>{', '.join(str(v) for v in ds.transform.to_gdal())}</GeoTransform>"
            '<VRTRasterBand dataType="Int16" band="1"><SimpleSource>'
            f"<SourceFilename>{target}</SourceFilename><SourceBand>1</SourceBand>"
            "</SimpleSource></VRTRasterBand></VRTDataset>"
        )
    with pytest.raises(InputError, match="VRT, which can make GDAL read other files or URLs"):
        validate_raster(vrt)
    (tmp_path / "disguised.tif").write_bytes(vrt.read_bytes())
    with pytest.raises(InputError, match=r"text \(XML/JSON\) dataset description"):
        validate_raster(tmp_path / "disguised.tif")
    assert validate_raster(vrt, allow_remote=True).driver == "VRT"


def test_pixel_budget(realdata: Path) -> None:
    with pytest.raises(InputError, match=r"791 x 718 = 567,938 pixels, over the budget of 1,000; pass max_pixels"):
        validate_raster(realdata / "raster/rasterio_RGB.byte.tif", max_pixels=1000)
    assert validate_raster(realdata / "raster/rasterio_RGB.byte.tif", max_pixels=567_938).pixels == 567_938


def test_nodata_rules(tmp_path: Path) -> None:
    grid = {"crs": "EPSG:32737", "transform": Affine(10, 0, 5e5, 0, -10, 9e6)}
    nan = _write(tmp_path / "nan.tif", np.array([[np.nan, 1.0], [2.0, 3.0]], "float32"), nodata=np.nan, **grid)
    info = validate_raster(nan, require_nodata=True)
    assert math.isnan(info.nodata) and _valid(nan).count() == 3
    plain = _write(tmp_path / "plain.tif", np.ones((2, 2), "float32"), **grid)
    with pytest.raises(InputError, match="has no nodata value or mask"):
        validate_raster(plain, require_nodata=True)
    bomb = tmp_path / "bomb.tif"  # one 8192 x 8192 tile: a few hundred bytes on disk, 64 MB once decompressed
    with rasterio.open(
        bomb,
        "w",
        driver="GTiff",
        width=8192,
        height=8192,
        count=1,
        dtype="uint8",
        tiled=True,
        blockxsize=8192,
        blockysize=8192,
        sparse_ok=True,
        **grid,
    ):
        pass
    assert bomb.stat().st_size < 10_000
    with pytest.raises(InputError, match="blocks of 8,192 x 8,192, too large to read safely"):
        validate_raster(bomb)
    complex_path = _write(tmp_path / "c.tif", np.ones((2, 2), "complex64"), **grid)
    with pytest.raises(InputError, match="has data type complex64, which civicmap cannot process"):
        validate_raster(complex_path)


@pytest.fixture(scope="module")
def big_cog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4096 x 4096 uint8 checkerboard (0/100) in UTM 37S, as a COG with 'average' overviews."""
    folder = tmp_path_factory.mktemp("big")
    rows = np.add.outer(np.arange(1024), np.arange(4096)) % 2 * 100
    profile = {"driver": "GTiff", "count": 1, "dtype": "uint8", "width": 4096, "height": 4096, "crs": "EPSG:32737"}
    profile |= {"transform": Affine(1, 0, 500_000, 0, -1, 9_860_000), "tiled": True, "compress": "deflate"}
    with rasterio.open(folder / "plain.tif", "w", **profile) as ds:
        for i in range(4):
            ds.write(rows.astype("uint8"), 1, window=((i * 1024, (i + 1) * 1024), (0, 4096)))
    info = write_cog(folder / "plain.tif", folder / "big.tif", resampling="average")
    assert info.has_overviews and info.is_tiled
    return folder / "big.tif"


def test_read_window_reads_only_the_window(big_cog: Path) -> None:
    data, transform = read_window(big_cog, (500_100, 9_859_000, 500_200, 9_859_050))
    assert data.shape == (50, 100)
    assert transform == Affine(1, 0, 500_100, 0, -1, 9_859_050)
    # pixel (row 950, col 100) of the full grid: checkerboard parity
    assert data[0, 0] == (950 + 100) % 2 * 100 and data.count() == 5000


def test_read_window_with_small_out_shape_uses_overviews(big_cog: Path) -> None:
    with rasterio.open(big_cog) as ds:
        assert ds.overviews(1) == [2, 4, 8]
    data, transform = read_window(big_cog, (500_000, 9_855_904, 504_096, 9_860_000), out_shape=(512, 512))
    assert data.shape == (512, 512) and transform.a == 8 and transform.e == -8
    # full resolution sampled with nearest would be all 0 or all 100; the 1/8 overview holds averages
    assert float(data.mean()) == pytest.approx(50, abs=1)


def test_read_window_with_lonlat_bounds_and_misses(realdata: Path) -> None:
    data, transform = read_window(realdata / FLOOD, (106.85, -6.17, 106.86, -6.16), bounds_crs="EPSG:4326")
    assert data.shape == (23, 23) and transform.a == pytest.approx(0.00045228819716044)
    with pytest.raises(InputError, match="do not overlap the raster"):
        read_window(realdata / FLOOD, (10, 10, 11, 11), bounds_crs="EPSG:4326")
    with pytest.raises(InputError, match="band 2 does not exist"):
        read_window(realdata / FLOOD, (106.85, -6.17, 106.86, -6.16), band=2)


def test_reproject_memory_stays_bounded(tmp_path: Path) -> None:
    """A 4096 x 4096 float32 raster is 64 MB; reprojection holds one 1024 x 1024 chunk at a time."""
    big = np.arange(4096 * 4096, dtype="float32").reshape(4096, 4096)
    grid = {"crs": "EPSG:32737", "transform": Affine(10, 0, 500_000, 0, -10, 9_860_000), "tiled": True}
    _write(tmp_path / "big.tif", big, **grid)
    del big
    tracemalloc.start()
    try:
        info = reproject_raster(tmp_path / "big.tif", tmp_path / "out.tif", dst_crs="EPSG:32736")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.width > 4096 and peak < 24e6


def test_categorical_rasters_keep_their_classes(tmp_path: Path) -> None:
    classes = np.repeat(np.repeat(np.array([[1, 2], [3, 1]], "uint8"), 50, axis=0), 50, axis=1)
    path = _write(tmp_path / "c.tif", classes, crs="EPSG:4326", transform=Affine(0.001, 0, 36.8, 0, -0.001, -1.2))
    with rasterio.open(path, "r+") as ds:
        ds.write_colormap(1, {1: (0, 255, 0, 255), 2: (255, 255, 0, 255), 3: (255, 0, 0, 255)})
    with pytest.raises(InputError, match="would invent classes"):
        reproject_raster(path, tmp_path / "o.tif", dst_crs="EPSG:32737", resampling="bilinear")
    reproject_raster(path, tmp_path / "o.tif", dst_crs="EPSG:32737")  # colour table -> nearest
    assert set(np.unique(_valid(tmp_path / "o.tif").compressed())) == {1, 2, 3}
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert ds.colormap(1)[3] == (255, 0, 0, 255)


def test_clip_keeps_grid_and_values(realdata: Path, tmp_path: Path) -> None:
    src = realdata / "raster/rasterio_RGB.byte.tif"
    info = clip_raster(src, tmp_path / "c.tif", bounds=(-77.5, 24.5, -77.0, 25.0), bounds_crs="EPSG:4326")
    with rasterio.open(src) as ds:
        col, row = (~ds.transform) @ (info.bounds.west, info.bounds.north)
        assert col == pytest.approx(round(col)) and row == pytest.approx(round(row))  # on the source grid
        window = ((round(row), round(row) + info.height), (round(col), round(col) + info.width))
        expected = ds.read(window=window)
    with rasterio.open(tmp_path / "c.tif") as out:
        np.testing.assert_array_equal(out.read(), expected)
        assert out.colorinterp[:3] == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
    assert info.res == read_raster_info(src).res and 150 < info.width < 200


def test_sample_raster_at_known_pixels(realdata: Path) -> None:
    path = realdata / FLOOD
    with rasterio.open(path) as ds:
        depth = ds.read(1, masked=True)
        centre = ds.transform @ Affine.translation(0.5, 0.5)
    cells = [(93, 47), (100, 100), (50, 200), (0, 0)]  # the maximum, two others, and a 0 m cell
    assert depth.count() == depth.size  # every cell of this raster is valid; nodata is tested below
    xy = [centre @ (c, r) for r, c in cells] + [(0.0, 0.0)]
    geometry = [*(Point(x, y) for x, y in xy), Point()]  # four cells, one point far away, one empty point
    points = gpd.GeoDataFrame(geometry=geometry, crs="EPSG:4326", index=list("abcdef"))
    expected = [float(depth[r, c]) for r, c in cells]
    got = sample_raster(path, points)
    assert list(got.index) == list("abcdef") and got.name == "jakarta_continuous_flood"
    np.testing.assert_allclose(got.iloc[:4], expected)
    assert expected[0] == pytest.approx(5.8627) and got.iloc[4:].isna().all()
    # the same points in UTM 48S are reprojected back to the raster's lon/lat
    utm = sample_raster(path, to_crs(points, "EPSG:32748"), name="depth_m")
    np.testing.assert_allclose(utm.iloc[:4], expected)
    assert utm.name == "depth_m"
    tsunami = realdata / "hazard/jakarta/tsunami_wgs84.tif"
    with rasterio.open(tsunami) as ds:
        masked_rc = np.argwhere(ds.read_masks(1) == 0)[0]
        x, y = ds.transform @ (masked_rc[1] + 0.5, masked_rc[0] + 0.5)
    on_nodata = gpd.GeoDataFrame(geometry=[Point(x, y)], crs="EPSG:4326", index=[42])
    assert sample_raster(tsunami, on_nodata).isna().loc[42]
    with pytest.raises(GeometryError, match="needs Point geometries, but 1 are Polygon"):
        sample_raster(path, gpd.GeoDataFrame(geometry=[Point(106.9, -6.15).buffer(0.01)], crs="EPSG:4326"))
    with pytest.raises(CRSError, match="has no CRS"):
        sample_raster(path, gpd.GeoDataFrame(geometry=[Point(106.9, -6.15)]))


def test_sample_raster_block_path_matches_window_path(big_cog: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    cols, rows = rng.integers(0, 4096, 200), rng.integers(0, 4096, 200)
    pts = gpd.GeoDataFrame(
        geometry=[Point(500_000 + c + 0.5, 9_860_000 - r - 0.5) for c, r in zip(cols, rows, strict=True)],
        crs="EPSG:32737",
    )
    whole = sample_raster(big_cog, pts)
    monkeypatch.setattr(raster, "_SAMPLE_WINDOW_PIXELS", 1)  # force one read per touched block
    blocks = sample_raster(big_cog, pts)
    np.testing.assert_array_equal(whole.to_numpy(), (rows + cols) % 2 * 100)
    np.testing.assert_array_equal(blocks.to_numpy(), whole.to_numpy())


def test_writers_refuse_missing_folder_and_self_overwrite(realdata: Path, tmp_path: Path) -> None:
    src = realdata / FLOOD
    with pytest.raises(NotFoundError, match="output folder"):
        write_cog(src, tmp_path / "nope" / "x.tif")
    copy = tmp_path / "f.tif"
    copy.write_bytes(src.read_bytes())
    with pytest.raises(InputError, match="is also an input"):
        reproject_raster(copy, copy, dst_crs="EPSG:32748")
    (tmp_path / "out.tif.aux.xml").write_text("<PAMDataset/>")  # stale sidecar of an older out.tif
    write_cog(copy, tmp_path / "out.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.tif", "out.tif"]
