"""civicmap: OpenStreetMap, rasters and field surveys merged into layered maps.

>>> import civicmap as cm
>>> ws = cm.open_workspace("sample_data/demo")   # doctest: +SKIP
>>> report = ws.build()                          # doctest: +SKIP
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("civicmap")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
