"""``POST /forms/{form_id}/submissions``: the JSON intake API of civicmap's web form.

Body: JSON ``{"instance_id": "uuid:...", "answers": {...}, "location": <GeoJSON geometry or ODK
text "lat lon alt acc">}``, or ``multipart/form-data`` with a part ``submission`` holding that
JSON and one part per photo, named as in the answers. ``Idempotency-Key`` may carry the instance
id. Answers: 201 ``{"instance_id", "state", "receipt", "created", "attachments"}`` (also for an
identical retry, with ``created: false``); 400 malformed; 401/403 token; 404 unknown form; 409
other content under the same id, or closed form; 413 too large; 415 attachment type; 422 every
answer problem ``{"problems": [{"field", "value", "problem"}]}``; 429 anonymous rate limit.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from civicmap.errors import InputError
from civicmap.intake import SubmissionRequest
from civicmap.intake.base import PutResult
from civicmap.intake.multipart import parse_multipart
from civicmap.intake.submissions import parse_json_submission
from civicmap.serve.routes.forms import Caller, IntakeDep, read_body, submit_batched

__all__ = ["receipt_document", "router"]

router = APIRouter(tags=["survey intake"])


def receipt_document(result: PutResult) -> dict[str, Any]:
    """What a submitter gets back: ids, state, receipt, and the attachments' names and SHA-256."""
    r = result.record
    return {
        "instance_id": r.instance_id,
        "state": r.state,
        "receipt": r.receipt,
        "created": result.created,
        "attachments": [{"name": a.name, "sha256": a.sha256, "size": a.size} for a in result.attachments],
    }


def _split(body: bytes, content_type: str) -> tuple[Any, dict[str, bytes]]:
    if content_type.lower().startswith("multipart/"):
        parts = parse_multipart(body, content_type)
        main = [p for p in parts if p.name == "submission"]
        if len(main) != 1:
            raise InputError(f"multipart submissions need exactly one part named 'submission' (got {len(main)})")
        files = {(p.filename or p.name or ""): p.data for p in parts if p.name != "submission"}
        body = main[0].data
    else:
        files = {}
    try:
        return json.loads(body), files
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"the submission is not valid JSON ({exc})") from exc


@router.post("/forms/{form_id}/submissions", summary="Submit answers to a form", status_code=201)
async def post_submission(form_id: str, request: Request, intake: IntakeDep, caller: Caller) -> JSONResponse:
    """Validate and durably store one submission (see the module docstring for every answer)."""
    body = await read_body(request, intake.limits.max_request_bytes)
    payload, files = _split(body, request.headers.get("content-type", "application/json"))
    incoming = parse_json_submission(form_id, payload, idempotency_key=request.headers.get("idempotency-key"))
    client = request.client.host if request.client else ""
    result = await submit_batched(request, SubmissionRequest(incoming, files, caller, client))
    return JSONResponse(receipt_document(result), status_code=201, headers={"Cache-Control": "no-store"})
