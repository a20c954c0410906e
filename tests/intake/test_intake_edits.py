"""Edits from the field (ODK ``meta/deprecatedID``, JSON ``deprecated_id``): new versions that supersede the old.

Every test runs on SQLite and PostgreSQL (``intake_backend`` in conftest).
"""

from __future__ import annotations

import csv
import io
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from civicmap.errors import ConflictError, ForbiddenError, InputError, NotFoundError
from civicmap.intake import Intake, approved_submissions, open_intake
from civicmap.intake.base import NewSubmission
from civicmap.intake.exports import export_bytes
from civicmap.intake.moderation import submissions_frame, superseded_event
from civicmap.intake.postgres import PostgresIntakeStore

OR_NS = "{http://openrosa.org/http/response}"


def instance(iid: str, *, deprecated: str | None = None, severity: int = 2, photo: str = "1.png") -> bytes:
    """A damage_report instance as ODK Collect sends it (``deprecatedID`` in meta for an edit)."""
    meta = f"<instanceID>{iid}</instanceID>" + (f"<deprecatedID>{deprecated}</deprecatedID>" if deprecated else "")
    return (
        '<?xml version="1.0" encoding="UTF-8"?><damage_report id="damage_report" version="2">'
        "<location>-6.8152 39.2401 12.5 4.0</location><category>flooding</category>"
        f"<photo>{photo}</photo><severity>{severity}</severity><description/><reporter_contact/>"
        f"<meta>{meta}</meta></damage_report>"
    ).encode()


