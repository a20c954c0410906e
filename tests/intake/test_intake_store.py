"""The intake stores (SQLite and PostgreSQL): durability settings, idempotency by UNIQUE, attachment merge, gc.

Tests taking ``intake`` run on both backends (see conftest: ``intake_backend``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import replace

import pytest

from civicmap.errors import ConflictError, InputError, MediaTypeError, StoreError, TooLargeError
from civicmap.intake import Intake, IntakeStore
from civicmap.intake.attachments import check_attachment, safe_name, stage_attachment, strip_exif
from civicmap.intake.base import NewSubmission
from civicmap.intake.store import SQLiteIntakeStore

RAW_INSERT = (
    "INSERT INTO {table} (instance_id, form_id, version, answers, content_hash, submitted_at, "
    "submitter, source, receipt) VALUES ('uuid:1', 'f', '1', '{{}}', 'h', 't', 's', 'json', 'r')"
)


def _new(instance_id: str, content: str = "a") -> NewSubmission:
    return NewSubmission(
        instance_id=instance_id, form_id="damage_report", version="2", answers={"description": content},
        geometry_wkt="POINT (39.24 -6.81)", public_geometry_wkt="POINT (39.24 -6.81)", lon=39.24, lat=-6.81,
        content_hash=f"hash-{content}", submitter="anonymous", source="json",
    )  # fmt: skip


def _raw_insert_fails(store: IntakeStore) -> None:
    """Inserting a stored instance_id behind the store's back hits the UNIQUE constraint itself."""
    if isinstance(store, SQLiteIntakeStore):
        with pytest.raises(sqlite3.IntegrityError):
            store._con().execute(RAW_INSERT.format(table="submissions"))
        return
    import psycopg  # only the PostgreSQL variant needs it

    with pytest.raises(psycopg.errors.UniqueViolation, match="intake_submissions_instance_id_key"):
        store._con().execute(RAW_INSERT.format(table=f"{store.schema}.intake_submissions"))  # type: ignore[attr-defined]


@pytest.mark.parametrize("intake_backend", ["sqlite"], indirect=True)
def test_pragmas_wal_full_busy_timeout(intake: Intake) -> None:
    store = intake.store
    assert isinstance(store, SQLiteIntakeStore)
    con = store._con()
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert con.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
    assert store.path.name == "intake.sqlite" and store.path.parent.name == ".civicmap"
    assert store.integrity_check() == "ok"


def test_unique_instance_id_is_the_idempotency(intake: Intake) -> None:
    store = intake.store
    first = store.put_submission(_new("uuid:1"), [])
    again = store.put_submission(_new("uuid:1"), [])
    assert first.created and not again.created
    assert again.record.receipt == first.record.receipt and len(again.record.receipt) == 8
    with pytest.raises(ConflictError, match=r"already exists with this ID.*different content"):
        store.put_submission(_new("uuid:1", "b"), [])
    assert len(store.submissions()) == 1
    _raw_insert_fails(store)  # the constraint itself, not a pre-check
    assert len(store.submissions()) == 1
    assert [a.action for a in store.audit("uuid:1")] == ["submit"]


def test_concurrent_identical_posts_store_one_row(intake: Intake) -> None:
    results = []

    def put() -> None:
        results.append(intake.store.put_submission(_new("uuid:race"), []).created)

    threads = [threading.Thread(target=put) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 11 + [True]
    assert [s.instance_id for s in intake.store.submissions()] == ["uuid:race"]


def test_sixteen_threads_same_instance_id_store_one_row(intake: Intake, helpers: object) -> None:
    store = intake.store
    staged = stage_attachment(store.attachments_dir, "a.png", helpers.png(7), "image/png")  # type: ignore[attr-defined]
    barrier = threading.Barrier(16)
    results: list[bool] = []
    errors: list[BaseException] = []

    def put() -> None:
        barrier.wait()
        try:
            results.append(store.put_submission(_new("uuid:sixteen"), [staged]).created)
        except BaseException as exc:  # collected: a failure in a thread must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == [False] * 15 + [True]
    assert [s.instance_id for s in store.submissions()] == ["uuid:sixteen"]
    assert [a.name for a in store.attachments("uuid:sixteen")] == ["a.png"]
    assert [a.action for a in store.audit("uuid:sixteen")] == ["submit"]
    assert store.integrity_check() == "ok"


def test_attachments_merge_and_gc(intake: Intake, helpers: object) -> None:
    store = intake.store
    png1, png2 = helpers.png(1), helpers.png(2)  # type: ignore[attr-defined]
    a1 = stage_attachment(store.attachments_dir, "a.png", png1, "image/png")
    first = store.put_submission(_new("uuid:2"), [a1])
    a2 = stage_attachment(store.attachments_dir, "b.png", png2, "image/png")
    merged = store.put_submission(_new("uuid:2"), [a1, a2])
    assert first.created and not merged.created
    assert merged.added_attachments == ("b.png",)
    assert [a.name for a in store.attachments("uuid:2")] == ["a.png", "b.png"]
    assert (store.attachments_dir / a1.path).read_bytes() == png1
    orphan = stage_attachment(store.attachments_dir, "c.png", helpers.png(3), "image/png")  # type: ignore[attr-defined]
    old = time.time() - 7200
    for a in (a1, a2, orphan):
        os.utime(store.attachments_dir / a.path, (old, old))
    assert store.gc(min_age_s=3600) == 1
    assert not (store.attachments_dir / orphan.path).exists()
    assert (store.attachments_dir / a1.path).exists() and (store.attachments_dir / a2.path).exists()


def test_failed_commit_leaves_no_row(intake: Intake) -> None:
    store = intake.store
    bad = replace(_new("uuid:3"), form_id=None)  # type: ignore[arg-type]  # NOT NULL violation inside the txn
    expected = sqlite3.IntegrityError if isinstance(store, SQLiteIntakeStore) else StoreError
    with pytest.raises(expected, match=r"NOT NULL|not-null"):
        store.put_submission(bad, [])
    assert store.submissions() == []
    assert store.audit("uuid:3") == []


def test_attachment_checks(helpers: object) -> None:
    png = helpers.png()  # type: ignore[attr-defined]
    assert check_attachment("p.png", png, max_bytes=1000) == "image/png"
    with pytest.raises(InputError, match="not a plain file name"):
        safe_name("../../x.jpg")
    with pytest.raises(InputError, match="not a plain file name"):
        safe_name("a/b.png")
    with pytest.raises(MediaTypeError, match="not image/jpeg"):
        check_attachment("x.jpg", b"<html><script>alert(1)</script></html>", max_bytes=1000)
    with pytest.raises(MediaTypeError, match="extension not accepted"):
        check_attachment("x.exe", b"MZ", max_bytes=1000)
    with pytest.raises(TooLargeError, match="limit is 10 bytes"):
        check_attachment("p.png", png, max_bytes=10)
    with pytest.raises(InputError, match="empty"):
        check_attachment("p.png", b"", max_bytes=10)


def test_strip_exif_drops_app1_keeps_image(helpers: object) -> None:
    jpeg = helpers.jpeg_with_exif()  # type: ignore[attr-defined]
    clean = strip_exif(jpeg, "image/jpeg")
    assert b"GPSLatitude" in jpeg and b"GPSLatitude" not in clean
    assert b"\xff\xe1" not in clean[: clean.index(b"\xff\xda")]
    assert clean.startswith(b"\xff\xd8\xff\xe0") and clean.endswith(b"imagedata\xff\xd9")
    assert len(jpeg) - len(clean) == jpeg.index(b"\xff\xdb") - jpeg.index(b"\xff\xe1")
