"""HTTP routes of the map service; each module holds one ``router``."""

from civicmap.serve.routes import catalog, features, health, tiles

__all__ = ["ROUTERS"]

ROUTERS = (health.router, catalog.router, features.router, tiles.router)