def post(client: TestClient, xml: bytes, *, token: str | None = None, files: dict[str, bytes] | None = None):
    parts = {"xml_submission_file": ("submission.xml", xml, "text/xml")}
    parts |= {name: (name, data, "image/png") for name, data in (files or {}).items()}
    return client.post(f"/key/{token}/submission" if token else "/submission", files=parts)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_openrosa_edit_supersedes_and_leaves_layers(
    client: TestClient, intake: Intake, tokens: dict[str, str], helpers: object
) -> None:
    mapper, store = tokens["mapper"], intake.store
    png = helpers.png(9)  # type: ignore[attr-defined]
    assert post(client, instance("uuid:e1"), token=mapper, files={"1.png": png}).status_code == 201
    ok = client.post("/moderation/submissions/uuid:e1", json={"state": "approved"}, headers=_auth(tokens["moderator"]))
    assert ok.status_code == 200
    assert list(approved_submissions(store, "damage_report").index) == ["uuid:e1"]
    events: list[object] = []
    client.app.state.civicmap_intake.on_change(events.append)  # type: ignore[attr-defined]

    r = post(client, instance("uuid:e2", deprecated="uuid:e1", severity=4), token=mapper)  # photo not sent again
    assert r.status_code == 201 and "Edit received" in r.text and r.headers["x-openrosa-version"] == "1.0"

    [event] = events  # the served intake tells its hooks (tile invalidation, layer refresh)
    assert event.instance_ids == ("uuid:e1", "uuid:e2") and event.state == "superseded"  # type: ignore[attr-defined]
    old, new = store.submission("uuid:e1"), store.submission("uuid:e2")
    assert (old.superseded_by, old.state, old.is_current) == ("uuid:e2", "approved", False)
    assert (new.deprecated_id, new.state, new.root_id, old.root_id) == ("uuid:e1", "pending", "uuid:e1", "uuid:e1")
    assert new.answers["severity"] == "4" and old.answers["severity"] == "2"  # the old version is kept as sent
    assert new.duplicate_of is None  # never flagged as a duplicate of the version it edits
    assert len(approved_submissions(store, "damage_report")) == 0  # the approved version left the layer
    assert list(submissions_frame(store, "damage_report", state=None).index) == ["uuid:e2"]
    rows = list(csv.DictReader(io.StringIO(export_bytes(store, "damage_report", "csv", state=None).decode())))
    assert [row["instance_id"] for row in rows] == ["uuid:e2"]
    assert [s.instance_id for s in store.submissions(form_id="damage_report")] == ["uuid:e2"]
    assert [a.sha256 for a in store.attachments("uuid:e2")] == [a.sha256 for a in store.attachments("uuid:e1")]
    assert [a.action for a in store.audit("uuid:e1")][-1] == "superseded"
    [edit] = store.audit("uuid:e2")
    assert edit.action == "edit" and edit.after == {
        "source": "openrosa",
        "deprecated_id": "uuid:e1",
        "carried": ["1.png"],
    }
    assert [v.instance_id for v in store.versions("uuid:e1")] == ["uuid:e1", "uuid:e2"]

    again = post(client, instance("uuid:e2", deprecated="uuid:e1", severity=4), token=mapper)
    assert again.status_code == 201 and "Edit already received" in again.text
    assert len(store.submissions(include_superseded=True)) == 2

    stale = post(client, instance("uuid:e3", deprecated="uuid:e1", severity=5), token=mapper)
    assert stale.status_code == 409 and "out of date" in stale.text and "uuid:e2" in stale.text
    moderate_old = client.post(
        "/moderation/submissions/uuid:e1", json={"state": "rejected"}, headers=_auth(tokens["moderator"])
    )
    assert moderate_old.status_code == 409 and "uuid:e2" in moderate_old.json()["description"]

    assert post(client, instance("uuid:e3", deprecated="uuid:e2", severity=5), token=mapper).status_code == 201
    history = client.get("/moderation/submissions/uuid:e3/versions", headers=_auth(tokens["analyst"])).json()
    assert [(v["instance_id"], v["superseded_by"]) for v in history] == [
        ("uuid:e1", "uuid:e2"), ("uuid:e2", "uuid:e3"), ("uuid:e3", None)
    ]  # fmt: skip
    queue = client.get("/moderation/submissions?state=all", headers=_auth(tokens["moderator"])).json()
    assert [q["instance_id"] for q in queue] == ["uuid:e3"]
    everything = client.get(
        "/moderation/submissions?state=all&include_superseded=true", headers=_auth(tokens["moderator"])
    ).json()
    assert [q["instance_id"] for q in everything] == ["uuid:e1", "uuid:e2", "uuid:e3"]
    client.post("/moderation/submissions/uuid:e3", json={"state": "approved"}, headers=_auth(tokens["moderator"]))
    layer = approved_submissions(store, "damage_report")
    assert list(layer.index) == ["uuid:e3"] and int(layer.loc["uuid:e3", "severity"]) == 5


def test_bad_edits_get_clear_answers(client: TestClient, intake: Intake, tokens: dict[str, str]) -> None:
    assert post(client, instance("uuid:b1"), files={"1.png": b""}).status_code == 400  # empty photo: nothing stored
    assert post(client, instance("uuid:b1", photo="")).status_code == 201
    unknown = post(client, instance("uuid:b2", deprecated="uuid:nowhere"))
    assert unknown.status_code == 404 and "uuid:nowhere" in unknown.text and "not stored here" in unknown.text
    itself = post(client, instance("uuid:b3", deprecated="uuid:b3"))
    assert itself.status_code == 400 and "names itself" in itself.text
    demo = helpers_demo_edit(intake, deprecated="uuid:b1")
    other_form = post(client, demo)
    assert other_form.status_code == 409 and "same form" in other_form.text
    by_mapper = post(client, instance("uuid:b4", deprecated="uuid:b1", photo=""), token=tokens["mapper"])
    assert by_mapper.status_code == 403 and "another submitter" in by_mapper.text
    clash = post(client, instance("uuid:b1", deprecated="uuid:b1", photo=""))
    assert clash.status_code == 400  # names itself: refused before anything else
    assert len(intake.store.submissions(include_superseded=True)) == 1
    assert intake.store.submission("uuid:b1").superseded_by is None


