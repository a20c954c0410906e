"""Durable survey intake over HTTP: JSON submissions/s with 16 concurrent clients; prints a markdown table.

A uvicorn subprocess serves a tiny project over the demo city's area with the demo building
survey published (SQLite WAL, ``synchronous=FULL``). 16 threads post distinct, valid JSON
submissions for ``RUN_S`` seconds; every 201 is a committed, fsynced row. The raw SQLite rate
(one small INSERT + COMMIT per transaction, same pragmas, one thread) gives the ratio.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from civicmap.cli import DEMO_PROJECT
from civicmap.intake import open_intake, publish_form

CLIENTS = 16
RUN_S = 8.0
TOML = '[project]\nname = "bench"\n[area]\nbbox = [39.229871, -6.824915, 39.249792, -6.805004]\n'


def _serve(project: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = f"from civicmap.serve import run; run({str(project)!r}, host='127.0.0.1', port={port}, log_level='warning')"
    proc = subprocess.Popen([sys.executable, "-c", code])
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def _load(url: str) -> tuple[int, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + RUN_S

    def work(k: int) -> None:
        with httpx.Client(timeout=30) as http:
            n = 0
            while time.perf_counter() < stop:
                answers = {"wall_material": "timber", "storeys": 1 + n % 3, "occupants": 4, "flood_experience": "no"}
                body = {"instance_id": f"uuid:b-{k}-{n}", "answers": answers, "location": "-6.815 39.24 0 5"}
                t = time.perf_counter()
                r = http.post(f"{url}/forms/building_survey/submissions", json=body)
                if r.status_code != 201:
                    raise RuntimeError(r.text)
                with lock:
                    latencies.append(time.perf_counter() - t)
                n += 1

    threads = [threading.Thread(target=work, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies), latencies


def raw_sqlite_rate(folder: Path, seconds: float = 3.0) -> float:
    """Durable commits/s of one thread: WAL, synchronous=FULL, one small row per transaction."""
    con = sqlite3.connect(folder / "raw.sqlite", isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = FULL")
    con.execute("CREATE TABLE t (id TEXT PRIMARY KEY, body TEXT)")
    n, stop = 0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO t VALUES (?, ?)", (f"r{n}", "x" * 400))
        con.execute("COMMIT")
        n += 1
    con.close()
    return n / seconds


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "p"
        project.mkdir()
        (project / "civicmap.toml").write_text(TOML)
        intake = open_intake(project)
        publish_form(intake.store, DEMO_PROJECT / "forms" / "building_survey.xlsx")
        proc, url = _serve(project)
        try:
            count, lat = _load(url)
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        stored = len(intake.store.submissions())
        raw = raw_sqlite_rate(Path(tmp))
    rate = count / RUN_S
    q = statistics.quantiles(lat, n=20)
    print("## Survey intake\n")
    print("| backend | clients | submissions/s | p50 ms | p95 ms | stored | raw SQLite commits/s | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| SQLite WAL FULL | {CLIENTS} | {rate:,.0f} | {statistics.median(lat) * 1000:.0f} | {q[18] * 1000:.0f} "
        f"| {stored:,} | {raw:,.0f} | {rate / raw:.3f} |"
    )


if __name__ == "__main__":
    main()
