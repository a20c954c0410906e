"""civicmap: OpenStreetMap, rasters and field surveys merged into layered maps.

>>> import civicmap as cm
>>> ws = cm.open_workspace("sample_data/demo")   # doctest: +SKIP
>>> report = ws.build()                          # doctest: +SKIP
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("civicmap")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from civicmap.workspace import Workspace, open_workspace

__all__ = ["Workspace", "__version__", "open_workspace"]


def __getattr__(name: str) -> Any:
    """Import the workspace (and with it geopandas, rasterio, osmnx) only when first used."""
    if name in ("Workspace", "open_workspace"):
        from civicmap import workspace  # noqa: PLC0415 - lazy on purpose

        return getattr(workspace, name)
    raise AttributeError(f"module 'civicmap' has no attribute {name!r}")
