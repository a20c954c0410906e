"""Moderation: the review queue (with private answers), state changes with edits, exports.

=====================================================  =========================  ===================
route                                                  role                       answer
=====================================================  =========================  ===================
``GET /moderation/submissions?state=&form_id=``        moderator, analyst, admin  200 list
``GET /moderation/submissions/{instance_id}/versions``  moderator, analyst, admin  200 list
``POST /moderation/submissions/{instance_id}``         moderator, admin           200 record
``GET /moderation/export.{geojson,csv,gpkg}``          moderator, analyst, admin  200 file
=====================================================  =========================  ===================

The queue and exports hold current versions only: a version replaced by an edit from the field
(``superseded_by`` set) is listed with ``include_superseded=true`` and in ``/versions``, the whole
chain oldest first; moderating it is 409 (moderate the edit that replaced it).

The POST body is ``{"state", "reason", "edits", "expected_version"}``; edits are kept apart from
the original answers. 401 without a valid token, 403 wrong role or form scope, 404 unknown
submission, 409 stale ``expected_version``, 422 edits that break the form's rules.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from civicmap.errors import InputError
from civicmap.intake.exports import EXPORT_FORMATS, export_bytes
from civicmap.intake.moderation import submission_document
from civicmap.intake.tokens import CAN_READ_RAW, require
from civicmap.serve.routes.forms import Caller, IntakeDep

__all__ = ["ModerationRequest", "router"]

router = APIRouter(prefix="/moderation", tags=["moderation"])


class ModerationRequest(BaseModel):
    """A moderator's decision on one submission."""

    model_config = ConfigDict(extra="forbid")
    state: Literal["pending", "approved", "rejected", "needs_changes"]
    reason: str | None = Field(None, max_length=2000)
    edits: dict[str, Any] | None = None
    expected_version: int | None = Field(None, ge=1, description="row_version the moderator saw (409 if stale)")


@router.get("/submissions", summary="Review queue")
def list_submissions(
    intake: IntakeDep,
    caller: Caller,
    state: Annotated[str | None, Query()] = "pending",
    form_id: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    include_superseded: Annotated[bool, Query()] = False,
) -> list[dict[str, Any]]:
    """Submissions (private answers included) in arrival order; ``state=all`` for every state."""
    scope = form_id or caller.form_id
    require(caller, CAN_READ_RAW, form_id=scope, action="reading submissions")
    records = intake.store.submissions(
        form_id=scope,
        state=None if state == "all" else state,
        limit=limit,
        offset=offset,
        include_superseded=include_superseded,
    )
    return [submission_document(r, include_private=True) for r in records]


@router.get("/submissions/{instance_id}/versions", summary="Versions of a submission")
def submission_versions(instance_id: str, intake: IntakeDep, caller: Caller) -> list[dict[str, Any]]:
    """Every version of the submission ``instance_id`` belongs to (edits from the field), oldest first; 404 if none."""
    require(caller, CAN_READ_RAW, form_id=caller.form_id, action="reading submissions")
    versions = intake.store.versions(instance_id)
    require(caller, CAN_READ_RAW, form_id=versions[0].form_id if caller.form_id else None, action="reading submissions")
    return [submission_document(r, include_private=True) for r in versions]


@router.post("/submissions/{instance_id}", summary="Moderate a submission")
async def moderate_submission(
    instance_id: str, body: ModerationRequest, intake: IntakeDep, caller: Caller
) -> dict[str, Any]:
    """Approve, reject or ask for changes (with optional edits); audited; tiles refreshed on approval."""
    record = await anyio.to_thread.run_sync(
        lambda: intake.moderate(
            instance_id,
            principal=caller,
            state=body.state,
            reason=body.reason,
            edits=body.edits,
            expected_version=body.expected_version,
        )
    )
    return submission_document(record, include_private=True)


@router.get("/export.{fmt}", summary="Export submissions")
async def export(
    fmt: str,
    intake: IntakeDep,
    caller: Caller,
    form_id: Annotated[str | None, Query()] = None,
    state: Annotated[str, Query()] = "approved",
) -> Response:
    """GeoJSON, CSV (formula cells neutralised) or GeoPackage of one form's submissions (``state=all``: every one)."""
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"export format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    require(caller, CAN_READ_RAW, form_id=form_id or caller.form_id, action="exporting submissions")
    form = form_id or caller.form_id or _only_form(intake)
    data = await anyio.to_thread.run_sync(
        lambda: export_bytes(intake.store, form, fmt, state=None if state == "all" else state)  # type: ignore[arg-type]
    )
    headers = {"Content-Disposition": f'attachment; filename="{form}.{fmt}"', "Cache-Control": "no-store"}
    return Response(data, media_type=EXPORT_FORMATS[fmt], headers=headers)


def _only_form(intake: Any) -> str:
    forms = intake.store.forms()
    if len(forms) != 1:
        raise InputError(f"name the form with ?form_id= (published: {', '.join(f.form_id for f in forms) or 'none'})")
    return str(forms[0].form_id)
