"""Published survey forms (``/forms``...), and what every intake route shares: the intake, the caller, the body.

The intake routes (this module, ``submissions``, ``openrosa``, ``moderation``) are active when the
served workspace is a project folder (it has a ``config``); :func:`install_intake` opens its
intake store and, after each approval, invalidates the cached tiles of the layers built from that
form (layers whose ``meta`` has ``form_id`` or ``source_forms`` naming it) in the changed box.
Tokens: ``Authorization: Bearer <token>``, or ODK-style ``/key/<token>/...`` URLs (OpenRosa).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import APIRouter, Depends, FastAPI, Request, Response

from civicmap.errors import NotFoundError, TooLargeError
from civicmap.intake import ChangeEvent, Intake, open_intake
from civicmap.intake.forms import form_metadata, schema_document
from civicmap.intake.tokens import ANONYMOUS, Principal
from civicmap.serve._refresh import LayerRefresher
from civicmap.serve.deps import LayerCatalog
from civicmap.serve.routes._respond import base_url
from civicmap.tiles.cache import TileCache
from civicmap.tiles.grid import lonlat_to_mercator
from civicmap.types import BBox

__all__ = [
    "Caller",
    "IntakeDep",
    "get_caller",
    "get_intake",
    "install_intake",
    "read_body",
    "router",
    "run_submission",
]

log = logging.getLogger(__name__)

router = APIRouter(tags=["survey intake"])

T = TypeVar("T")


def install_intake(app: FastAPI, workspace: Any, cache: TileCache, catalog: LayerCatalog) -> Intake | None:
    """Open the workspace's intake, hook tile invalidation to approvals, add the intake routes (None: not a project)."""
    config = getattr(workspace, "config", None)
    if config is None:
        return None
    intake = (
        workspace.intake if hasattr(workspace, "intake") else open_intake(config, area=getattr(workspace, "bbox", None))
    )
    refresher = LayerRefresher(workspace, ["risk"]) if getattr(config, "risk", None) is not None else None
    app.state.civicmap_refresher = refresher

    def invalidate(event: ChangeEvent) -> None:
        if refresher is not None and any(
            event.form_id in info.meta.get("source_forms", ()) for info in catalog.infos().values()
        ):
            refresher.request()  # the risk layers use approved surveys: rebuild them (new versions)
        if event.bbox is None:
            return
        xs, ys = lonlat_to_mercator([event.bbox.west, event.bbox.east], [event.bbox.south, event.bbox.north])
        box = BBox(float(xs[0]), float(ys[0]), float(xs[1]), float(ys[1]))
        for info in catalog.infos().values():
            forms = {info.meta.get("form_id"), *info.meta.get("source_forms", ())}
            if event.form_id in forms:
                dropped = cache.invalidate(info.name, box)
                log.info("approval in %s: %d cached tiles of %s dropped", event.form_id, dropped, info.name)

    intake.on_change(invalidate)
    app.state.civicmap_intake = intake
    app.state.civicmap_intake_limiter = anyio.CapacityLimiter(intake.write_concurrency)
    from civicmap.serve.routes import moderation, openrosa, submissions  # noqa: PLC0415 - they import this module

    for r in (router, submissions.router, openrosa.router, moderation.router):
        app.include_router(r)
    logging.getLogger("uvicorn.access").addFilter(openrosa.TokenLogFilter())
    return intake


def get_intake(request: Request) -> Intake:
    """FastAPI dependency: the app's :class:`Intake` (404 when the workspace has none)."""
    intake: Intake | None = getattr(request.app.state, "civicmap_intake", None)
    if intake is None:
        raise NotFoundError("this service has no survey intake (serve a project folder)")
    return intake


IntakeDep = Annotated[Intake, Depends(get_intake)]


async def get_caller(request: Request, intake: IntakeDep) -> Principal:
    """The caller from ``Authorization: Bearer`` or a ``/key/{token}/`` path (anonymous when neither)."""
    token = request.path_params.get("token")
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
    if token is None:  # nothing to look up: no trip to a worker thread
        return ANONYMOUS
    return await anyio.to_thread.run_sync(intake.authenticate, token)


Caller = Annotated[Principal, Depends(get_caller)]


async def run_submission(request: Request, func: Callable[[], T]) -> T:
    """Run ``func`` (one submission: validation and the durable write) in a worker thread.

    At most :attr:`Intake.write_concurrency` run at once per process; the others wait in arrival
    order (an anyio capacity limiter is first come, first served), without holding a thread.
    """
    limiter: anyio.CapacityLimiter = request.app.state.civicmap_intake_limiter
    return await anyio.to_thread.run_sync(func, limiter=limiter)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body (chunked or not), refused with :class:`TooLargeError` past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLargeError(f"request body of {declared} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLargeError(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.get("/forms", summary="Published survey forms")
def forms(request: Request, intake: IntakeDep) -> list[dict[str, Any]]:
    """Every form (latest version): id, version, title, open, whether anonymous submissions are taken, links."""
    base = base_url(request, request.app.state.civicmap)
    return [form_metadata(r, base) for r in intake.store.forms()]


@router.get("/forms/{form_id}", summary="One survey form")
def form(form_id: str, request: Request, intake: IntakeDep) -> dict[str, Any]:
    """Metadata of the latest version of ``form_id``; 404 if unknown."""
    return form_metadata(intake.store.form(form_id), base_url(request, request.app.state.civicmap))


@router.get("/forms/{form_id}/schema.json", summary="What the web form renders")
def form_schema_json(form_id: str, intake: IntakeDep) -> Response:
    """Questions with type, label, required, choices, bounds; the geo field; private ones marked."""
    import json  # noqa: PLC0415 - small, local

    doc = schema_document(intake.store.form(form_id))
    return Response(json.dumps(doc, ensure_ascii=False), media_type="application/json")
