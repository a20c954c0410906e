"""A survey submitted to the service, approved by a moderator, changes the demo city's risk map."""

import shutil
import uuid

import pytest
import shapely
from fastapi.testclient import TestClient

from civicmap.cli import DEMO_PROJECT
from civicmap.config import read_project_config
from civicmap.intake.tokens import issue_token
from civicmap.serve import ServiceSettings, create_app
from civicmap.workspace import Workspace

FORM = "building_survey"
# a crowded mud-and-pole house on the valley floor, people with disabilities, flooded before
ANSWERS = {
    "wall_material": "mud_wood", "storeys": 1, "floor_height_m": 0, "occupants": 12, "children_under_5": 3,
    "elderly_over_60": 2, "people_with_disabilities": 2, "flood_experience": "yes", "flood_depth_last_m": 0.8,
    "tenure": "tenant", "respondent_name": "Asha", "respondent_phone": "+255 700 000 001",
}  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    project = tmp_path_factory.mktemp("approval") / "demo"
    shutil.copytree(DEMO_PROJECT, project, ignore=shutil.ignore_patterns(".civicmap", "_mkondo", "*.py"))
    ws = Workspace(read_project_config(project))
    assert not ws.build(progress=False).failed
    app = create_app(ws, ServiceSettings(catalog_ttl_s=0))
    token = issue_token(ws.intake.store, role="moderator", project=ws.name).token
    return ws, app, TestClient(app), {"Authorization": f"Bearer {token}"}


def test_an_approved_survey_updates_the_building_risk(served):
    ws, app, client, auth = served
    before = ws.read_layer("risk_buildings")
    target = before[(~before["surveyed"]) & before["affected"]].index[0]  # flooded, never surveyed
    where = ws.read_layer("risk_buildings", crs="EPSG:4326").geometry.loc[target].representative_point()
    version = ws.store.layer_info("risk_buildings").version
    tile_etag = client.get("/tiles/risk_buildings/14/9977/8493.mvt").headers.get("etag")
    instance = f"uuid:{uuid.uuid4()}"
    body = {
        "instance_id": instance,
        "answers": {**ANSWERS, "osm_building_id": target},
        "location": shapely.geometry.mapping(where),
    }
    created = client.post(f"/forms/{FORM}/submissions", json=body)
    assert created.status_code == 201, created.text
    # pending submissions change nothing public
    assert ws.store.layer_info("risk_buildings").version == version
    queue = client.get(f"/moderation/submissions?state=pending&form_id={FORM}", headers=auth).json()
    items = queue["submissions"] if isinstance(queue, dict) else queue
    record = next(s for s in items if s["instance_id"] == instance)
    decision = {"state": "approved", "reason": "checked on site", "expected_version": record["row_version"]}
    approved = client.post(f"/moderation/submissions/{instance}", json=decision, headers=auth)
    assert approved.status_code == 200, approved.text
    assert app.state.civicmap_refresher.wait(180)
    after = ws.read_layer("risk_buildings")
    assert ws.store.layer_info("risk_buildings").version > version
    assert bool(after.loc[target, "surveyed"]) and after.loc[target, "survey_id"] == instance
    assert after.loc[target, "occupants"] == 12
    assert after.loc[target, "vulnerability"] > before.loc[target, "vulnerability"]
    assert after.loc[target, "vulnerability"] > 0.8  # every factor near its most vulnerable score
    assert "respondent_phone" not in after.columns
    assert not after.drop(columns="geometry").isin(["Asha", ANSWERS["respondent_phone"]]).any().any()
    new_etag = client.get("/tiles/risk_buildings/14/9977/8493.mvt").headers.get("etag")
    assert tile_etag is None or new_etag != tile_etag  # a new layer version gives new tiles
