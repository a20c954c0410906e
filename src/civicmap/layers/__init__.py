"""Pure functions from sources to map layers and summary tables (no I/O beyond reading given paths)."""

__all__: list[str] = []
