"""OpenRosa for ODK Collect: form list, XForm, HEAD 204, multipart submissions, unsafe XML, split uploads."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from civicmap.intake import Intake
from civicmap.intake.submissions import parse_openrosa_xml

XF = "{http://www.w3.org/2002/xforms}"
OR_NS = "{http://openrosa.org/http/response}"


def fill_instance(xform_xml: str, values: dict[str, str]) -> bytes:
    """An instance as ODK Collect sends it: the XForm's primary instance with leaves filled (``a/b`` paths)."""
    root = ET.fromstring(xform_xml)
    template = copy.deepcopy(next(iter(root.find(f".//{XF}model/{XF}instance"))))
    for path, value in values.items():
        node = template.find("/".join(f"{XF}{p}" for p in path.split("/")))
        assert node is not None, path
        node.text = value
    for elem in template.iter():  # ODK Collect writes the instance without the XForms namespace
        elem.tag = elem.tag.replace(XF, "")
    return ET.tostring(template, encoding="utf-8", xml_declaration=True)


def _post(
    client: TestClient, xml: bytes, extra: dict[str, tuple[str, bytes, str]] | None = None, url: str = "/submission"
):
    files = {"xml_submission_file": ("submission.xml", xml, "text/xml")} | (extra or {})
    return client.post(url, files=files)


def _photo_instance(intake: Intake, iid: str, photo: str = "1.png", **more: str) -> bytes:
    values = {"location": "-6.8152 39.2401 12.5 4.0", "category": "flooding", "photo": photo, "severity": "2"}
    values |= {"meta/instanceID": iid} | more
    return fill_instance(intake.store.form("damage_report").xform_xml, values)


def test_form_list_and_xform(client: TestClient, intake: Intake) -> None:
    r = client.get("/formList")
    assert r.status_code == 200 and r.headers["x-openrosa-version"] == "1.0"
    assert int(r.headers["x-openrosa-accept-content-length"]) == intake.limits.max_request_bytes
    doc = ET.fromstring(r.text)
    ns = "{http://openrosa.org/xforms/xformsList}"
    entries = {x.findtext(f"{ns}formID"): x for x in doc.findall(f"{ns}xform")}
    assert set(entries) == {"building_survey", "damage_report"}
    demo = entries["building_survey"]
    assert demo.findtext(f"{ns}version") == "2026110101"
    assert demo.findtext(f"{ns}hash").startswith("md5:") and len(demo.findtext(f"{ns}hash")) == 36
    xform = client.get("/forms/building_survey/form.xml")
    assert xform.status_code == 200 and xform.headers["x-openrosa-version"] == "1.0"
    assert demo.findtext(f"{ns}downloadUrl") == "http://testserver/forms/building_survey/form.xml"
    assert '<building_survey id="building_survey" version="2026110101">' in xform.text
    assert client.get("/forms/nope/form.xml").status_code == 404


def test_head_is_204_with_openrosa_headers(client: TestClient) -> None:
    r = client.head("/submission", follow_redirects=False)
    assert r.status_code == 204
    assert r.headers["x-openrosa-version"] == "1.0" and int(r.headers["x-openrosa-accept-content-length"]) > 0


def test_demo_instances_as_odk_collect_posts_them(client: TestClient, intake: Intake, helpers: object) -> None:
    files = sorted(helpers.demo_instances.glob("*.xml"))[:5]  # type: ignore[attr-defined]
    for f in files:
        r = _post(client, f.read_bytes())
        assert r.status_code == 201, r.text
        assert r.headers["x-openrosa-version"] == "1.0"
        assert ET.fromstring(r.text).tag == f"{OR_NS}OpenRosaResponse"
    stored = intake.store.submissions(form_id="building_survey")
    assert len(stored) == 5 and {s.source for s in stored} == {"openrosa"}
    first = intake.store.submission("uuid:00747685-b100-48a4-9a41-31479ae551cb")
    assert first.geometry_wkt == "POINT (39.2452845 -6.814718)"  # "-6.8147180 39.2452845" is lat lon
    assert first.answers["respondent_name"] == "Saidi Mwakyusa"
    again = _post(client, files[0].read_bytes())
    assert again.status_code == 201 and "already received" in again.text
    changed = files[0].read_bytes().replace(b"<storeys>1</storeys>", b"<storeys>2</storeys>")
    clash = _post(client, changed)
    assert clash.status_code == 409 and "different content" in clash.text
    assert len(intake.store.submissions(form_id="building_survey")) == 5


def test_filled_from_demo_xform(client: TestClient, intake: Intake) -> None:
    xform = intake.store.form("building_survey").xform_xml
    values = {"building": "-6.8101 39.2400 10 5", "wall_material": "timber", "storeys": "1", "occupants": "4"}
    values |= {"flood_experience": "no", "meta/instanceID": "uuid:filled-1"}
    assert _post(client, fill_instance(xform, values)).status_code == 201
    swapped = fill_instance(xform, values | {"building": "39.2400 -6.8101 10 5", "meta/instanceID": "uuid:sw"})
    r = _post(client, swapped)
    assert r.status_code == 422 and "look swapped" in r.text


def test_split_submission_merges_attachments(client: TestClient, intake: Intake, helpers: object) -> None:
    xml = _photo_instance(intake, "uuid:split", photo="1.png", description="x")
    xml = xml.replace(b"<description>x</description>", b"<description>2.png</description>")
    p1, p2 = helpers.png(1), helpers.png(2)  # type: ignore[attr-defined]
    second = {"2.png": ("2.png", p2, "image/png")}
    assert _post(client, xml, second).status_code == 201  # out of order: part 2 first
    assert _post(client, xml, {"1.png": ("1.png", p1, "image/png")}).status_code == 201
    assert _post(client, xml, second).status_code == 201  # duplicated
    atts = {a.name: a for a in intake.store.attachments("uuid:split")}
    assert set(atts) == {"1.png", "2.png"}
    assert (intake.store.attachments_dir / atts["1.png"].path).read_bytes() == p1
    assert len(intake.store.submissions(form_id="damage_report")) == 1
    actions = [a.action for a in intake.store.audit("uuid:split")]
    assert actions == ["submit", "add_attachments"]