def helpers_demo_edit(intake: Intake, *, deprecated: str) -> bytes:
    """A building_survey instance (another form) that claims to edit ``deprecated``."""
    xml = (
        '<?xml version="1.0"?><building_survey id="building_survey" version="2026110101">'
        "<building>-6.8101 39.2400 10 5</building><wall_material>timber</wall_material><storeys>1</storeys>"
        "<occupants>4</occupants><flood_experience>no</flood_experience>"
        f"<meta><instanceID>uuid:x-form</instanceID><deprecatedID>{deprecated}</deprecatedID></meta>"
        "</building_survey>"
    )
    assert intake.store.form("building_survey").version == "2026110101"
    return xml.encode()


def test_anonymous_edits_only_before_approval(client: TestClient, intake: Intake, tokens: dict[str, str]) -> None:
    assert post(client, instance("uuid:a1", photo="")).status_code == 201
    assert post(client, instance("uuid:a2", deprecated="uuid:a1", photo="", severity=3)).status_code == 201
    intake.store.moderate("uuid:a2", state="approved", who="t", reason=None, edits=None, expected_version=None)
    refused = post(client, instance("uuid:a3", deprecated="uuid:a2", photo="", severity=1))
    assert refused.status_code == 403 and "ask a moderator" in refused.text
    assert intake.store.submission("uuid:a2").is_current


def test_json_api_deprecated_id(client: TestClient, intake: Intake) -> None:
    url = "/forms/damage_report/submissions"
    body = {
        "instance_id": "uuid:j1",
        "answers": {"category": "flooding", "severity": 1},
        "location": {"type": "Point", "coordinates": [39.2401, -6.8152]},
    }
    assert client.post(url, json=body).status_code == 201
    edited = body | {"instance_id": "uuid:j2", "deprecated_id": "uuid:j1", "answers": {"category": "landslide"}}
    r = client.post(url, json=edited)
    assert r.status_code == 201 and r.json()["created"] is True
    assert client.post(url, json=edited).json()["created"] is False  # identical retry: stored once
    assert intake.store.submission("uuid:j1").superseded_by == "uuid:j2"
    assert intake.store.submission("uuid:j2").answers == {"category": "landslide", "location": "-6.8152 39.2401"}
    bad = client.post(url, json=body | {"instance_id": "uuid:j3", "deprecated_id": "../x"})
    assert bad.status_code == 400 and "malformed" in bad.json()["description"]
    gone = client.post(url, json=body | {"instance_id": "uuid:j4", "deprecated_id": "uuid:j1"})
    assert gone.status_code == 409


def _new(instance_id: str, *, deprecated: str | None = None, severity: str = "1") -> NewSubmission:
    return NewSubmission(
        instance_id=instance_id, form_id="damage_report", version="2", answers={"severity": severity},
        geometry_wkt="POINT (39.24 -6.81)", public_geometry_wkt="POINT (39.24 -6.81)", lon=39.24, lat=-6.81,
        content_hash=f"h-{instance_id}-{severity}", submitter="anonymous", source="json", deprecated_id=deprecated,
    )  # fmt: skip


def _race(work: list[object]) -> tuple[list[object], list[BaseException]]:
    done: list[object] = []
    failed: list[BaseException] = []
    gate = threading.Barrier(len(work))

    def run(call: object) -> None:
        gate.wait()
        try:
            done.append(call())  # type: ignore[operator]
        except Exception as exc:
            failed.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return done, failed


def test_concurrent_edits_one_wins_and_retries_store_once(intake: Intake) -> None:
    store = intake.store
    store.put_submission(_new("uuid:c0"), [])
    rivals = [lambda i=i: store.put_submission(_new(f"uuid:c{i}", deprecated="uuid:c0"), []) for i in range(1, 9)]
    done, failed = _race(rivals)
    assert len(done) == 1 and len(failed) == 7
    assert all(isinstance(e, ConflictError) and "out of date" in str(e) for e in failed)
    winner = done[0].record.instance_id  # type: ignore[attr-defined]
    assert store.submission("uuid:c0").superseded_by == winner
    same = [lambda: store.put_submission(_new("uuid:r1", deprecated=winner), []) for _ in range(8)]
    done, failed = _race(same)
    assert failed == [] and sum(r.created for r in done) == 1  # type: ignore[attr-defined]
    assert [v.instance_id for v in store.versions("uuid:c0")] == ["uuid:c0", winner, "uuid:r1"]
    assert len(store.submissions(include_superseded=True)) == 3


