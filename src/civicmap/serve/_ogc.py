"""OGC API - Features Part 1 (Core) documents and the items query, without HTTP objects.

Decisions: ``limit`` defaults to ``ServiceSettings.default_limit`` (10, the published 1.0
default) and is clamped to ``max_items_limit`` (no error, PER_fc-limit-response-2). ``bbox`` is 4
or 6 numbers in CRS84 (the 6-number form's heights are ignored); west > east (antimeridian) is
refused with 400 as are other malformed boxes. ``bbox-crs`` is accepted only as CRS84 (400
otherwise). ``f`` accepts ``json``/``geojson`` only (400 otherwise: a query parameter with an
invalid value, REQ_query-param-invalid). ``datetime`` is accepted and, the layers having no
temporal property, matches every feature. Unknown parameters give 400.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import shapely

from civicmap.errors import InputError, NotFoundError
from civicmap.serve._feature_writer import feature_collection_json, feature_json
from civicmap.serve.deps import VectorLayer
from civicmap.store import LayerInfo
from civicmap.types import BBox

__all__ = [
    "CONFORMANCE",
    "CRS84",
    "ItemsQuery",
    "check_params",
    "collection_doc",
    "collections_doc",
    "find_feature",
    "item_doc",
    "items_page",
    "landing_doc",
    "page_links",
    "parse_items_query",
    "select_features",
]

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
)
JSON = "application/json"
GEOJSON = "application/geo+json"
ITEMS_PARAMS = frozenset({"bbox", "bbox-crs", "limit", "offset", "f", "datetime"})
_FORMATS = ("json", "geojson")


def check_params(params: Iterable[str], allowed: Iterable[str]) -> None:
    """400 for query parameters outside ``allowed`` (REQ_query-param-unknown)."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise InputError(
            f"unknown query parameter(s) {', '.join(map(repr, unknown))}; this resource takes "
            f"{', '.join(sorted(allowed)) or 'none'}"
        )


def check_format(f: str | None) -> None:
    """400 unless ``f`` is absent, ``json`` or ``geojson``."""
    if f is not None and f.lower() not in _FORMATS:
        raise InputError(f"f={f!r} is not offered; this service answers f=json (GeoJSON for items) only")


def _link(href: str, rel: str, type_: str, title: str | None = None) -> dict[str, str]:
    link = {"href": href, "rel": rel, "type": type_}
    if title:
        link["title"] = title
    return link


def landing_doc(base: str, title: str) -> dict[str, Any]:
    """The landing page (REQ_root-success): links self, service-desc, service-doc, conformance, data."""
    return {
        "title": title,
        "description": f"civicmap map service for {title}: OGC API Features, XYZ/OGC API tiles and TileJSON",
        "links": [
            _link(f"{base}/", "self", JSON, "this document"),
            _link(f"{base}/openapi.json", "service-desc", "application/vnd.oai.openapi+json;version=3.0", "OpenAPI"),
            _link(f"{base}/docs", "service-doc", "text/html", "API documentation"),
            _link(f"{base}/conformance", "conformance", JSON, "conformance classes"),
            _link(f"{base}/collections", "data", JSON, "feature collections"),
            _link(f"{base}/layers", "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector", JSON, "tile layers"),
        ],
    }


def collection_doc(base: str, info: LayerInfo) -> dict[str, Any]:
    """One collection: id, title, spatial extent (CRS84), item type, links to items and TileJSON."""
    url = f"{base}/collections/{info.name}"
    doc: dict[str, Any] = {
        "id": info.name,
        "title": info.name.replace("_", " ").capitalize(),
        "itemType": "feature",
        "crs": [CRS84],
        "links": [
            _link(url, "self", JSON, "this collection"),
            _link(f"{url}/items", "items", GEOJSON, "features"),
            _link(f"{base}/layers/{info.name}/tilejson.json", "describedby", JSON, "TileJSON of the vector tiles"),
        ],
    }
    if info.bounds_wgs84 is not None:
        doc["extent"] = {"spatial": {"bbox": [[round(v, 7) for v in info.bounds_wgs84]], "crs": CRS84}}
    return doc


def collections_doc(base: str, infos: Iterable[LayerInfo]) -> dict[str, Any]:
    """All vector layers as collections."""
    return {
        "links": [_link(f"{base}/collections", "self", JSON, "feature collections")],
        "collections": [collection_doc(base, i) for i in infos if i.kind == "vector"],
    }


@dataclass(frozen=True)
class ItemsQuery:
    """A checked items request: bbox (CRS84 lon/lat or None), limit (clamped), offset."""

    bbox: BBox | None
    limit: int
    offset: int

    def params(self, offset: int) -> dict[str, str]:
        """The query string values of this request at another ``offset`` (for paging links)."""
        out = {"limit": str(self.limit), "offset": str(offset)}
        if self.bbox is not None:
            out["bbox"] = ",".join(repr(v) for v in self.bbox)
        return out


