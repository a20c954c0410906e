"""Rebuild a workspace's analysis layers after survey approvals, one rebuild at a time, off the request path.

An approval answers at once; the rebuild (seconds) runs in one background thread. Approvals that
arrive while a rebuild runs are coalesced into one more rebuild. New layer versions reach the
catalogue on its next refresh, and tiles are keyed by version, so nothing stale is served after it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from civicmap.errors import CivicmapError

__all__ = ["LayerRefresher"]

log = logging.getLogger(__name__)


class LayerRefresher:
    """Runs ``workspace.build(only=steps)`` in a background thread when :meth:`request` is called."""

    def __init__(self, workspace: Any, steps: Sequence[str]) -> None:
        self.workspace = workspace
        self.steps = list(steps)
        self._lock = threading.Lock()
        self._pending = False
        self._thread: threading.Thread | None = None
        self.completed = 0
        """How many rebuilds have finished (tests and /health can watch it)."""

    def request(self) -> None:
        """Ask for a rebuild; returns immediately."""
        with self._lock:
            self._pending = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="civicmap-refresh", daemon=True)
                self._thread.start()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until no rebuild is running or pending (True) or the timeout passes (False)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        return thread is None or not thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    return
                self._pending = False
            try:
                report = self.workspace.build(progress=False, only=self.steps)
                for row in report.failed:
                    log.error("rebuild after approval: %s failed: %s", row.layer, row.notes)
            except CivicmapError:
                log.exception("rebuild after approval failed")
            self.completed += 1
