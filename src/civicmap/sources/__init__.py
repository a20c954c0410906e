"""Readers that turn files (and, on request, web services) into clean GeoDataFrames and rasters."""

__all__: list[str] = []
