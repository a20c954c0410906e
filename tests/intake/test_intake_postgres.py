"""The PostgreSQL intake store only: durable session, ``intake_*`` tables in the URL's schema, wiring, URLs.

The behaviour shared with SQLite (idempotency, merge, moderation, audit, tokens) is tested on both
backends by the other modules (``intake_backend`` in conftest).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest

from civicmap.config import read_project_config
from civicmap.errors import StoreError
from civicmap.intake import Intake, intake_path, open_intake, open_intake_store
from civicmap.intake.attachments import stage_attachment
from civicmap.intake.base import NewSubmission
from civicmap.intake.postgres import PostgresIntakeStore
from civicmap.workspace import open_workspace

POSTGRES_ONLY = pytest.mark.parametrize(
    "intake_backend", [pytest.param("postgres", marks=pytest.mark.postgis)], indirect=True
)
TABLES = ["intake_attachments", "intake_audit_log", "intake_forms", "intake_submissions", "intake_tokens"]


def _new(instance_id: str) -> NewSubmission:
    return NewSubmission(
        instance_id=instance_id, form_id="damage_report", version="2", answers={"b": "ü", "a": 1},
        geometry_wkt="POINT (39.24 -6.81)", public_geometry_wkt="POINT (39.24 -6.81)", lon=39.24, lat=-6.81,
        content_hash="h", submitter="anonymous", source="json",
    )  # fmt: skip


@POSTGRES_ONLY
def test_durable_session_and_prefixed_tables_in_schema(intake: Intake, project: Path) -> None:
    store = intake.store
    assert isinstance(store, PostgresIntakeStore)
    con = store._con()
    assert con.execute("SHOW synchronous_commit").fetchone() == {"synchronous_commit": "on"}
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", (store.schema,)
    ).fetchall()
    intake_tables = [r["table_name"] for r in rows if r["table_name"].startswith("intake_")]
    assert intake_tables == TABLES
    assert store.schema.startswith("t_intake_")
    assert store.attachments_dir == project / ".civicmap" / "intake_attachments" / store.schema
    assert ":***@" in store.url and os.environ["CIVICMAP_TEST_POSTGIS_URL"].split("@")[0] not in store.url
    assert [f.form_id for f in store.forms()] == ["building_survey", "damage_report"]
    assert store.integrity_check() == "ok"


@POSTGRES_ONLY
def test_answers_keep_key_order_and_text(intake: Intake) -> None:
    stored = intake.store.put_submission(_new("uuid:order"), []).record
    assert list(stored.answers) == ["b", "a"] and stored.answers == {"b": "ü", "a": 1}
    assert stored.row_version == 1 and stored.state == "pending" and len(stored.receipt) == 8


@POSTGRES_ONLY
def test_synchronous_commit_off_in_url_is_overridden(project: Path, tmp_path: Path) -> None:
    url = read_project_config(project).store_url
    weak = f"{url}&options={quote('-c synchronous_commit=off')}&attachments_dir={tmp_path / 'att'}"
    store = PostgresIntakeStore(weak)
    try:
        assert store._con().execute("SHOW synchronous_commit").fetchone() == {"synchronous_commit": "on"}
        assert store.attachments_dir == tmp_path / "att" and store.attachments_dir.is_dir()
    finally:
        store.close()


@POSTGRES_ONLY
def test_project_and_workspace_wiring(project: Path, intake: Intake) -> None:
    config = read_project_config(project)
    assert intake_path(config) is None
    assert not (project / ".civicmap" / "intake.sqlite").exists()
    intake.store.put_submission(_new("uuid:wired"), [])
    workspace_store = open_workspace(project).intake.store
    other = open_intake(project).store
    try:
        assert isinstance(workspace_store, PostgresIntakeStore) and isinstance(other, PostgresIntakeStore)
        assert [s.instance_id for s in workspace_store.submissions()] == ["uuid:wired"]
        assert other.submission("uuid:wired").answers == {"b": "ü", "a": 1}
    finally:
        workspace_store.close()
        other.close()
    sqlite_store = open_intake_store(config, project / "x" / "intake.sqlite")  # an explicit path: SQLite
    assert type(sqlite_store).__name__ == "SQLiteIntakeStore"
    sqlite_store.close()


@POSTGRES_ONLY
def test_integrity_check_finds_a_missing_attachment_file(intake: Intake, helpers: object) -> None:
    store = intake.store
    staged = stage_attachment(store.attachments_dir, "a.png", helpers.png(5), "image/png")  # type: ignore[attr-defined]
    store.put_submission(_new("uuid:file"), [staged])
    assert store.integrity_check() == "ok"
    (store.attachments_dir / staged.path).unlink()
    assert store.integrity_check() == f"attachment a.png of uuid:file: file {staged.path} missing or changed"


def test_unreachable_server_is_a_store_error_with_the_fix(tmp_path: Path) -> None:
    url = f"postgresql://nobody:secret@127.0.0.1:1/db?connect_timeout=2&attachments_dir={tmp_path}"
    with pytest.raises(
        StoreError, match=r"(?s)cannot connect to PostgreSQL at postgresql://nobody:\*\*\*@.*scripts/postgis"
    ):
        PostgresIntakeStore(url)
