"""Build steps of a workspace's analysis layers (risk, settlements, transit).

Each step reads the source layers the workspace stored, calls the pure functions of
:mod:`civicmap.layers`, and writes its layers back to the store, returning
``(LayerInfo, note)`` pairs for the build summary. Orchestration only: no analysis here.
"""

__all__: list[str] = []
