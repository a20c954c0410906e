"""Durable survey intake over HTTP: JSON submissions/s with 16 concurrent clients, per backend; a markdown table.

For each backend (SQLite WAL ``synchronous=FULL``; PostgreSQL, ``synchronous_commit=on``, when
``--url`` or CIVICMAP_TEST_POSTGIS_URL names a server: ``eval "$(scripts/postgis)"``; it works in
a fresh schema dropped afterwards) and each number of server processes (``civicmap serve
--workers N``), a uvicorn subprocess serves a tiny project over the demo city's area with the
demo building survey published. One asyncio load generator keeps ``CLIENTS`` keep-alive HTTP/1.1
connections busy for ``--seconds``, each posting distinct valid JSON submissions (spread over the
area, as buildings are) and waiting for the answer. Every 201 is a committed, flushed row;
``stored`` counts the rows in the store afterwards. The generator writes raw HTTP on asyncio
streams (a few hundredths of a millisecond of CPU a request), so that on a small machine the CPUs
go to the server rather than to the client. ``ratio`` divides by the backend's raw durable commit
rate: one connection, one small INSERT + COMMIT per transaction, the same durability settings.
``server CPU ms per submission`` (user + system time of the server processes during the load,
from /proc) does not depend on what else the machine runs, unlike the rate on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from _servers import free_port, start_process

from civicmap.cli import DEMO_PROJECT
from civicmap.intake import open_intake, publish_form

CLIENTS = 16
AREA = (39.229871, -6.824915, 39.249792, -6.805004)  # the demo city (lon/lat)
TOML = f'[project]\nname = "bench"\n[area]\nbbox = [{", ".join(map(str, AREA))}]\n'
PATH = "/forms/building_survey/submissions"


@dataclass(frozen=True)
class Load:
    """What the load generator saw: one latency (seconds) per 201, over ``seconds``; the server's CPU seconds."""

    latencies_s: list[float]
    seconds: float
    server_cpu_s: float = float("nan")


def _body(rnd: random.Random, instance_id: str, n: int) -> bytes:
    lon = AREA[0] + rnd.random() * (AREA[2] - AREA[0])
    lat = AREA[1] + rnd.random() * (AREA[3] - AREA[1])
    answers = {"wall_material": rnd.choice(["timber", "concrete_block"]), "storeys": 1 + n % 3, "occupants": 4}
    answers["flood_experience"] = "no"
    return json.dumps({"instance_id": instance_id, "answers": answers, "location": f"{lat:.6f} {lon:.6f} 0 5"}).encode()


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(":", 1) for line in lines[1:] if ":" in line)
    if "content-length" not in headers:
        raise RuntimeError(f"answer without Content-Length: {lines[0]!r}")
    return int(lines[0].split()[1]), await reader.readexactly(int(headers["content-length"]))


