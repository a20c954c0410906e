"""Fixtures of the intake tests: a tiny project over the demo city's area, forms, tokens, files.

Every test that uses ``project`` (hence ``intake`` and ``client``) runs on both intake backends:
``sqlite`` (a GeoPackage workspace) and ``postgres`` (a PostgreSQL workspace URL in a fresh schema,
dropped afterwards; marked ``postgis``). The PostgreSQL variant needs a server:
``eval "$(scripts/postgis)"`` sets ``CIVICMAP_TEST_POSTGIS_URL``; without it the variant is
skipped locally and FAILS on CI (``CI`` set). Pin one backend with
``@pytest.mark.parametrize("intake_backend", ["sqlite"], indirect=True)``.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import openpyxl
import pytest
from fastapi.testclient import TestClient

from civicmap.config import read_project_config
from civicmap.intake import FormSettings, Intake, intake_path, open_intake, publish_form
from civicmap.intake.tokens import issue_token
from civicmap.serve import ServiceSettings, create_app

REPO = Path(__file__).resolve().parents[2]
DEMO_FORM = REPO / "sample_data" / "demo" / "forms" / "building_survey.xlsx"
DEMO_INSTANCES = REPO / "sample_data" / "demo" / "surveys" / "instances"
#: The demo city's area (lon/lat), as in sample_data/demo/civicmap.toml.
DEMO_BBOX = (39.229871, -6.824915, 39.249792, -6.805004)
TOML = """[project]
name = "intake test"
[area]
bbox = [39.229871, -6.824915, 39.249792, -6.805004]
[store]
url = ".civicmap/test.gpkg"
"""


def png_bytes(seed: int = 0, size: int = 2) -> bytes:
    """A valid tiny PNG (``size`` x ``size`` grey pixels of value ``seed``)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes([seed % 256]) * size for _ in range(size))
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def jpeg_with_exif() -> bytes:
    """JPEG-shaped bytes: SOI, APP0 (JFIF), APP1 (EXIF with a GPS tag text), DQT, SOS + data, EOI."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    exif = b"Exif\x00\x00MM\x00*GPSLatitude-6.81472GPSLongitude39.24529"
    app1 = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    dqt = b"\xff\xdb" + struct.pack(">H", 67) + bytes(65)
    sos = b"\xff\xda" + struct.pack(">H", 8) + bytes(6) + b"imagedata\xff\xd9"
    return b"\xff\xd8" + app0 + app1 + dqt + sos


def write_photo_form(path: Path, *, form_id: str = "damage_report", version: str = "2") -> Path:
    """An XLSForm: geopoint, category (select_one), photo, severity (0..5), reporter phone (private)."""
    wb = openpyxl.Workbook()
    survey = wb.active
    survey.title = "survey"
    rows = [
        ("type", "name", "label", "required", "constraint", "private"),
        ("geopoint", "location", "Where", "yes", "", ""),
        ("select_one category", "category", "What", "yes", "", ""),
        ("image", "photo", "Photo", "", "", ""),
        ("integer", "severity", "How bad (0-5)", "", ". >= 0 and . <= 5", ""),
        ("text", "description", "Describe", "", "", ""),
        ("text", "reporter_contact", "Your phone", "", "", "yes"),
    ]
    for row in rows:
        survey.append(row)
    choices = wb.create_sheet("choices")
    for row in [
        ("list_name", "name", "label"),
        ("category", "flooding", "Flooding"),
        ("category", "blocked_drain", "Blocked drain"),
        ("category", "landslide", "Landslide"),
    ]:
        choices.append(row)
    settings = wb.create_sheet("settings")
    settings.append(("form_title", "form_id", "version"))
    settings.append(("Damage report", form_id, version))
    wb.save(path)
    return path


def drop_schema(base_url: str, schema: str) -> None:
    """Remove a test schema and everything in it."""
    import psycopg  # only where a server is used: the SQLite variant runs without psycopg
    from psycopg import sql

    with psycopg.connect(base_url, autocommit=True) as con:
        con.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgis)])
def intake_backend(request: pytest.FixtureRequest) -> str:
    """The intake backend of ``project``: ``"sqlite"`` or ``"postgres"``."""
    return str(request.param)


@pytest.fixture
def project_store_url(request: pytest.FixtureRequest, intake_backend: str) -> Iterator[str]:
    """The project's store URL: a GeoPackage path, or the test server in a fresh schema (dropped afterwards)."""
    if intake_backend == "sqlite":
        yield ".civicmap/test.gpkg"
        return
    base_url = request.getfixturevalue("postgis_url")
    schema = f"t_intake_{uuid.uuid4().hex[:12]}"
    yield f"{base_url}{'&' if '?' in base_url else '?'}schema={schema}"
    drop_schema(base_url, schema)


