"""The web pages in headless Chromium: the risk map renders the demo's layers, legend and impact
summary; the survey form renders the demo form, queues a submission offline and sends it when
back online.

Needs ``chromium`` (``eval "$(scripts/browser)"``), Node and ``npm ci`` in ``web/`` (for
playwright-core and maplibre-gl). Run: ``.venv/bin/pytest -m browser tests/web``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from email.parser import BytesParser
from email.policy import default as email_policy
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from civicmap.cli import DEMO_PROJECT
from civicmap.serve import ServiceSettings, create_app
from civicmap.sources.survey import read_form

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("page_probe.mjs")
FORM_ID = "building_survey"
UUID4 = re.compile(r"^uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
SILENT = {"start", "end", "today", "calculate", "deviceid", "geopoint"}
# 1x1 PNG
PHOTO = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cf000001010100189dd8b50000000049454e44ae426082"
    )
).decode()


def _need(what: str, ok: bool, fix: str) -> None:
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing on CI: {fix}")
    pytest.skip(f"{what} not available: {fix}")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = os.environ.get("CIVICMAP_CHROMIUM") or shutil.which("chromium") or ""
    _need("chromium", bool(path) and Path(path).exists(), 'eval "$(scripts/browser)"')
    _need("node", shutil.which("node") is not None, "install Node.js 20")
    _need("web/node_modules", (REPO / "web" / "node_modules" / "playwright-core").is_dir(), "scripts/setup (npm ci)")
    return path


def fixture_schema() -> dict[str, Any]:
    """The demo form in the intake API's schema contract (used when the intake API is absent)."""
    form = read_form(DEMO_PROJECT / "forms" / "building_survey.xlsx")
    fields = []
    for f in form.fields:
        choices = [{"name": c.name, "label": c.label} for c in form.choices.get(f.choice_list or "", ())]
        fields.append(
            {
                "name": f.name,
                "type": f.type,
                "label": f.label,
                "required": f.required,
                "choices": choices,
                "min": f.min_value,
                "max": f.max_value,
                "private": f.private,
                "relevant": f.relevant,
            }
        )
    return {
        "form_id": form.form_id,
        "version": form.version,
        "title": form.title,
        "fields": fields,
        "geo_field": "building",
    }


def _add_fixture_intake(app: FastAPI, received: list[dict[str, Any]]) -> None:
    """Schema and submissions routes that record what the form sends (only if the app has none)."""
    schema = fixture_schema()

    async def schema_route(form_id: str) -> JSONResponse:
        if form_id != FORM_ID:
            return JSONResponse({"code": "NotFound", "description": f"no form {form_id!r}"}, status_code=404)
        return JSONResponse(schema)

    async def submit_route(form_id: str, request: Request) -> JSONResponse:
        body, kind = await request.body(), request.headers["content-type"]
        if kind.startswith("multipart/"):
            message = BytesParser(policy=email_policy).parsebytes(f"Content-Type: {kind}\r\n\r\n".encode() + body)
            parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
            doc = json.loads(parts.pop("submission").get_content())
            doc["_photos"] = {name: len(p.get_payload(decode=True)) for name, p in parts.items()}
        else:
            doc = json.loads(body)
        received.append(doc)
        return JSONResponse({"instance_id": doc["instance_id"], "state": "pending", "receipt": "R-1"}, status_code=201)

    before = len(app.router.routes)
    app.add_api_route("/forms/{form_id}/schema.json", schema_route, methods=["GET"])
    app.add_api_route("/forms/{form_id}/submissions", submit_route, methods=["POST"], status_code=201)
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[:0] = added  # ahead of an intake API that does not serve the demo form


@pytest.fixture(scope="module")
def served(demo_build, chromium):
    """The demo (built once per session) served by uvicorn on a free 127.0.0.1 port."""
    ws = demo_build[0]
    app = create_app(ws, ServiceSettings())
    received: list[dict[str, Any]] = []
    fixture_intake = TestClient(app).get(f"/forms/{FORM_ID}/schema.json").status_code != 200
    if fixture_intake:
        _add_fixture_intake(app, received)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield {"base": f"http://127.0.0.1:{port}", "ws": ws, "received": received, "fixture_intake": fixture_intake}
    server.should_exit = True
    thread.join(10)