async def _client(port: int, name: str, stop: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rnd, n = random.Random(name), 0
    try:
        while time.perf_counter() < stop:
            body = _body(rnd, f"uuid:{name}-{n}", n)
            head = f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            t = time.perf_counter()
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status, data = await _answer(reader)
            if status != 201:
                raise RuntimeError(f"submission answered {status}: {data[:300]!r}")
            latencies.append(time.perf_counter() - t)
            n += 1
    finally:
        writer.close()


def load(port: int, seconds: float, clients: int = CLIENTS) -> Load:
    """``clients`` connections posting submissions back to back for ``seconds`` (new instance IDs each call)."""
    latencies: list[float] = []
    run = uuid.uuid4().hex[:8]

    async def main() -> None:
        stop = time.perf_counter() + seconds
        await asyncio.gather(*(_client(port, f"bench-{run}-{k}", stop, latencies) for k in range(clients)))

    asyncio.run(main())
    return Load(latencies, seconds)


def _serve(project: Path, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    code = (
        f"from civicmap.serve import run; "
        f"run({str(project)!r}, host='127.0.0.1', port={port}, log_level='warning', workers={workers})"
    )
    proc, _ = start_process([sys.executable, "-c", code], port, what="civicmap serve")
    load(port, 1.0)  # warm every worker up (imports, first connections)
    return proc, port


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and its children, from /proc (NaN where there is none)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return float("nan")
    own = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(tree_cpu_s(int(c)) for c in children)


def run_backend(project: Path, workers: int, seconds: float) -> tuple[Load, int]:
    """Serve ``project`` with ``workers`` processes, load it; the load and the rows stored since the start."""
    intake = open_intake(project)
    before = len(intake.store.submissions())
    proc, port = _serve(project, workers)
    try:
        warm = len(intake.store.submissions()) - before
        cpu_s = tree_cpu_s(proc.pid)
        result = load(port, seconds)
        result = Load(result.latencies_s, result.seconds, tree_cpu_s(proc.pid) - cpu_s)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    stored = len(intake.store.submissions()) - before - warm
    intake.store.close()
    return result, stored


def raw_sqlite_rate(folder: Path, seconds: float = 3.0) -> float:
    """Durable commits/s of one connection: WAL, synchronous=FULL, one small row per transaction."""
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


def raw_postgres_rate(url: str, schema: str, seconds: float = 3.0) -> float:
    """Durable commits/s of one connection: synchronous_commit=on, one small row per transaction (autocommit)."""
    import psycopg  # noqa: PLC0415 - only with a PostgreSQL server
    from psycopg import sql  # noqa: PLC0415

    table = sql.Identifier(schema, "bench_raw_commits")
    with psycopg.connect(url, autocommit=True, options="-c synchronous_commit=on") as con:
        con.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        con.execute(sql.SQL("CREATE TABLE {} (id text PRIMARY KEY, body text)").format(table))
        insert = sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(table)
        n, stop = 0, time.perf_counter() + seconds
        while time.perf_counter() < stop:
            con.execute(insert, (f"r{n}", "x" * 400))
            n += 1
    return n / seconds


def _project(folder: Path, store_url: str | None) -> Path:
    folder.mkdir()
    store = f'[store]\nurl = "{store_url}"\n' if store_url else ""
    (folder / "civicmap.toml").write_text(TOML + store)
    intake = open_intake(folder)
    publish_form(intake.store, DEMO_PROJECT / "forms" / "building_survey.xlsx")
    intake.store.close()
    return folder


def _row(backend: str, workers: int, result: Load, stored: int, raw: float) -> str:
    lat = result.latencies_s
    rate = len(lat) / result.seconds
    q = statistics.quantiles(lat, n=20)
    return (
        f"| {backend} | {workers} | {CLIENTS} | {rate:,.0f} | {statistics.median(lat) * 1000:.0f} | {q[18] * 1000:.0f} "
        f"| {len(lat):,} / {stored:,} | {result.server_cpu_s * 1000 / max(len(lat), 1):.1f} | {raw:,.0f} "
        f"| {rate / raw:.3f} |"
    )


def sqlite_rows(workers: list[int], seconds: float) -> list[str]:
    """One table row per number of server processes, on the SQLite intake."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        raw = raw_sqlite_rate(Path(tmp))
        for n in workers:
            project = _project(Path(tmp) / f"p{n}", None)
            result, stored = run_backend(project, n, seconds)
            rows.append(_row("SQLite WAL FULL", n, result, stored, raw))
    return rows


def postgres_rows(url: str, workers: list[int], seconds: float) -> list[str]:
    """One table row per number of server processes, on the PostgreSQL intake (a fresh schema, dropped after)."""
    import psycopg  # noqa: PLC0415 - only with a PostgreSQL server
    from psycopg import sql  # noqa: PLC0415

    schema = f"bench_intake_{uuid.uuid4().hex[:10]}"
    store_url = f"{url}{'&' if '?' in url else '?'}schema={schema}"
    rows = []
    try:
        raw = raw_postgres_rate(url, schema)
        with tempfile.TemporaryDirectory() as tmp:
            for n in workers:
                project = _project(Path(tmp) / f"p{n}", store_url)
                result, stored = run_backend(project, n, seconds)
                rows.append(_row("PostgreSQL sync commit", n, result, stored, raw))
    finally:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("CIVICMAP_TEST_POSTGIS_URL"), help="PostgreSQL server")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="server processes to try")
    parser.add_argument("--seconds", type=float, default=8.0, help="load time per row")
    args = parser.parse_args()
    load_avg = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    rows = sqlite_rows(args.workers, args.seconds)
    rows += postgres_rows(args.url, args.workers, args.seconds) if args.url else []
    print("## Survey intake\n")
    print(f"{os.cpu_count()} CPUs; load average before the run {load_avg}.\n")
    print("| backend | server processes | clients | submissions/s | p50 ms | p95 ms | 201s / stored "
          "| server CPU ms per submission | raw commits/s | ratio |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    if not args.url:
        print('\nPostgreSQL not measured: set CIVICMAP_TEST_POSTGIS_URL (`eval "$(scripts/postgis)"`) or pass --url.')


if __name__ == "__main__":
    main()