def test_store_rules_and_change_event(intake: Intake) -> None:
    store = intake.store
    first = store.put_submission(_new("uuid:s1"), [])
    assert first.superseded is None and first.record.root_id == "uuid:s1"
    pending_edit = store.put_submission(_new("uuid:s2", deprecated="uuid:s1"), [])
    assert pending_edit.superseded is not None and superseded_event(pending_edit) is None  # was not in the layer
    store.moderate("uuid:s2", state="approved", who="t", reason=None, edits=None, expected_version=None)
    tokened = replace(_new("uuid:s3", deprecated="uuid:s2"), submitter="tok1")
    with pytest.raises(ForbiddenError, match="another submitter"):
        store.put_submission(tokened, [])
    store.put_submission(replace(_new("uuid:t1"), submitter="tok1"), [])
    store.moderate("uuid:t1", state="approved", who="t", reason=None, edits=None, expected_version=None)
    result = store.put_submission(replace(_new("uuid:t2", deprecated="uuid:t1", severity="3"), submitter="tok1"), [])
    event = superseded_event(result)
    assert event is not None and event.instance_ids == ("uuid:t1", "uuid:t2") and event.form_id == "damage_report"
    assert event.bbox is not None and event.bbox.west == pytest.approx(39.24) and event.state == "superseded"
    with pytest.raises(ConflictError, match="different content"):
        store.put_submission(replace(_new("uuid:t2", deprecated="uuid:t1", severity="4"), submitter="tok1"), [])
    with pytest.raises(ConflictError, match="different content"):  # same content, not stored as an edit
        store.put_submission(replace(_new("uuid:t2", severity="3"), submitter="tok1"), [])
    with pytest.raises(NotFoundError, match="not stored here"):
        store.put_submission(_new("uuid:u1", deprecated="uuid:none"), [])
    with pytest.raises(InputError, match="names itself"):
        store.put_submission(_new("uuid:u2", deprecated="uuid:u2"), [])
    with pytest.raises(NotFoundError):
        store.versions("uuid:none")


def _drop_edit_columns(intake: Intake) -> None:
    """Make the store look like one created before edits existed (no columns, no indexes)."""
    store = intake.store
    if isinstance(store, PostgresIntakeStore):
        con = store._con()
        table = f'"{store.schema}".intake_submissions'
        for col in ("deprecated_id", "superseded_by", "root_id"):
            con.execute(f"ALTER TABLE {table} DROP COLUMN {col}")  # drops its indexes too
        return
    con = store._con()  # type: ignore[attr-defined]
    con.execute("DROP INDEX submissions_deprecated")
    con.execute("DROP INDEX submissions_root")
    for col in ("deprecated_id", "superseded_by", "root_id"):
        con.execute(f"ALTER TABLE submissions DROP COLUMN {col}")


def test_older_store_gets_the_edit_columns(intake: Intake, project: Path) -> None:
    intake.store.put_submission(_new("uuid:o1"), [])
    _drop_edit_columns(intake)
    intake.store.close()
    reopened = open_intake(project)
    try:
        old = reopened.store.submission("uuid:o1")
        assert (old.root_id, old.deprecated_id, old.superseded_by) == ("uuid:o1", None, None)
        edit = reopened.store.put_submission(_new("uuid:o2", deprecated="uuid:o1"), []).record
        assert edit.root_id == "uuid:o1" and reopened.store.submission("uuid:o1").superseded_by == "uuid:o2"
        assert [r.instance_id for r in reopened.store.submissions()] == ["uuid:o2"]
        assert reopened.store.integrity_check() == "ok"
    finally:
        reopened.store.close()