@pytest.fixture
def project(tmp_path: Path, project_store_url: str) -> Path:
    """A project folder over the demo area, with no sources, on the backend of ``intake_backend``."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "civicmap.toml").write_text(TOML.replace(".civicmap/test.gpkg", project_store_url))
    return folder


@pytest.fixture
def intake(project: Path, tmp_path: Path) -> Iterator[Intake]:
    """The project's intake with the demo form and the photo form published."""
    it = open_intake(project)
    publish_form(it.store, DEMO_FORM, settings=FormSettings(duplicate_field="wall_material"))
    form = write_photo_form(tmp_path / "damage_report.xlsx")
    publish_form(it.store, form, settings=FormSettings(coarsen_m=100, duplicate_field="category"))
    yield it
    it.store.close()


@pytest.fixture
def tokens(intake: Intake) -> dict[str, str]:
    """One token per role (90 days)."""
    roles = ("mapper", "moderator", "analyst", "admin")
    return {r: issue_token(intake.store, role=r, project=intake.project).token for r in roles}


@pytest.fixture
def client(project: Path, intake: Intake) -> Iterator[TestClient]:
    """A test client of the project's service (its own intake object on the same file)."""
    app = create_app(project, ServiceSettings())
    with TestClient(app) as c:
        yield c
    app.state.civicmap_intake.store.close()


def demo_instance(name: str | None = None) -> bytes:
    """The bytes of one demo ODK XML instance (the first by name, or ``name``)."""
    files = sorted(DEMO_INSTANCES.glob("*.xml"))
    path = next(p for p in files if name in p.name) if name else files[0]
    return path.read_bytes()


def stored_text(project: Path) -> str:
    """Everything the project's intake store holds, as text (to show a secret is not stored in clear)."""
    config = read_project_config(project)
    path = intake_path(config)
    if path is not None:  # the file and its WAL (recent commits are only there until a checkpoint)
        files = [path, path.with_name(path.name + "-wal")]
        return " ".join(f.read_bytes().decode("latin-1") for f in files if f.exists())
    import psycopg  # only the PostgreSQL variant needs it
    from psycopg import sql

    from civicmap.intake.postgres import TABLE_PREFIX, PostgresIntakeStore

    store = PostgresIntakeStore(config.store_url)
    try:
        tables = [sql.Identifier(store.schema, TABLE_PREFIX + t) for t in ("tokens", "audit_log", "submissions")]
        con = store._con()
        return " ".join(str(con.execute(sql.SQL("SELECT t::text FROM {} t").format(t)).fetchall()) for t in tables)
    except psycopg.Error as exc:
        raise AssertionError(f"could not read the intake tables: {exc}") from exc
    finally:
        store.close()


@pytest.fixture
def helpers() -> SimpleNamespace:
    """The file builders above, for tests (conftest modules are not imported by name)."""
    return SimpleNamespace(
        png=png_bytes, jpeg_with_exif=jpeg_with_exif, demo_instance=demo_instance, write_photo_form=write_photo_form,
        demo_bbox=DEMO_BBOX, demo_form=DEMO_FORM, demo_instances=DEMO_INSTANCES, toml=TOML, stored_text=stored_text,
    )  # fmt: skip
