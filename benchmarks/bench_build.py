"""Time building the demo city (every source into a fresh GeoPackage store); prints a markdown table."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from civicmap.cli import DEMO_PROJECT
from civicmap.config import read_project_config
from civicmap.store import GeoPackageStore
from civicmap.workspace import Workspace

RUNS = 3


def build_once() -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(read_project_config(DEMO_PROJECT), store=GeoPackageStore(Path(tmp) / "demo.gpkg"))
        started = time.perf_counter()
        report = ws.build(progress=False)
        return time.perf_counter() - started, len(report.rows), sum(r.count for r in report.rows if r.kind == "vector")


def main() -> None:
    runs = [build_once() for _ in range(RUNS)]
    seconds = [r[0] for r in runs]
    print("## Demo city build\n")
    print("| step | median s | min s | runs | layers | features |")
    print("|---|---:|---:|---:|---:|---:|")
    median, best = statistics.median(seconds), min(seconds)
    print(f"| civicmap build (demo) | {median:.2f} | {best:.2f} | {RUNS} | {runs[0][1]} | {runs[0][2]} |")


if __name__ == "__main__":
    main()
