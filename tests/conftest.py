"""Shared fixtures: where the real public data lives, and how its absence is treated."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
POSTGIS_ENV = "CIVICMAP_TEST_POSTGIS_URL"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """``../shared/realdata`` beside the repo: skipped locally if absent, a failure on CI."""
    if not REALDATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"real data folder {REALDATA} is missing on CI")
        pytest.skip(f"real data folder {REALDATA} not present")
    return REALDATA


def block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to open a network connection fail loudly (offline guarantee)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixture form of :func:`block_network`."""
    block_network(monkeypatch)


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """The demo city built ONCE per test session, offline, into a temporary GeoPackage.

    Returns ``(workspace, build_report)``. Shared by many test modules: treat it as read-only
    (tests that write layers make their own store).
    """
    from civicmap.cli import DEMO_PROJECT
    from civicmap.config import read_project_config
    from civicmap.store import GeoPackageStore
    from civicmap.workspace import Workspace

    store = GeoPackageStore(tmp_path_factory.mktemp("demo_build") / "demo.gpkg")
    ws = Workspace(read_project_config(DEMO_PROJECT), store=store)
    with pytest.MonkeyPatch.context() as mp:  # offline: any connection attempt fails the build
        block_network(mp)
        report = ws.build(progress=False)
    assert not report.failed, report
    return ws, report


@pytest.fixture(scope="session")
def postgis_url() -> str:
    """The test server's URL (``scripts/postgis`` prints it): skipped locally if unset, a failure on CI."""
    url = os.environ.get(POSTGIS_ENV)
    if not url:
        message = f'{POSTGIS_ENV} is not set; start a server with: eval "$(scripts/postgis)"'
        if os.environ.get("CI"):
            pytest.fail(f"{message} (required on CI)")
        pytest.skip(message)
    return url
