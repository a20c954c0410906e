"""Shared fixtures: where the real public data lives, and how its absence is treated."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


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