def _parse_bbox(text: str) -> BBox:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (4, 6):
        raise InputError(
            f"bbox={text!r} has {len(parts)} values; expected 4 (west,south,east,north) or 6 (with heights), CRS84"
        )
    try:
        nums = [float(p) for p in parts]
    except ValueError as exc:
        raise InputError(f"bbox={text!r} is not numbers; expected e.g. bbox=39.23,-6.82,39.25,-6.80") from exc
    if len(nums) == 6:
        nums = [nums[0], nums[1], nums[3], nums[4]]
    return BBox.parse(nums, geographic=True)


def parse_items_query(
    *,
    bbox: str | None,
    limit: int | None,
    offset: int | None,
    f: str | None,
    bbox_crs: str | None,
    default_limit: int,
    max_limit: int,
) -> ItemsQuery:
    """Check the items parameters (see the module docstring for each rule); :class:`InputError` -> 400."""
    check_format(f)
    if bbox_crs is not None and bbox_crs.strip() not in (CRS84, "OGC:CRS84", "CRS84"):
        raise InputError(f"bbox-crs={bbox_crs!r} is not supported; give bbox in CRS84 ({CRS84})")
    if limit is not None and limit < 1:
        raise InputError(f"limit={limit} must be an integer >= 1")
    if offset is not None and offset < 0:
        raise InputError(f"offset={offset} must be an integer >= 0")
    box = _parse_bbox(bbox) if bbox is not None else None
    return ItemsQuery(box, min(limit or default_limit, max_limit), offset or 0)


def select_features(layer: VectorLayer, bbox: BBox | None) -> np.ndarray:
    """Positions (ascending) of the features intersecting ``bbox`` (CRS84), or of all of them."""
    if bbox is None:
        return np.arange(len(layer.geoms_4326))
    return np.sort(layer.tree_4326.query(shapely.box(*bbox), predicate="intersects"))


def page_links(url: str, query: ItemsQuery, matched: int, extra: Mapping[str, str]) -> list[dict[str, str]]:
    """self, collection, and prev/next links of an items page (next only while features remain)."""

    def href(offset: int) -> str:
        return f"{url}?{urlencode({**extra, **query.params(offset)})}"

    links = [
        _link(href(query.offset), "self", GEOJSON, "this page"),
        _link(url.removesuffix("/items"), "collection", JSON, "the collection"),
    ]
    if query.offset > 0:
        links.append(_link(href(max(0, min(query.offset, matched) - query.limit)), "prev", GEOJSON, "previous page"))
    if query.offset + query.limit < matched:
        links.append(_link(href(query.offset + query.limit), "next", GEOJSON, "next page"))
    return links


def find_feature(layer: VectorLayer, feature_id: str) -> int:
    """Position of the feature whose id is ``feature_id``; :class:`NotFoundError` when there is none."""
    ids = layer.ids
    if pd.api.types.is_integer_dtype(ids.dtype):
        try:
            value: Any = int(feature_id)
        except ValueError:
            value = None
        hits = np.flatnonzero(ids.to_numpy() == value) if value is not None else np.empty(0, dtype=np.int64)
    elif pd.api.types.is_float_dtype(ids.dtype):
        try:
            number = float(feature_id)
        except ValueError:
            number = math.nan
        hits = np.flatnonzero(ids.to_numpy() == number)
    else:
        hits = np.flatnonzero(ids.astype(str).to_numpy() == feature_id)
    if not hits.size:
        raise NotFoundError(f"no feature {feature_id!r} in collection {layer.info.name!r}")
    return int(hits[0])


def items_page(layer: VectorLayer, query: ItemsQuery, url: str, extra: Mapping[str, str]) -> bytes:
    """The GeoJSON FeatureCollection of one items page, with counts, ``timeStamp`` and paging links.

    ``timeStamp`` is the layer's last update (the data the page shows), so that a page's bytes
    depend only on the layer version and the query: strong ETags stay valid.
    """
    selected = select_features(layer, query.bbox)
    rows = selected[query.offset : query.offset + query.limit]
    members = {
        "numberMatched": int(selected.size),
        "numberReturned": int(rows.size),
        "timeStamp": layer.info.updated_at.replace("+00:00", "Z"),
        "links": page_links(url, query, int(selected.size), extra),
    }
    return feature_collection_json(layer, rows, members)


def item_doc(layer: VectorLayer, feature_id: str, url: str) -> bytes:
    """One feature as GeoJSON with links self and collection; :class:`NotFoundError` when absent."""
    row = find_feature(layer, feature_id)
    links = [_link(url, "self", GEOJSON, "this feature"), _link(url.rsplit("/items/", 1)[0], "collection", JSON)]
    return feature_json(layer, row, {"links": links})
