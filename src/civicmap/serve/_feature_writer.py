"""A fast RFC 7946 GeoJSON writer for pages of features of a served layer.

Vectorised over the page: geometries through ``shapely.to_geojson`` (GEOS), properties and ids
through ``pandas.DataFrame.to_json`` (lines), joined with numpy string arithmetic; no Python loop
per feature. Coordinates are those of :class:`~civicmap.serve.deps.VectorLayer.geojson_geoms`:
lon/lat, at most 6 decimals, polygon exteriors counter-clockwise. No ``crs`` member; a missing
geometry is ``null``; ``id`` is the layer's index value.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import shapely

from civicmap.serve.deps import VectorLayer

__all__ = ["GEOJSON_MEDIA_TYPE", "feature_collection_json", "feature_json", "features_json"]

GEOJSON_MEDIA_TYPE = "application/geo+json"


def _lines(frame: pd.DataFrame) -> np.ndarray:
    """One JSON object per row, as an object array of str."""
    if not len(frame):
        return np.empty(0, dtype=object)
    if not len(frame.columns):
        return np.full(len(frame), "{}", dtype=object)
    text = frame.to_json(orient="records", lines=True, date_format="iso", force_ascii=False, default_handler=str)
    return np.array(text.rstrip("\n").split("\n"), dtype=object)


def features_json(layer: VectorLayer, rows: np.ndarray) -> np.ndarray:
    """The Feature objects of positions ``rows`` of ``layer``, as an object array of JSON strings."""
    rows = np.asarray(rows, dtype=np.int64)
    if not rows.size:
        return np.empty(0, dtype=object)
    geoms = shapely.to_geojson(layer.geojson_geoms[rows])
    geoms = np.where(pd.isna(geoms), "null", geoms).astype(object)
    ids = pd.Series(_lines(pd.DataFrame({"i": layer.ids[rows]}))).str.slice(5, -1).to_numpy(dtype=object)
    props = _lines(layer.properties.iloc[rows])
    head = np.full(rows.size, '{"type":"Feature","id":', dtype=object)
    return head + ids + ',"geometry":' + geoms + ',"properties":' + props + "}"


def feature_collection_json(layer: VectorLayer, rows: np.ndarray, members: dict[str, Any]) -> bytes:
    """A FeatureCollection with the features at ``rows`` and the extra top-level ``members`` (links, counts)."""
    head = json.dumps({"type": "FeatureCollection", **members}, separators=(",", ":"), ensure_ascii=False)
    return (head[:-1] + ',"features":[' + ",".join(features_json(layer, rows)) + "]}").encode()


def feature_json(layer: VectorLayer, row: int, members: dict[str, Any]) -> bytes:
    """One Feature (position ``row``) with extra top-level ``members`` (links)."""
    text = str(features_json(layer, np.array([row]))[0])
    extra = json.dumps(members, separators=(",", ":"), ensure_ascii=False)
    return (text[:-1] + "," + extra[1:]).encode() if members else text.encode()