@pytest.mark.parametrize(
    ("xml", "status", "text"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d id="damage_report">&x;</d>',
            400,
            "unsafe XML",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b'<l id="damage_report">&b;</l>',
            400,
            "unsafe XML",
        ),
        (b'<!DOCTYPE d SYSTEM "http://169.254.169.254/x.dtd"><d id="damage_report"/>', 400, "unsafe XML"),
        (b"<d id='damage_report'><category>flooding</category>", 400, "not well-formed"),
        (b"<d id='damage_report'><category>flooding</category></d>", 400, "no meta/instanceID"),
        (b"<d id='unknown_form'><meta><instanceID>uuid:u</instanceID></meta></d>", 404, "not published"),
        (b"<d><meta><instanceID>uuid:u</instanceID></meta></d>", 400, "no id attribute"),
    ],
)
def test_bad_xml(client: TestClient, intake: Intake, xml: bytes, status: int, text: str) -> None:
    r = _post(client, xml)
    assert r.status_code == status, r.text
    assert text in r.text and r.headers["x-openrosa-version"] == "1.0"
    assert intake.store.submissions() == []


def test_multipart_shape_errors(client: TestClient, intake: Intake) -> None:
    xml = _photo_instance(intake, "uuid:m")
    none = client.post("/submission", files={"other": ("a.xml", xml, "text/xml")})
    assert none.status_code == 400 and "exactly one part named xml_submission_file" in none.text
    two = client.post(
        "/submission",
        files=[
            ("xml_submission_file", ("a.xml", xml, "text/xml")),
            ("xml_submission_file", ("b.xml", xml, "text/xml")),
        ],
    )
    assert two.status_code == 400
    octet = client.post("/submission", files={"xml_submission_file": ("a.xml", xml, "application/octet-stream")})
    assert octet.status_code == 201  # the part name decides, not its content type
    not_multipart = client.post("/submission", content=xml, headers={"Content-Type": "text/xml"})
    assert not_multipart.status_code == 400


def test_chunked_body_accepted(client: TestClient, intake: Intake, helpers: object) -> None:
    xml = _photo_instance(intake, "uuid:chunked")
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="xml_submission_file"; filename="s.xml"\r\n'
            "Content-Type: text/xml\r\n\r\n"
        ).encode()
        + xml
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="1.png"; filename="1.png"\r\n'.encode()
        + b"Content-Type: image/png\r\n\r\n"
        + helpers.png(7)
        + f"\r\n--{boundary}--\r\n".encode()
    )  # type: ignore[attr-defined]

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 100):
            yield body[i : i + 100]

    r = client.post(
        "/submission", content=chunks(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert r.status_code == 201, r.text
    assert [a.name for a in intake.store.attachments("uuid:chunked")] == ["1.png"]


def test_osmfieldwork_xform_instance(client: TestClient, realdata: Path) -> None:
    xform = (realdata / "survey" / "osmfieldwork_buildings_xform.xml").read_text()
    values = {"new_feature": "38.5301 -105.9986 2100 4", "survey_questions/buildings/category": "housing"}
    values |= {"meta/instanceID": "uuid:osmfw-1"}
    xml = fill_instance(xform, values)
    parsed = parse_openrosa_xml(xml)
    assert parsed.form_id == "test_form" and parsed.version == "v1" and parsed.instance_id == "uuid:osmfw-1"
    assert parsed.answers["survey_questions/buildings/category"] == "housing"
    assert parsed.answers["new_feature"] == "38.5301 -105.9986 2100 4"
    r = _post(client, xml)  # its form is not published here
    assert r.status_code == 404 and "test_form" in r.text


def test_key_prefix_and_token_roles(client: TestClient, intake: Intake, tokens: dict[str, str]) -> None:
    from civicmap.intake import FormSettings, publish_form

    form_path = Path(intake.store.attachments_dir).parent / "closed_anon.xlsx"
    form = publish_form(intake.store, _write(form_path, "members_only"), settings=FormSettings(anonymous=False))
    xml = fill_instance(
        form.xform_xml, {"location": "-6.8152 39.2401 0 0", "category": "flooding", "meta/instanceID": "uuid:k"}
    )
    assert _post(client, xml).status_code == 401
    assert _post(client, xml, url="/key/cm_000000000000_notarealtokennotarealtoken/submission").status_code == 401
    ok = _post(client, xml, url=f"/key/{tokens['mapper']}/submission")
    assert ok.status_code == 201
    assert intake.store.submission("uuid:k").submitter == tokens["mapper"].split("_")[1]
    listed = client.get(f"/key/{tokens['mapper']}/formList").text
    assert f"/key/{tokens['mapper']}/forms/members_only/form.xml" in listed


def _write(path: Path, form_id: str) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "survey"
    for row in [("type", "name", "label"), ("geopoint", "location", "Where"), ("select_one c", "category", "What")]:
        ws.append(row)
    ch = wb.create_sheet("choices")
    for row in [("list_name", "name", "label"), ("c", "flooding", "Flooding")]:
        ch.append(row)
    st = wb.create_sheet("settings")
    st.append(("form_id", "version"))
    st.append((form_id, "1"))
    wb.save(path)
    return path
