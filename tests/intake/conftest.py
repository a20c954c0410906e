"""Fixtures of the intake tests: a tiny project over the demo city's area, forms, tokens, files."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import openpyxl
import pytest
from fastapi.testclient import TestClient

from civicmap.intake import FormSettings, Intake, open_intake, publish_form
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


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder over the demo area, with no sources."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "civicmap.toml").write_text(TOML)
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


@pytest.fixture
def helpers() -> SimpleNamespace:
    """The file builders above, for tests (conftest modules are not imported by name)."""
    return SimpleNamespace(
        png=png_bytes, jpeg_with_exif=jpeg_with_exif, demo_instance=demo_instance, write_photo_form=write_photo_form,
        demo_bbox=DEMO_BBOX, demo_form=DEMO_FORM, demo_instances=DEMO_INSTANCES, toml=TOML,
    )  # fmt: skip
