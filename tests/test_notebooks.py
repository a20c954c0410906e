"""The notebooks run top to bottom, offline, in this environment's Python, and are stored without outputs."""

import shutil
import sys
import time
from pathlib import Path

import nbformat
import pytest

from civicmap.cli import DEMO_PROJECT

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TIME_LIMIT_S = 60

# Runs first in the kernel (not saved): same interpreter as the tests, and no new network connections.
GUARD = f"""
import socket, sys
assert sys.prefix == {sys.prefix!r}, f"kernel runs {{sys.executable}}, not this environment's Python"
def _refuse(*args, **kwargs):
    raise AssertionError(f"network access attempted: {{args!r}}")
socket.socket.connect = _refuse
socket.create_connection = _refuse
"""


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def test_notebooks_are_stored_without_outputs():
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert paths
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name}: strip its outputs"


@pytest.mark.slow
def test_demo_city_notebook_runs_offline(tmp_path):
    nbclient = pytest.importorskip("nbclient")
    project = tmp_path / "demo"  # a copy: the notebook builds into <project>/.civicmap
    shutil.copytree(DEMO_PROJECT, project, ignore=shutil.ignore_patterns(".civicmap"))
    nb = read("01_demo_city.ipynb")
    (parameters,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source += f"\nPROJECT = Path({str(project)!r})"
    nb.cells.insert(0, nbformat.v4.new_code_cell(GUARD))
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=TIME_LIMIT_S, resources={"metadata": {"path": str(tmp_path)}}
    )
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    seconds = time.perf_counter() - started
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    maps = [o for c in code for o in c.outputs if "folium" in str(o.get("data", {}).get("text/html", ""))]
    assert len(maps) == 5  # risk, risk offline, unserved buildings, settlements, transit
    offline_maps = [m for m in maps if "data:text/javascript;base64" in m["data"]["text/html"]]
    assert len(offline_maps) == 1 and "cdn.jsdelivr.net" not in offline_maps[0]["data"]["text/html"]
    assert (project / ".civicmap" / "demo.gpkg").is_file()
    assert seconds < TIME_LIMIT_S
