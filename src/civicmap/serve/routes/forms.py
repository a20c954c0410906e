"""Published survey forms (``/forms``...), and what every intake route shares: the intake, the caller, the body.

The intake routes (this module, ``submissions``, ``openrosa``, ``moderation``) are active when the
served workspace is a project folder (it has a ``config``); :func:`install_intake` opens its
intake store and, after each approval, invalidates the cached tiles of the layers built from that
form (layers whose ``meta`` has ``form_id`` or ``source_forms`` naming it) in the changed box.
Tokens: ``Authorization: Bearer <token>``, or ODK-style ``/key/<token>/...`` URLs (OpenRosa).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Request, Response

from civicmap.errors import NotFoundError, TooLargeError
from civicmap.intake import ChangeEvent, Intake, SubmissionRequest, open_intake
from civicmap.intake.base import PutResult
from civicmap.intake.forms import form_metadata, schema_document
from civicmap.intake.tokens import ANONYMOUS, Principal
from civicmap.serve._refresh import LayerRefresher
from civicmap.serve.deps import LayerCatalog
from civicmap.serve.routes._respond import base_url
from civicmap.tiles.cache import TileCache
from civicmap.tiles.grid import lonlat_to_mercator
from civicmap.types import BBox

__all__ = [
    "MAX_BATCH",
    "Caller",
    "IntakeDep",
    "SubmissionBatcher",
    "get_caller",
    "get_intake",
    "install_intake",
    "read_body",
    "router",
    "submit_batched",
]

log = logging.getLogger(__name__)

router = APIRouter(tags=["survey intake"])


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
    app.state.civicmap_intake_batcher = SubmissionBatcher(intake, concurrency=intake.write_concurrency)
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


MAX_BATCH = 64
"""At most this many queued submissions are validated and stored by one worker-thread call."""


class SubmissionBatcher:
    """Group work for the submissions of one app: those waiting for a turn are handled together.

    A submission is queued; whenever fewer than :attr:`Intake.write_concurrency` batches are
    running, one worker-thread call of :meth:`Intake.submit_many` takes everything queued (at most
    ``max_batch``, first come first served). With nothing running a submission starts at once
    (no timer, no added latency when idle); under load the ones that arrived while a batch ran
    form the next one, whose answers are validated as one table. Each submission is still
    stored in its own transaction, and each request gets its own result or exception.
    Futures are settled on their own event loop (a test client may run several loops).
    """

    def __init__(self, intake: Intake, *, concurrency: int, max_batch: int = MAX_BATCH) -> None:
        self.intake = intake
        self.concurrency = concurrency
        self.max_batch = max_batch
        self._queue: deque[tuple[SubmissionRequest, asyncio.Future[PutResult]]] = deque()
        self._running = 0
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def waiting(self) -> int:
        """How many submissions are queued, not yet taken by a batch."""
        with self._lock:
            return len(self._queue)

    async def submit(self, submission: SubmissionRequest) -> PutResult:
        """Queue ``submission`` and wait for its outcome (its :class:`PutResult`, or its exception raised)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[PutResult] = loop.create_future()
        with self._lock:
            self._queue.append((submission, future))
        self._start(loop)
        return await future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start batches of what is queued while fewer than ``concurrency`` run."""
        while True:
            with self._lock:
                if self._running >= self.concurrency:
                    return
                batch: list[tuple[SubmissionRequest, asyncio.Future[PutResult]]] = []
                while self._queue and len(batch) < self.max_batch:
                    item = self._queue.popleft()
                    if not item[1].done():  # a request whose client left is not stored
                        batch.append(item)
                if not batch:
                    return
                self._running += 1
            task = loop.create_task(self._run(batch, loop))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(
        self, batch: list[tuple[SubmissionRequest, asyncio.Future[PutResult]]], loop: asyncio.AbstractEventLoop
    ) -> None:
        outcomes: list[PutResult | Exception]
        try:
            outcomes = await anyio.to_thread.run_sync(self.intake.submit_many, [s for s, _ in batch])
        except Exception as exc:  # the call itself failed: every request of the batch gets the error
            outcomes = [exc] * len(batch)
        finally:
            with self._lock:
                self._running -= 1
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _settle(future, outcome)
        self._start(loop)


def _settle(future: asyncio.Future[PutResult], outcome: PutResult | Exception) -> None:
    """Set ``future``'s result or exception, on its own loop (thread-safe); nothing if it is already done."""

    def settle() -> None:
        if future.done():
            return
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    loop = future.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        settle()
        return
    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # that loop is closed: its request is gone
        log.debug("submission outcome dropped: its event loop is closed")


async def submit_batched(request: Request, submission: SubmissionRequest) -> PutResult:
    """Validate and durably store ``submission`` with the app's :class:`SubmissionBatcher` (group work)."""
    batcher: SubmissionBatcher = request.app.state.civicmap_intake_batcher
    return await batcher.submit(submission)


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
