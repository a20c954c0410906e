"""``/health``: liveness with the civicmap version and the number of public layers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

import civicmap
from civicmap.serve.deps import State

__all__ = ["router"]

router = APIRouter(tags=["service"])


@router.get("/health", summary="Service health")
def health(state: State) -> dict[str, Any]:
    """200 with ``status``, civicmap ``version``, the workspace name and how many layers are served."""
    return {
        "status": "ok",
        "version": civicmap.__version__,
        "workspace": state.name,
        "layers": len(state.catalog.infos()),
    }
