"""TileJSON 3.0.0 documents (mapbox/tilejson-spec 3.0.0) describing a civicmap tile layer.

Rules applied: ``tilejson`` "3.0.0"; ``tiles`` absolute http(s) URL templates with {z}, {x}, {y};
``vector_layers`` (each with ``id`` and ``fields``) for vector tiles (URL ending .mvt/.pbf);
``bounds`` in degrees that never wrap the antimeridian (a west > east box is widened to
-180..180) and are clamped to the Web Mercator latitude limit; ``center`` = [lon, lat, zoom]
inside bounds and zoom range; ``attribution`` HTML-escaped (the spec warns it may be rendered
as HTML: XSS and tracking beacons); ``minzoom <= maxzoom`` within 0..30; ``scheme`` "xyz".
"""

from __future__ import annotations

import html
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from civicmap.errors import InputError
from civicmap.tiles.grid import MAX_LATITUDE, MAX_ZOOM

__all__ = ["TILEJSON_VERSION", "TileSetMeta", "tilejson"]

log = logging.getLogger(__name__)

TILEJSON_VERSION = "3.0.0"
_SEMVER = re.compile(r"^\d+\.\d+\.\d+[\w.+-]*$")
_VECTOR_SUFFIXES = (".mvt", ".pbf")


@dataclass(frozen=True)
class TileSetMeta:
    """Descriptive TileJSON keys: ``name``, ``description`` (plain text), ``attribution`` (escaped), ``version``."""

    name: str | None = None
    description: str | None = None
    attribution: str | None = None
    version: str = "1.0.0"


def _check_urls(tiles_url: str | Sequence[str]) -> list[str]:
    urls = [tiles_url] if isinstance(tiles_url, str) else list(tiles_url)
    if not urls:
        raise InputError("tiles_url is empty; give at least one absolute URL template")
    for url in urls:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise InputError(
                f"tile URL {url!r} is not absolute; TileJSON 3.0.0 §3.2 requires absolute URLs such as "
                "'https://maps.example.org/tiles/buildings/{z}/{x}/{y}.mvt' (build it from the request's base URL)"
            )
        missing = [p for p in ("{z}", "{x}", "{y}") if p not in url]
        if missing:
            raise InputError(
                f"tile URL {url!r} lacks {', '.join(missing)}; expected a template like .../{{z}}/{{x}}/{{y}}.png"
            )
    return urls


def _bounds(bounds_lonlat: Sequence[float] | None) -> list[float]:
    if bounds_lonlat is None:
        return [-180.0, -MAX_LATITUDE, 180.0, MAX_LATITUDE]
    try:
        w, s, e, n = (float(v) for v in bounds_lonlat)
    except (TypeError, ValueError) as exc:
        raise InputError(f"bounds_lonlat {bounds_lonlat!r} is not four numbers (west, south, east, north)") from exc
    if not all(math.isfinite(v) for v in (w, s, e, n)) or not (-90 <= s <= n <= 90):
        raise InputError(f"bounds_lonlat {bounds_lonlat!r}: need finite values and -90 <= south <= north <= 90")
    if w > e:  # TileJSON bounds MUST NOT wrap the antimeridian: cover all longitudes instead
        log.info("bounds %r cross the antimeridian; widened to -180..180", bounds_lonlat)
        w, e = -180.0, 180.0
    lat = (min(max(s, -MAX_LATITUDE), MAX_LATITUDE), min(max(n, -MAX_LATITUDE), MAX_LATITUDE))
    return [max(w, -180.0), lat[0], min(e, 180.0), lat[1]]


def _zooms(minzoom: int, maxzoom: int) -> None:
    ok = all(isinstance(z, int) and not isinstance(z, bool) for z in (minzoom, maxzoom))
    if not ok or not 0 <= minzoom <= maxzoom <= MAX_ZOOM:
        raise InputError(f"minzoom {minzoom!r} / maxzoom {maxzoom!r}: need integers with 0 <= minzoom <= maxzoom <= 30")