def probe(url: str, shot: Path, *selectors: str, steps: list[dict] | None = None, timeout_ms: int = 45_000) -> dict:
    env = {**os.environ, "CIVICMAP_PROBE_STEPS": json.dumps(steps or [])}
    done = subprocess.run(
        ["node", str(PROBE), url, str(shot), str(timeout_ms), *selectors],
        capture_output=True,
        text=True,
        timeout=timeout_ms / 1000 + 60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _csp_violations(result: dict) -> list[str]:
    return [m for m in result["console"] if any(k in m for k in ("Content Security Policy", "Refused to", "-src'"))]


def test_map_page_renders_layers_legend_and_summary(served, tmp_path):
    shot = tmp_path / "map.png"
    result = probe(f"{served['base']}/map/", shot, "#summary", "#layers", "#status", "#title")
    assert result["ready"] == "1", result
    assert result["pageErrors"] == [] and result["offsite"] == [] and not _csp_violations(result), result
    assert int(result["dataset"]["layers"]) == len(httpx.get(f"{served['base']}/layers").json()) == 23
    assert int(result["dataset"]["features"]) > 1000  # buildings, roads, zones, amenities on screen
    doc = json.loads(served["ws"].store.read_table("risk_summary")["document"].iloc[0])
    summary = result["texts"]["#summary"]
    assert (
        f"{doc['buildings']['totals']['affected']:,}\nBuildings affected\nof {doc['buildings']['totals']['total']:,}"
        in summary
    )
    assert f"{round(doc['buildings']['population']['affected']):,}\nPeople affected" in summary
    assert f"Evacuation: {doc['evacuation']['buildings_unserved']:,} buildings" in summary
    assert "Transit: 69% of buildings are within 500 m walk of a stop." in summary
    layers = result["texts"]["#layers"]
    for text in (
        "Flood hazard zones",
        "Buildings by risk class",
        "Very high",
        "Likely informal",
        "Shelter",
        "Orthophoto",
    ):
        assert text in layers
    assert result["texts"]["#title"] == "Risk map: Mkondo demo city"
    # a rendered map compresses badly; a blank canvas is a few KB
    assert (tmp_path / "map-map.png").stat().st_size > 100_000
    shutil.copy(shot, Path(os.environ.get("CIVICMAP_SCREENSHOT_DIR", tmp_path)) / "web_map.png")


def test_form_page_renders_the_demo_form(served, tmp_path):
    result = probe(f"{served['base']}/form/?form={FORM_ID}", tmp_path / "form.png", "#fields", "#title", "#location")
    assert result["ready"] == "1", result
    assert result["pageErrors"] == [] and result["offsite"] == [] and not _csp_violations(result), result
    fields = [f for f in fixture_schema()["fields"] if f["type"] not in SILENT]
    assert int(result["dataset"]["fields"]) == len(fields) == 16
    text = result["texts"]["#fields"]
    assert text.count("seen only by moderators") == 3
    assert "Main wall material" in text and "Mud wood" in text and "Respondent's name" in text
    assert "Water depth inside at the last flood (m)" not in text  # relevant only after "flooded: yes"
    assert "Building location" in result["texts"]["#location"]


def test_form_queues_offline_and_sends_once_online(served, tmp_path):
    served["received"].clear()
    steps = [
        {"offline": True},
        {"fill": "#lat", "value": "-6.8150"},
        {"fill": "#lon", "value": "39.2401"},
        {"check": "input[name=wall_material][value=timber]"},
        {"fill": "#f-storeys", "value": "2"},
        {"fill": "#f-occupants", "value": "7"},
        {"check": "input[name=flood_experience][value=yes]"},
        {"wait": "[data-field=flood_depth_last_m]", "state": "visible"},
        {"fill": "#f-flood_depth_last_m", "value": "0.4"},
        {"fill": "#f-respondent_name", "value": "<b>Asha</b>"},
        {"file": "#photo", "name": "door.png", "mimeType": "image/png", "base64": PHOTO},
        {"click": "#submit"},
        {"wait": "#queue li.waiting"},
        {"offline": False},
        {"wait": "#queue li.sent"},
    ]
    result = probe(f"{served['base']}/form/?form={FORM_ID}", tmp_path / "sent.png", "#queue", steps=steps)
    assert "stepError" not in result, result
    assert "receipt" in result["texts"]["#queue"]
    if not served["fixture_intake"]:  # the real intake API took it: one pending submission, stored durably
        store = served["ws"].intake.store
        mine = [r for r in store.submissions(form_id=FORM_ID) if r.answers.get("respondent_name") == "<b>Asha</b>"]
        assert len(mine) == 1 and mine[0].state == "pending" and UUID4.match(mine[0].instance_id)
        assert mine[0].answers["wall_material"] == "timber" and mine[0].answers["storeys"] == 2
        assert (mine[0].lon, mine[0].lat) == pytest.approx((39.2401, -6.815))
        assert mine[0].receipt in result["texts"]["#queue"]
        return
    (doc,) = served["received"]
    assert UUID4.match(doc["instance_id"])
    assert doc["location"] == {"type": "Point", "coordinates": [39.2401, -6.815]}
    assert doc["answers"] == {
        "wall_material": "timber",
        "storeys": 2,
        "occupants": 7,
        "flood_experience": "yes",
        "flood_depth_last_m": 0.4,
        "respondent_name": "<b>Asha</b>",
    }
    assert doc["_photos"] == {"photo": len(base64.b64decode(PHOTO))}


def test_form_without_intake_api_says_so(served, tmp_path):
    result = probe(f"{served['base']}/form/?form=no_such_form", tmp_path / "none.png", "#message")
    assert result["ready"] == "no-form"
    assert 'no survey form "no_such_form"' in result["texts"]["#message"]


def test_offline_notebook_map_draws_without_any_network(demo_build, chromium, tmp_path):
    """viz.offline(risk_map(...)) saved as HTML: Leaflet inlined, every layer drawn, nothing fetched offsite."""
    import http.server
    from functools import partial

    from civicmap.viz import offline, risk_map

    page = tmp_path / "risk.html"
    offline(risk_map(demo_build[0], tiles=None)).save(str(page))
    ready = "<script>addEventListener('load', () => { document.body.dataset.ready = "
    ready += (
        "document.querySelectorAll('.leaflet-overlay-pane canvas, .leaflet-interactive').length || 'none'; });</script>"
    )
    page.write_text(page.read_text(encoding="utf-8").replace("</html>", ready + "</html>"), encoding="utf-8")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{httpd.server_address[1]}/risk.html"
            result = probe(url, tmp_path / "offline.png", ".leaflet-control-layers", ".civicmap-legend")
        finally:
            httpd.shutdown()
    assert result["offsite"] == [] and result["pageErrors"] == [], result
    assert result["ready"] not in (None, "none"), result  # Leaflet ran and drew the layers
    assert "hazard zones" in result["texts"][".leaflet-control-layers"]
    assert (
        "very_high" in result["texts"][".civicmap-legend"] and "high (> 1.5 m)" in result["texts"][".civicmap-legend"]
    )
    assert (tmp_path / "offline.png").stat().st_size > 50_000  # drawn shapes; a blank page is a few kB
    shutil.copy(tmp_path / "offline.png", Path(os.environ.get("CIVICMAP_SCREENSHOT_DIR", tmp_path)) / "offline_map.png")


def _inside(bounds: list[float], lon: float, lat: float) -> bool:
    return bounds[0] <= lon <= bounds[2] and bounds[1] <= lat <= bounds[3]


def test_form_location_picked_on_the_map_is_submitted(served, tmp_path):
    """Pick on map: the service's own tiles, a click fills lat/lon (6 decimals), the submission carries it."""
    served["received"].clear()
    entries = httpx.get(f"{served['base']}/layers").json()
    first = next(e["bounds"] for e in entries if e.get("bounds"))
    steps = [
        {"click": "#pick"},
        {"wait": "#pick-map[data-state=ready]"},
        {"key": "Enter", "on": "#pick-map canvas"},  # keyboard: the point under the map's centre
        {"read": "#lat", "as": "centre_lat"},
        {"read": "#lon", "as": "centre_lon"},
        {"clickAt": "#pick-map canvas", "x": 150, "y": 120},
        {"wait": "#location[data-source=map]"},
        {"shot": "map"},
        {"read": "#lat"},
        {"read": "#lon"},
        {"key": "Escape", "on": "#pick-map canvas"},
        {"wait": "#pick-box", "state": "hidden"},
        {"check": "input[name=wall_material][value=fired_brick]"},
        {"fill": "#f-storeys", "value": "1"},
        {"fill": "#f-occupants", "value": "4"},
        {"check": "input[name=flood_experience][value=no]"},
        {"fill": "#f-respondent_name", "value": "picked on the map"},
        {"click": "#submit"},
        {"wait": "#queue li.sent"},
    ]
    url = f"{served['base']}/form/?form={FORM_ID}"
    result = probe(url, tmp_path / "pick.png", "#gps-status", "#queue", steps=steps)
    assert "stepError" not in result, result
    assert result["pageErrors"] == [] and result["offsite"] == [] and not _csp_violations(result), result
    lat_text, lon_text = result["values"]["#lat"], result["values"]["#lon"]
    assert re.fullmatch(r"-?\d+\.\d{6}", lat_text) and re.fullmatch(r"-?\d+\.\d{6}", lon_text), result["values"]
    lat, lon = float(lat_text), float(lon_text)
    assert _inside(first, lon, lat), (lon, lat, [(e["id"], e["bounds"]) for e in entries])
    centre = ((first[0] + first[2]) / 2, (first[1] + first[3]) / 2)
    assert (float(result["values"]["centre_lon"]), float(result["values"]["centre_lat"])) == pytest.approx(
        centre, abs=2e-5
    )
    # the click was left of and above the centre of the map, which was fitted to those bounds
    assert lon < centre[0] - 0.001 and lat > centre[1] + 0.001
    assert "receipt" in result["texts"]["#queue"]
    # the orthophoto, buildings and roads drawn under the marker; a blank map is a few kB
    assert (tmp_path / "pick-map.png").stat().st_size > 100_000
    shutil.copy(tmp_path / "pick-map.png", Path(os.environ.get("CIVICMAP_SCREENSHOT_DIR", tmp_path)) / "form_pick.png")
    if not served["fixture_intake"]:
        store = served["ws"].intake.store
        (mine,) = [
            r for r in store.submissions(form_id=FORM_ID) if r.answers.get("respondent_name") == "picked on the map"
        ]
        assert (mine.lon, mine.lat) == pytest.approx((lon, lat), abs=1e-9)
        # ODK text, latitude first; altitude and accuracy 0 as ODK Collect records a point placed on a map
        assert [float(v) for v in mine.answers["building"].split()] == [lat, lon, 0, 0]
        return
    (doc,) = served["received"]
    assert [float(v) for v in doc["location"].split()] == [lat, lon, 0, 0]
    assert doc["answers"]["respondent_name"] == "picked on the map"


def test_form_pick_on_map_without_the_map_keeps_typing(served, tmp_path):
    """Offline (no tiles, no MapLibre): a clear message, the picker closes, typed coordinates still work."""
    steps = [
        {"offline": True},
        {"click": "#pick"},
        {"wait": "#pick-box", "state": "hidden"},
        {"fill": "#lat", "value": "-6.8150"},
        {"read": "#lat"},
    ]
    url = f"{served['base']}/form/?form={FORM_ID}"
    result = probe(url, tmp_path / "nomap.png", "#gps-status", steps=steps)
    assert "stepError" not in result, result
    assert result["pageErrors"] == [], result
    assert "The map cannot be shown" in result["texts"]["#gps-status"]
    assert "type the coordinates" in result["texts"]["#gps-status"]
    assert result["values"]["#lat"] == "-6.8150"
