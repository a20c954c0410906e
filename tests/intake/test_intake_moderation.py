"""Moderation and roles: tokens, edits kept apart, audit, optimistic concurrency, approval events, exports, CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import ClassVar

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from civicmap.cli import app as cli_app
from civicmap.intake import Intake, approved_submissions
from civicmap.intake.tokens import issue_token
from civicmap.tiles.cache import TileCache, TileKey
from civicmap.tiles.grid import tiles_for_bbox

URL = "/forms/damage_report/submissions"
SECRET = "+255 700 PRIVATE"


def _submit(client: TestClient, iid: str, lon: float = 39.2401, **answers: object) -> None:
    base = {
        "category": "flooding",
        "severity": 2,
        "description": '=HYPERLINK("http://evil")',
        "reporter_contact": SECRET,
    }
    body = {"instance_id": iid, "answers": base | answers, "location": {"type": "Point", "coordinates": [lon, -6.8152]}}
    assert client.post(URL, json=body).status_code == 201


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_tokens_401_403(client: TestClient, intake: Intake, tokens: dict[str, str]) -> None:
    _submit(client, "uuid:m1")
    q = "/moderation/submissions"
    assert client.get(q).status_code == 401
    assert client.get(q).headers["www-authenticate"].startswith("Bearer")
    assert client.get(q, headers=_auth("cm_123456789abc_" + "x" * 43)).status_code == 401
    assert client.get(q, headers=_auth(tokens["mapper"])).status_code == 403
    assert client.get(q, headers=_auth(tokens["analyst"])).status_code == 200
    post = {"state": "approved"}
    assert client.post(f"{q}/uuid:m1", json=post, headers=_auth(tokens["analyst"])).status_code == 403
    revoked = issue_token(intake.store, role="moderator", project=intake.project)
    intake.store.revoke_token(revoked.record.id, who="test")
    assert "revoked" in client.get(q, headers=_auth(revoked.token)).json()["description"]
    expired = issue_token(intake.store, role="moderator", project=intake.project, days=1e-9)
    assert client.get(q, headers=_auth(expired.token)).status_code == 401
    scoped = issue_token(intake.store, role="moderator", project=intake.project, form_id="building_survey")
    assert client.post(f"{q}/uuid:m1", json=post, headers=_auth(scoped.token)).status_code == 403
    assert intake.store.submission("uuid:m1").state == "pending"
    stored = [h for _, h in (intake.store.token(t.id) for t in intake.store.tokens())]
    assert all(len(h) == 64 for h in stored) and not any(tok.split("_", 2)[2] in stored for tok in tokens.values())


def test_moderate_with_edits_audit_and_conflict(client: TestClient, intake: Intake, tokens: dict[str, str]) -> None:
    _submit(client, "uuid:m2")
    queue = client.get("/moderation/submissions?state=pending", headers=_auth(tokens["moderator"])).json()
    assert [s["instance_id"] for s in queue] == ["uuid:m2"]
    assert queue[0]["answers"]["reporter_contact"] == SECRET  # moderators see private answers
    url = "/moderation/submissions/uuid:m2"
    bad = client.post(url, json={"state": "approved", "edits": {"severity": 9}}, headers=_auth(tokens["moderator"]))
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "severity"
    ok = client.post(
        url, json={"state": "approved", "reason": "checked", "edits": {"severity": 4}, "expected_version": 1},
        headers=_auth(tokens["moderator"]),
    )  # fmt: skip
    assert ok.status_code == 200
    doc = ok.json()
    assert doc["state"] == "approved" and doc["row_version"] == 2
    assert doc["answers"]["severity"] == 2 and doc["edited_answers"] == {"severity": 4}
    stale = client.post(url, json={"state": "rejected", "expected_version": 1}, headers=_auth(tokens["admin"]))
    assert stale.status_code == 409 and "version 2, not 1" in stale.json()["description"]
    [entry] = [a for a in intake.store.audit("uuid:m2") if a.action.startswith("moderate")]
    assert entry.reason == "checked" and entry.before["state"] == "pending" and entry.after["row_version"] == 2
    layer = approved_submissions(intake.store, "damage_report")
    assert layer.crs == "EPSG:4326" and list(layer.index) == ["uuid:m2"]
    assert int(layer.loc["uuid:m2", "severity"]) == 4 and "reporter_contact" not in layer
    exact = approved_submissions(intake.store, "damage_report", include_private=True)
    assert exact.loc["uuid:m2", "reporter_contact"] == SECRET
    assert exact.geometry.iloc[0].x == pytest.approx(39.2401)
    assert layer.geometry.iloc[0].distance(exact.geometry.iloc[0]) < 0.001  # coarsened to a 100 m cell
    assert layer.geometry.iloc[0].distance(exact.geometry.iloc[0]) > 0


def test_approval_event_invalidates_tiles(client: TestClient, intake: Intake, tokens: dict[str, str]) -> None:
    _submit(client, "uuid:m3")
    events = []
    served = client.app.state.civicmap_intake  # type: ignore[attr-defined]
    served.on_change(events.append)
    cache: TileCache = client.app.state.civicmap.cache  # type: ignore[attr-defined]
    client.app.state.civicmap.catalog._infos = {"damage": _Info()}  # type: ignore[attr-defined]
    client.app.state.civicmap.catalog._read_at = 1e18  # type: ignore[attr-defined]
    [tile] = tiles_for_bbox((39.24009, -6.81521, 39.24011, -6.81519), 18)  # the tile holding the point
    near = TileKey("damage", 1, tile.z, tile.x, tile.y, "mvt")
    far = TileKey("damage", 1, 18, 0, 0, "mvt")
    cache.get_or_render(near, lambda: b"x")
    cache.get_or_render(far, lambda: b"y")
    r = client.post("/moderation/submissions/uuid:m3", json={"state": "approved"}, headers=_auth(tokens["moderator"]))
    assert r.status_code == 200
    [event] = events
    assert event.form_id == "damage_report" and event.instance_ids == ("uuid:m3",)
    assert event.bbox is not None and event.bbox.west == pytest.approx(39.2401)
    assert near not in cache and far in cache


class _Info:
    name = "damage"
    meta: ClassVar[dict[str, list[str]]] = {"source_forms": ["damage_report"]}


def test_possible_duplicates_scored(client: TestClient, intake: Intake) -> None:
    _submit(client, "uuid:d1")
    _submit(client, "uuid:d2", lon=39.2401 + 10 / 111_320)  # ~10 m east, same category
    _submit(client, "uuid:d3", lon=39.2401 + 10 / 111_320, category="landslide")
    _submit(client, "uuid:d4", lon=39.2401 + 100 / 111_320)  # beyond 25 m
    d2 = intake.store.submission("uuid:d2")
    assert d2.duplicate_of == "uuid:d1"
    assert d2.duplicate_score == pytest.approx(1 - 10 / 25, abs=0.02)  # time factor ~1
    assert intake.store.submission("uuid:d3").duplicate_of is None
    assert intake.store.submission("uuid:d4").duplicate_of is None
    assert len(intake.store.submissions()) == 4  # never merged


def test_exports_csv_injection_safe(client: TestClient, intake: Intake, tokens: dict[str, str]) -> None:
    _submit(client, "uuid:e1")
    r = client.get("/moderation/export.csv?form_id=damage_report&state=all", headers=_auth(tokens["analyst"]))
    assert r.status_code == 200
    [row] = list(csv.DictReader(io.StringIO(r.text)))
    assert row["description"] == '\'=HYPERLINK("http://evil")'
    assert row["instance_id"] == "uuid:e1" and row["geometry_wkt"].startswith("POINT (39.2401")
    gj = client.get("/moderation/export.geojson?form_id=damage_report&state=all", headers=_auth(tokens["analyst"]))
    doc = json.loads(gj.content)
    assert "crs" not in doc and doc["features"][0]["geometry"]["coordinates"][0] == pytest.approx(39.2401)
    pk = client.get("/moderation/export.gpkg?form_id=damage_report&state=all", headers=_auth(tokens["moderator"]))
    assert pk.content[:16] == b"SQLite format 3\x00"
    assert client.get("/moderation/export.gpkg?form_id=damage_report").status_code == 401
    assert (
        client.get("/moderation/export.xlsx?form_id=damage_report", headers=_auth(tokens["admin"])).status_code == 400
    )


def test_cli_forms_and_tokens(project: Path, tmp_path: Path, helpers: object) -> None:
    runner = CliRunner()
    form = helpers.write_photo_form(tmp_path / "f.xlsx", form_id="cli_form", version="7")  # type: ignore[attr-defined]
    r = runner.invoke(cli_app, ["forms", "add", str(project), str(form), "--coarsen-m", "50"])
    assert r.exit_code == 0 and "published cli_form version 7" in r.output
    r = runner.invoke(
        cli_app, ["tokens", "issue", str(project), "--role", "moderator", "--form", "cli_form", "--days", "2"]
    )
    assert r.exit_code == 0
    token = r.output.strip().splitlines()[-1]
    token_id = token.split("_")[1]
    assert token.startswith("cm_") and token_id in r.output.splitlines()[0]
    stored = helpers.stored_text(project)  # type: ignore[attr-defined]
    assert token_id in stored and token.split("_", 2)[2] not in stored
    r = runner.invoke(cli_app, ["tokens", "revoke", str(project), token_id])
    assert r.exit_code == 0 and "revoked" in r.output
    assert runner.invoke(cli_app, ["tokens", "issue", str(project), "--role", "king"]).exit_code == 1
    out = tmp_path / "x.geojson"
    r = runner.invoke(cli_app, ["forms", "export", str(project), "cli_form", "--out", str(out), "--state", "all"])
    assert r.exit_code == 0 and gpd.read_file(out).empty
