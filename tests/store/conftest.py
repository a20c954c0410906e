"""Store fixtures: every shared store test runs on the GeoPackage default and on PostGIS.

The PostGIS variant needs a server: ``eval "$(scripts/postgis)"`` sets
``CIVICMAP_TEST_POSTGIS_URL``. Without it the PostGIS tests are skipped locally and fail
on CI (``CI`` set), so a missing server can never pass for a green run.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from urllib.parse import urlencode

import pytest

from civicmap.store import Store, open_store


def _store_url(base_url: str, schema: str, raster_dir: Path) -> str:
    """``base_url`` with civicmap's ``schema`` and ``raster_dir`` parameters added."""
    joiner = "&" if "?" in base_url else "?"
    return f"{base_url}{joiner}{urlencode({'schema': schema, 'raster_dir': str(raster_dir)})}"


def _drop_schema(base_url: str, schema: str) -> None:
    """Remove a test schema and everything in it."""
    import psycopg  # only where a server is used: the GeoPackage tests run without psycopg
    from psycopg import sql

    with psycopg.connect(base_url, autocommit=True) as con:
        con.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def postgis_store_url(postgis_url: str) -> Callable[[str, Path], str]:
    """``make(schema, raster_dir)``: the test server's URL with civicmap's query parameters."""
    return partial(_store_url, postgis_url)


@pytest.fixture
def drop_schema(postgis_url: str) -> Callable[[str], None]:
    """``drop(schema)``: remove a schema of the test database with everything in it."""
    return partial(_drop_schema, postgis_url)


@pytest.fixture
def pg_schema(postgis_url: str) -> Iterator[str]:
    """A fresh schema name for one test, dropped afterwards (tests never see each other's layers)."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield schema
    _drop_schema(postgis_url, schema)


@pytest.fixture(params=["geopackage", pytest.param("postgis", marks=pytest.mark.postgis)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """An empty store of each backend (PostGIS: its own schema, rasters under tmp_path)."""
    if request.param == "geopackage":
        return open_store(tmp_path / "ws" / "p.gpkg")
    base_url, schema = request.getfixturevalue("postgis_url"), request.getfixturevalue("pg_schema")
    return open_store(_store_url(base_url, schema, tmp_path / "rasters"))
