"""OpenRosa for ODK Collect and KoBoCollect: form list, XForm download, submissions.

===========================================  =================================================
route (also under ``/key/{token}/``)         answer
===========================================  =================================================
``GET /formList``                            ``<xforms>`` list: formID, name, version,
                                             ``hash`` (``md5:``), ``downloadUrl``
``GET /forms/{form_id}/form.xml``            the XForm pyxform compiled
``HEAD /submission``                         204 (ODK Collect's pre-flight; never a redirect)
``POST /submission``                         multipart: exactly one ``xml_submission_file`` +
                                             attachments -> 201 ``<OpenRosaResponse>``
===========================================  =================================================

Every response carries ``X-OpenRosa-Version: 1.0`` and ``X-OpenRosa-Accept-Content-Length``.
Errors are ``<OpenRosaResponse>`` bodies with the status of ``civicmap.serve.errors``: 400
malformed (no/two XML parts, unsafe or broken XML, missing instanceID, bad attachment name),
401/403 token, 404 unknown form or version, 409 other content under the same instanceID or a
closed form, 413 too large, 415 attachment type, 422 answer problems. A retry of a stored
submission (same XML) answers 201 again and adds the attachments it brings (split submissions).

An **edit** (``meta/deprecatedID`` naming the version it replaces, as ODK Collect and Enketo send
it) is stored as a new version and answers 201 like a new submission; the replaced version leaves
the layers (see :mod:`civicmap.intake.base`). 404 when the deprecatedID is not stored here, 409
when it is of another form or was already replaced by another edit (the copy edited is out of
date), 403 when another submitter sends it or an anonymous edit targets an approved report.
Tokens in ``/key/{token}/`` URLs are masked in uvicorn's access log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request, Response

from civicmap.errors import CivicmapError, InputError, SubmissionError
from civicmap.intake import SubmissionRequest
from civicmap.intake.forms import form_list_xml
from civicmap.intake.multipart import parse_multipart
from civicmap.intake.submissions import parse_openrosa_xml
from civicmap.serve.errors import status_for
from civicmap.serve.routes._respond import base_url
from civicmap.serve.routes.forms import Caller, IntakeDep, get_caller, read_body, submit_batched

__all__ = ["OPENROSA_NS", "TokenLogFilter", "router"]

log = logging.getLogger(__name__)

OPENROSA_NS = "http://openrosa.org/http/response"
router = APIRouter(tags=["OpenRosa"])


class TokenLogFilter(logging.Filter):
    """Masks ``/key/<token>/`` in log records (uvicorn's access log puts the path in ``args``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's arguments; never drops it."""
        if isinstance(record.args, tuple):
            record.args = tuple(_mask(a) if isinstance(a, str) else a for a in record.args)
        return True


def _mask(text: str) -> str:
    if "/key/" not in text:
        return text
    head, _, rest = text.partition("/key/")
    return f"{head}/key/***/{rest.partition('/')[2]}"


def _headers(request: Request) -> dict[str, str]:
    limit = request.app.state.civicmap_intake.limits.max_request_bytes
    return {"X-OpenRosa-Version": "1.0", "X-OpenRosa-Accept-Content-Length": str(limit), "Cache-Control": "no-store"}


def _xml(request: Request, status: int, message: str) -> Response:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><OpenRosaResponse xmlns="{OPENROSA_NS}">'
        f'<message nature="{"submit_success" if status < 300 else "error"}">{escape(message)}</message>'
        "</OpenRosaResponse>"
    )
    return Response(body, status_code=status, media_type="text/xml; charset=utf-8", headers=_headers(request))


async def _answer(request: Request, work: Callable[[], Awaitable[Response]]) -> Response:
    """Run ``work``; turn civicmap errors into OpenRosa error bodies with the mapped status."""
    try:
        return await work()
    except CivicmapError as exc:
        status = status_for(exc)
        text = (
            str(exc) if status < 500 else f"server error (request {request.scope.get('state', {}).get('request_id')})"
        )
        if isinstance(exc, SubmissionError):
            text += " | " + "; ".join(str(p) for p in exc.problems)
        if status >= 500:
            log.error("OpenRosa %s failed: %s", request.url.path, exc, exc_info=exc)
        return _xml(request, status, text)


def _route(path: str, methods: list[str], **kwargs: object) -> Callable[[Callable[..., object]], Callable[..., object]]:
    def register(func: Callable[..., object]) -> Callable[..., object]:
        router.add_api_route(path, func, methods=methods, **kwargs)  # type: ignore[arg-type]
        router.add_api_route("/key/{token}" + path, func, methods=methods, include_in_schema=False)
        return func

    return register


@_route("/formList", ["GET"], summary="OpenRosa form list")
async def form_list(request: Request, intake: IntakeDep, caller: Caller) -> Response:
    """The open forms as an OpenRosa ``<xforms>`` document."""
    base = base_url(request, request.app.state.civicmap)
    prefix = f"{base}/key/{request.path_params['token']}" if "token" in request.path_params else base
    body = form_list_xml(intake.store.forms(), prefix)
    return Response(body, media_type="text/xml; charset=utf-8", headers=_headers(request))


@_route("/forms/{form_id}/form.xml", ["GET"], summary="XForm download")
async def form_xml(form_id: str, request: Request, intake: IntakeDep) -> Response:
    """The compiled XForm of the latest version of ``form_id``."""
    return Response(
        intake.store.form(form_id).xform_xml, media_type="text/xml; charset=utf-8", headers=_headers(request)
    )


@_route("/submission", ["HEAD"], summary="OpenRosa pre-flight")
async def submission_head(request: Request, intake: IntakeDep) -> Response:
    """204 with the OpenRosa headers (ODK Collect checks them to detect captive portals)."""
    return Response(status_code=204, headers=_headers(request))


@_route("/submission", ["POST"], summary="OpenRosa submission", status_code=201)
async def submission_post(request: Request, intake: IntakeDep) -> Response:
    """Store one ODK XML instance and its attachments; 201 ``<OpenRosaResponse>`` when stored."""

    async def work() -> Response:
        caller = await get_caller(request, intake)
        body = await read_body(request, intake.limits.max_request_bytes)
        parts = parse_multipart(body, request.headers.get("content-type", ""))
        xml = [p for p in parts if p.name == "xml_submission_file"]
        if len(xml) != 1:
            raise InputError(f"a submission needs exactly one part named xml_submission_file (got {len(xml)})")
        files = {(p.filename or p.name or ""): p.data for p in parts if p.name != "xml_submission_file"}
        incoming = parse_openrosa_xml(xml[0].data)
        client = request.client.host if request.client else ""
        result = await submit_batched(request, SubmissionRequest(incoming, files, caller, client))
        kind = "Edit" if result.record.deprecated_id else "Submission"
        done = "received" if result.created else "already received"
        return _xml(request, 201, f"{kind} {done}; receipt {result.record.receipt}")

    return await _answer(request, work)
