"""Building blocks of the Mkondo demo-city generator (see ``../generate.py``).

Everything is built in a local metric frame: metres east (``x``) and north (``y``) of
the city's south-west corner, which sits at a fixed point of UTM zone 37S (EPSG:32737).
"""

__all__: list[str] = []
