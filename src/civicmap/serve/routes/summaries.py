"""``/summaries/{name}``: the JSON documents a build stores (``risk_summary``, ``transit_summary``)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response

from civicmap.errors import NotFoundError, StoreError
from civicmap.serve._ogc import check_params
from civicmap.serve.deps import ServiceState, State, run_bounded
from civicmap.serve.routes._respond import json_document

__all__ = ["SUMMARIES", "router"]

router = APIRouter(tags=["summaries"])

#: The summary tables served: each holds one JSON document in column ``document``.
SUMMARIES = ("risk_summary", "transit_summary")
#: Keys dropped from the documents: server file paths are nobody's business.
_HIDDEN_KEYS = frozenset({"path"})


def _public(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items() if k not in _HIDDEN_KEYS}
    if isinstance(value, list):
        return [_public(v) for v in value]
    return value


def _read_summary(state: ServiceState, name: str) -> Any:
    """The stored document of summary ``name`` (NotFoundError if absent, private or not built)."""
    store = state.catalog.store
    info = {i.name: i for i in store.layers() if i.kind == "table"}.get(name) if name in SUMMARIES else None
    if info is None or info.meta.get("public", True) is False:
        raise NotFoundError(f"no summary {name!r}; summaries there can be: {', '.join(SUMMARIES)} (build first)")
    table = store.read_table(name)
    if "document" not in table.columns or len(table) != 1:
        raise StoreError(f"table {name!r} is not one JSON document (column 'document', one row)")
    return _public(json.loads(table["document"].iloc[0]))


@router.get("/summaries", summary="Stored summaries")
async def summaries(request: Request, state: State) -> Response:
    """Names of the summary documents this workspace has (e.g. ``risk_summary`` after a risk build)."""
    check_params(request.query_params, ())
    tables = await run_bounded(state, lambda: {i.name for i in state.catalog.store.layers() if i.kind == "table"})
    return json_document(request, state, {"summaries": [n for n in SUMMARIES if n in tables]})


@router.get("/summaries/{name}", summary="One stored summary document")
async def summary(name: str, request: Request, state: State) -> Response:
    """A stored summary document as the last build wrote it; 404 when not built.

    ``risk_summary``: impact per hazard class, evacuation, health access, settings;
    ``transit_summary``: feeds and stop coverage. Server file paths (keys ``path``) are left out.
    """
    check_params(request.query_params, ())
    doc = await run_bounded(state, _read_summary, state, name)
    return json_document(request, state, doc)