def _vector_layers(layers: Sequence[Mapping[str, Any]], minzoom: int, maxzoom: int) -> list[dict[str, Any]]:
    out = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, Mapping) or not isinstance(layer.get("id"), str) or not layer["id"]:
            raise InputError(f"vector_layers[{i}] = {layer!r} needs an 'id' string (the MVT layer name)")
        fields = layer.get("fields", {})
        if not isinstance(fields, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in fields.items()
        ):
            raise InputError(f"vector_layers[{i}] fields {fields!r} must map field names to description strings")
        item: dict[str, Any] = {"id": layer["id"], "fields": dict(fields)}
        if layer.get("description") is not None:
            item["description"] = str(layer["description"])
        for key, low, high in (("minzoom", minzoom, maxzoom), ("maxzoom", minzoom, maxzoom)):
            if layer.get(key) is not None:
                value = layer[key]
                if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                    raise InputError(f"vector_layers[{i}] {key} {value!r} must be an integer in {low}..{high}")
                item[key] = value
        out.append(item)
    return out


def _center(center: Sequence[float] | None, bounds: list[float], minzoom: int, maxzoom: int) -> list[float]:
    w, s, e, n = bounds
    if center is None:
        span = max(e - w, 1e-9)
        zoom = min(max(int(math.log2(360 / span)) + 1, minzoom), maxzoom)
        return [(w + e) / 2, (s + n) / 2, zoom]
    if len(center) != 3:
        raise InputError(f"center {center!r} must be [longitude, latitude, zoom]")
    lon, lat, given_zoom = center
    if not (w <= lon <= e and s <= lat <= n and minzoom <= given_zoom <= maxzoom and float(given_zoom).is_integer()):
        raise InputError(
            f"center {center!r} must lie inside bounds {bounds} with an integer zoom in {minzoom}..{maxzoom}"
        )
    return [float(lon), float(lat), int(given_zoom)]


def tilejson(
    layer_id: str,
    *,
    tiles_url: str | Sequence[str],
    bounds_lonlat: Sequence[float] | None = None,
    minzoom: int = 0,
    maxzoom: int = 22,
    vector_layers: Sequence[Mapping[str, Any]] | None = None,
    center: Sequence[float] | None = None,
    meta: TileSetMeta | None = None,
) -> dict[str, Any]:
    """A TileJSON 3.0.0 document (a JSON-ready dict) for one tile layer.

    ``tiles_url``: absolute URL template(s) (relative -> :class:`InputError`). ``bounds_lonlat``:
    (west, south, east, north) in degrees, EPSG:4326; default the whole Web Mercator world.
    ``vector_layers``: list of ``{"id", "fields": {name: description}, "description"?,
    "minzoom"?, "maxzoom"?}``, required when the URL ends in ``.mvt``/``.pbf`` (use
    :func:`civicmap.tiles.vector.mvt_fields` for ``fields``). ``center``: [lon, lat, zoom];
    default the bounds' centre at a zoom that shows them. ``meta``: name, description,
    attribution and version (``name`` defaults to ``layer_id``).
    """
    meta = meta or TileSetMeta()
    urls = _check_urls(tiles_url)
    _zooms(minzoom, maxzoom)
    bounds = _bounds(bounds_lonlat)
    is_vector = all(urlsplit(u).path.lower().endswith(_VECTOR_SUFFIXES) for u in urls)
    if is_vector and not vector_layers:
        raise InputError(
            f"layer {layer_id!r} serves vector tiles, so TileJSON needs vector_layers [{{'id', 'fields'}}]"
        )
    if not _SEMVER.match(meta.version):
        raise InputError(f"version {meta.version!r} is not a semver string such as '1.0.0'")
    doc: dict[str, Any] = {
        "tilejson": TILEJSON_VERSION,
        "name": meta.name if meta.name is not None else layer_id,
        "version": meta.version,
        "scheme": "xyz",
        "tiles": urls,
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "bounds": bounds,
        "center": _center(center, bounds, minzoom, maxzoom),
    }
    if vector_layers:
        doc["vector_layers"] = _vector_layers(vector_layers, minzoom, maxzoom)
    if meta.description is not None:
        doc["description"] = meta.description
    if meta.attribution is not None:
        doc["attribution"] = html.escape(meta.attribution, quote=True)
    return doc
