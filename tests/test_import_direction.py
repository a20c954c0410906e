"""Data flows one way: sources, layers and tiles never import store, serve or cli."""

import ast
from pathlib import Path

import pytest

import civicmap

PACKAGE = Path(civicmap.__file__).parent
LOWER = ("sources", "layers", "tiles")
FORBIDDEN = ("civicmap.store", "civicmap.serve", "civicmap.cli", "civicmap.workspace")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", LOWER)
def test_lower_packages_do_not_import_upwards(package):
    folder = PACKAGE / package
    if not folder.is_dir():
        pytest.skip(f"civicmap.{package} does not exist yet")
    offenders = {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in folder.rglob("*.py")
        for name in imported_modules(path)
        if name.startswith(FORBIDDEN)
    }
    assert not offenders, sorted(offenders)


def test_no_grab_bag_modules():
    bad = [p.name for p in PACKAGE.rglob("*.py") if p.stem.strip("_") in {"utils", "helpers", "common", "misc"}]
    assert not bad
