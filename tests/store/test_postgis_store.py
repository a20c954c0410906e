"""What only the PostGIS backend promises: URLs, SQL-side layout, atomic swaps, schemas, a full build."""

import threading
from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg
import pytest
import shapely

from civicmap.config import read_project_config
from civicmap.errors import InputError, StoreError
from civicmap.store import PostGISStore, open_store
from civicmap.workspace import Workspace

DEMO = Path(__file__).resolve().parents[2] / "sample_data" / "demo"


def _squares(n: int, crs: object = 32737) -> gpd.GeoDataFrame:
    x = 500_000 + np.arange(n) * 10.0
    return gpd.GeoDataFrame({"n": np.arange(n)}, geometry=shapely.box(x, 9_240_000, x + 5, 9_240_005), crs=crs)


# -- URLs: checked before any connection -------------------------------------------------
@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("postgresql://u@h/db?schema=Bad-Name", "schema name 'Bad-Name'"),
        ("postgresql://u@h/db?schema=x&no_such_libpq_option=1", "not a valid PostgreSQL URL"),
    ],
)
def test_bad_postgres_urls_are_refused_with_the_reason(url, needle):
    with pytest.raises(InputError, match=needle):
        open_store(url)


def test_unreachable_server_is_a_store_error_that_hides_the_password():
    with pytest.raises(
        StoreError, match=r"cannot connect to PostgreSQL at postgresql://u:\*\*\*@127\.0\.0\.1:1/db"
    ) as e:
        open_store("postgresql://u:s3cret@127.0.0.1:1/db?connect_timeout=2")
    assert "s3cret" not in str(e.value)


# -- against a server ----------------------------------------------------------------------
@pytest.mark.postgis
def test_open_store_url_forms(postgis_url, postgis_store_url, pg_schema, tmp_path):
    store = open_store(postgis_store_url(pg_schema, tmp_path))
    assert isinstance(store, PostGISStore) and store.schema == pg_schema and store.raster_dir == tmp_path
    assert "***" in store.url or "@" not in store.url  # the password never shows
    assert store.postgis_version.startswith("3.")
    other = open_store(postgis_url.replace("postgresql://", "postgres://", 1))
    assert other.schema == "public" and other.raster_dir == Path.cwd() / ".civicmap" / "rasters" / "public"


@pytest.mark.postgis
def test_layers_are_real_postgis_tables_with_srid_and_gist_index(postgis_url, postgis_store_url, pg_schema, tmp_path):
    store = open_store(postgis_store_url(pg_schema, tmp_path))
    store.write_layer("squares", _squares(10))
    with psycopg.connect(postgis_url) as con:
        srid, kind = con.execute(
            "SELECT srid, type FROM geometry_columns WHERE f_table_schema = %s AND f_table_name = 'squares'",
            (pg_schema,),
        ).fetchone()
        gist = con.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND tablename = 'squares' AND indexdef ~ 'gist'",
            (pg_schema,),
        ).fetchone()[0]
        area = con.execute(f'SELECT sum(ST_Area(geom)) FROM "{pg_schema}".squares').fetchone()[0]
        version = con.execute(f'SELECT version FROM "{pg_schema}".civicmap_layers').fetchone()[0]
    assert (srid, kind, gist, area, version) == (32737, "GEOMETRY", 1, 250.0, 1)


@pytest.mark.postgis
def test_schemas_keep_workspaces_apart(postgis_store_url, drop_schema, pg_schema, tmp_path):
    other_schema = f"{pg_schema}_b"
    try:
        a = open_store(postgis_store_url(pg_schema, tmp_path / "a"))
        b = open_store(postgis_store_url(other_schema, tmp_path / "b"))
        a.write_layer("squares", _squares(3))
        b.write_layer("squares", _squares(7))
        assert len(a.read_layer("squares")) == 3 and len(b.read_layer("squares")) == 7
        assert [i.version for i in (a.layer_info("squares"), b.layer_info("squares"))] == [1, 1]
    finally:
        drop_schema(other_schema)


@pytest.mark.postgis
def test_crs_without_epsg_code_round_trips(postgis_store_url, pg_schema, tmp_path):
    store = open_store(postgis_store_url(pg_schema, tmp_path))
    custom = "+proj=tmerc +lat_0=0 +lon_0=39.2 +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
    store.write_layer("local", _squares(4, crs=custom))
    back = store.read_layer("local", bbox=(500_000, 9_240_000, 500_012, 9_240_005))
    assert back.crs.equals(_squares(1, crs=custom).crs) and back["n"].tolist() == [0, 1]


@pytest.mark.postgis
def test_hostile_column_names_are_quoted_not_executed(postgis_store_url, pg_schema, tmp_path):
    store = open_store(postgis_store_url(pg_schema, tmp_path))
    frame = _squares(2).rename(columns={"n": 'x"; DROP TABLE civicmap_layers; --'})
    store.write_layer("evil", frame)
    assert list(store.read_layer("evil").columns) == ['x"; DROP TABLE civicmap_layers; --', "geometry"]
    assert [i.name for i in store.layers()] == ["evil"]
    with pytest.raises(InputError, match="cannot be stored in PostGIS"):
        store.write_layer("clash", _squares(2).rename(columns={"n": "civicmap_fid"}))
    with pytest.raises(InputError, match="has no column"):
        store.read_layer("evil", columns=["nope"])


@pytest.mark.postgis
def test_readers_never_see_a_half_written_layer(postgis_store_url, pg_schema, tmp_path):
    store = open_store(postgis_store_url(pg_schema, tmp_path))
    small, big = _squares(500), _squares(20_000)
    store.write_layer("squares", small)
    seen: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                seen.append(len(store.read_layer("squares", columns=["n"])))
        except BaseException as exc:  # reported below
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(6):
        store.write_layer("squares", big if i % 2 == 0 else small)
    done.set()
    reader.join()
    assert errors == [] and len(seen) >= 3
    assert set(seen) <= {500, 20_000}
    assert store.layer_info("squares").version == 7


@pytest.mark.postgis
@pytest.mark.slow
def test_demo_city_builds_into_postgis_like_into_geopackage(postgis_store_url, pg_schema, tmp_path):
    config = read_project_config(DEMO)
    gpkg = Workspace(config, store=open_store(tmp_path / "demo.gpkg"))
    pg = Workspace(config, store=open_store(postgis_store_url(pg_schema, tmp_path / "rasters")))
    gpkg_report, pg_report = gpkg.build(progress=False), pg.build(progress=False)
    assert gpkg_report.failed == [] and pg_report.failed == []
    counts = {i.name: (i.kind, i.feature_count) for i in gpkg.layers()}
    assert {i.name: (i.kind, i.feature_count) for i in pg.layers()} == counts
    assert counts["buildings"][1] > 1000 and len(counts) >= 15
    a, b = gpkg.read_layer("buildings"), pg.read_layer("buildings")
    assert a.index.equals(b.index)
    assert a.geometry.geom_equals(b.geometry).all()  # GeoPackage promotes mixed types to Multi*, PostGIS keeps them
    assert pg.store.layer_info("dem").path.parent == tmp_path / "rasters"
