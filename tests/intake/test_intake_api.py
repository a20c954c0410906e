"""The JSON intake API: forms, schema.json, submissions (201/409/413/415/422/404), privacy of public routes."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from civicmap.intake import Intake

URL = "/forms/damage_report/submissions"


def _payload(instance_id: str = "uuid:a1", **answers: object) -> dict[str, object]:
    base = {
        "category": "flooding",
        "severity": 3,
        "description": "water to the knees",
        "reporter_contact": "+255 700 1",
    }
    return {
        "instance_id": instance_id,
        "answers": base | answers,
        "location": {"type": "Point", "coordinates": [39.2401, -6.8152]},
    }


def test_forms_and_schema_mark_private_fields(client: TestClient) -> None:
    forms = {f["form_id"]: f for f in client.get("/forms").json()}
    assert set(forms) == {"building_survey", "damage_report"}
    assert forms["damage_report"]["version"] == "2" and forms["damage_report"]["open"] is True
    assert client.get("/forms/damage_report").json()["links"]["schema"].endswith("/forms/damage_report/schema.json")
    doc = client.get("/forms/damage_report/schema.json").json()
    fields = {f["name"]: f for f in doc["fields"]}
    assert doc["geometry_field"] == "location"
    assert fields["reporter_contact"]["private"] is True
    assert fields["reporter_contact"]["visibility"] == "seen only by moderators"
    assert fields["severity"]["constraint"]["min"] == 0 and fields["severity"]["constraint"]["max"] == 5
    assert [c["name"] for c in fields["category"]["choices"]] == ["flooding", "blocked_drain", "landslide"]
    assert fields["category"]["required"] is True
    demo = client.get("/forms/building_survey/schema.json").json()
    assert {f["name"] for f in demo["fields"] if f["private"]} == {"respondent_name", "respondent_phone", "notes"}
    assert client.get("/forms/nope").status_code == 404


def test_submit_json_then_retry_then_conflict(client: TestClient, intake: Intake) -> None:
    r = client.post(URL, json=_payload())
    assert r.status_code == 201
    body = r.json()
    assert body["state"] == "pending" and body["created"] is True and len(body["receipt"]) == 8
    again = client.post(URL, json=_payload())
    assert again.status_code == 201 and again.json()["created"] is False
    assert again.json()["receipt"] == body["receipt"]
    clash = client.post(URL, json=_payload(severity=5))
    assert clash.status_code == 409
    assert "already exists with this ID" in clash.json()["description"]
    stored = intake.store.submission("uuid:a1")
    assert stored.geometry_wkt == "POINT (39.2401 -6.8152)"  # lon first
    assert stored.public_geometry_wkt != stored.geometry_wkt  # the form coarsens to 100 m
    assert stored.answers["severity"] == 3 and stored.submitter == "anonymous"


def test_every_problem_is_listed(client: TestClient, intake: Intake) -> None:
    bad = _payload("uuid:bad", category="tsunami", severity=9, colour="red")
    bad["location"] = {"type": "Point", "coordinates": [-6.8152, 39.2401]}  # [lat, lon]: swapped
    r = client.post(URL, json=bad)
    assert r.status_code == 422
    problems = {p["field"]: p["problem"] for p in r.json()["problems"]}
    assert set(problems) == {"location", "category", "severity", "colour"}
    assert "look swapped" in problems["location"]
    assert "above the maximum <= 5" in problems["severity"]
    assert "not a question of form" in problems["colour"]
    out = _payload("uuid:bad2")
    out["location"] = "91 181 0 0"
    r = client.post(URL, json=out)
    assert r.status_code == 422 and "out of range" in r.json()["problems"][0]["problem"]
    assert intake.store.submissions() == []


def test_idempotency_key_header_and_malformed(client: TestClient) -> None:
    payload = _payload()
    del payload["instance_id"]
    r = client.post(URL, json=payload, headers={"Idempotency-Key": "uuid:from-header"})
    assert r.status_code == 201 and r.json()["instance_id"] == "uuid:from-header"
    assert client.post(URL, json=payload).status_code == 400  # no id at all
    assert client.post(URL, content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400
    assert client.post("/forms/nope/submissions", json=_payload("uuid:x")).status_code == 404


def test_multipart_photo_exif_stripped(client: TestClient, intake: Intake, helpers: object) -> None:
    jpeg = helpers.jpeg_with_exif()  # type: ignore[attr-defined]
    sub = _payload("uuid:photo", photo="IMG_1.jpg")
    files = {"submission": (None, json.dumps(sub), "application/json"), "IMG_1.jpg": ("IMG_1.jpg", jpeg, "image/jpeg")}
    r = client.post(URL, files=files)
    assert r.status_code == 201, r.text
    [att] = intake.store.attachments("uuid:photo")
    stored = (intake.store.attachments_dir / att.path).read_bytes()
    assert att.media_type == "image/jpeg" and b"GPSLatitude" not in stored and stored.endswith(b"imagedata\xff\xd9")
    assert r.json()["attachments"] == [{"name": "IMG_1.jpg", "sha256": att.sha256, "size": len(stored)}]


def test_bad_attachments_store_nothing(client: TestClient, intake: Intake, helpers: object) -> None:
    def post(name: str, data: bytes, iid: str) -> int:
        sub = _payload(iid, photo=name)
        files = {"submission": (None, json.dumps(sub), "application/json"), name: (name, data, "image/jpeg")}
        return client.post(URL, files=files).status_code

    assert post("../../x.jpg", helpers.jpeg_with_exif(), "uuid:t1") == 400  # type: ignore[attr-defined]
    assert post("spoof.jpg", b"<html><script>alert(1)</script></html>", "uuid:t2") == 415
    intake.limits = type(intake.limits)(max_attachment_bytes=100)
    client.app.state.civicmap_intake.limits = intake.limits  # type: ignore[attr-defined]
    assert post("big.jpg", b"\xff\xd8\xff" + bytes(500), "uuid:t3") == 413
    assert intake.store.submissions() == []
    assert not any(p.is_file() for p in intake.store.attachments_dir.rglob("*"))


def test_oversized_request_is_413(client: TestClient) -> None:
    client.app.state.civicmap_intake.limits = type(client.app.state.civicmap_intake.limits)(max_request_bytes=200)  # type: ignore[attr-defined]
    r = client.post(URL, json=_payload() | {"version": "2" * 300})
    assert r.status_code == 413


def test_closed_form_is_409(client: TestClient, intake: Intake) -> None:
    intake.store.set_form_open("damage_report", open_=False, who="test")
    r = client.post(URL, json=_payload())
    assert r.status_code == 409 and "not accepting submissions" in r.json()["description"]
    assert "damage_report" not in client.get("/formList").text


def test_script_text_is_stored_as_text(client: TestClient, intake: Intake) -> None:
    script = "<img src=x onerror=alert(1)> مرحبا 🌊"
    assert client.post(URL, json=_payload("uuid:s", description=script)).status_code == 201
    assert intake.store.submission("uuid:s").answers["description"] == script


def test_private_answers_never_on_public_routes(client: TestClient) -> None:
    secret = "+255 799 SECRET"
    assert client.post(URL, json=_payload("uuid:p", reporter_contact=secret)).status_code == 201
    public = [
        "/forms", "/forms/damage_report", "/forms/damage_report/schema.json", "/formList",
        "/forms/damage_report/form.xml", "/layers", "/collections", "/health",
        "/moderation/submissions", "/moderation/export.csv?form_id=damage_report&state=all",
    ]  # fmt: skip
    for path in public:
        r = client.get(path)
        assert secret not in r.text, path
        assert "uuid:p" not in r.text, path
    receipt = client.post(URL, json=_payload("uuid:p", reporter_contact=secret)).text
    assert secret not in receipt
