"""The map service: a thin FastAPI app over a workspace's store (tiles, TileJSON, OGC API Features).

>>> from civicmap.serve import create_app, run
>>> app = create_app("sample_data/demo")                      # doctest: +SKIP
>>> run("sample_data/demo", host="127.0.0.1", port=8000)      # doctest: +SKIP
>>> run("sample_data/demo", workers=2)                       # doctest: +SKIP (2 processes, one port)

Only public layers are served (``meta["public"] is not False``) and never their
``meta["private_fields"]``; a private layer answers exactly like an absent one (404).

================================================================  =============================================
route                                                             answer
================================================================  =============================================
``GET /health``                                                   status, civicmap version, layer count
``GET /layers``                                                   public tile layers: id, type, title, legend,
                                                                  version, lon/lat bounds, zooms, URLs, fields
``GET /layers/{layer}/tilejson.json``                             TileJSON 3.0.0 (absolute URLs)
``GET /tiles/{layer}/{z}/{x}/{y}.mvt``                            MVT (``application/vnd.mapbox-vector-tile``);
                                                                  ``{a},{b}`` in the layer segment: several
                                                                  layers in one tile
``GET /tiles/{layer}/{z}/{x}/{y}.png`` (``.webp``; imagery        raster image, 256 x 256
``.jpg``)
``GET /collections/{id}/tiles/WebMercatorQuad/{z}/{row}/{col}``   OGC API Tiles, ``?f=mvt|png|webp|jpg``
``GET /``                                                         OGC API landing page
``GET /conformance``                                              conformance classes
``GET /collections``, ``/collections/{id}``                       vector layers as feature collections
``GET /collections/{id}/items``                                   GeoJSON page: ``bbox``, ``limit``, ``offset``
``GET /collections/{id}/items/{featureId}``                       one GeoJSON feature
``GET /openapi.json``, ``/docs``                                  OpenAPI 3 document, Swagger UI
================================================================  =============================================

Status codes: 400 bad parameter (not-an-integer tile address, malformed bbox/limit/offset,
unknown query parameter, ``f`` other than json), 404 unknown/private layer or feature, tile
outside the grid or the layer's zoom range, or a tile format the layer does not serve, 204
empty tile, 304 ``If-None-Match`` hit, 500 internal (body: request id only), 503 timeout.
"""

from civicmap.serve.app import create_app, run
from civicmap.serve.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app", "run"]
