"""Faults: SIGKILL of a uvicorn server mid-flight (16 clients, attachments) and two server processes on one store.

Both intake backends: the SQLite file and PostgreSQL (``intake_backend`` in conftest).

Every submission acknowledged with 201 must be there after a restart, with its attachment
(SHA-256 equal); none half-stored; resending every submission stores each exactly once.
Only 127.0.0.1, bounded in count and time.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from civicmap.intake import IntakeStore, open_intake, publish_form

pytestmark = pytest.mark.slow

CLIENTS = 16
RUN_S = 3.0
KILL_AT_S = 1.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(project: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    code = f"from civicmap.serve import run; run({str(project)!r}, host='127.0.0.1', port={port}, log_level='warning')"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start in 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


@pytest.fixture
def served(project: Path, tmp_path: Path, helpers: object) -> Iterator[Path]:
    intake = open_intake(project)
    publish_form(intake.store, helpers.write_photo_form(tmp_path / "damage.xlsx"))  # type: ignore[attr-defined]
    intake.store.close()
    yield project


def _request(instance_id: str, n: int, png: bytes | None) -> dict[str, object]:
    answers = {"category": "flooding", "severity": n % 6, "description": f"report {n}"}
    if png is not None:
        answers["photo"] = f"p{n}.png"
    sub = {
        "instance_id": instance_id,
        "answers": answers,
        "location": {"type": "Point", "coordinates": [39.24 + n * 1e-6, -6.815]},
    }
    files = {"submission": (None, json.dumps(sub), "application/json")}
    if png is not None:
        files[f"p{n}.png"] = (f"p{n}.png", png, "image/png")
    return {"files": files}


def _clients(
    urls: list[str], stop: threading.Event, helpers: object
) -> tuple[dict[str, str | None], dict[str, dict[str, object]]]:
    """Run CLIENTS threads until ``stop``; returns {instance_id: sha256 of photo or None} acknowledged, and all sent."""
    acked: dict[str, str | None] = {}
    sent: dict[str, dict[str, object]] = {}
    lock = threading.Lock()

    def work(k: int) -> None:
        with httpx.Client(timeout=5) as http:
            n = 0
            while not stop.is_set() and n < 400:
                num = k * 1000 + n
                iid = f"uuid:kill-{k}-{n}"
                png = helpers.png(num, size=8 + num % 5) if n % 2 == 0 else None  # type: ignore[attr-defined]
                req = _request(iid, num, png)
                with lock:
                    sent[iid] = req
                try:
                    r = http.post(f"{urls[num % len(urls)]}/forms/damage_report/submissions", **req)  # type: ignore[arg-type]
                except httpx.TransportError:
                    time.sleep(0.05)
                else:
                    if r.status_code == 201:
                        with lock:
                            acked[iid] = None if png is None else hashlib.sha256(png).hexdigest()
                n += 1

    threads = [threading.Thread(target=work, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    return acked, sent, threads  # type: ignore[return-value]


def _check_store(project: Path, acked: dict[str, str | None]) -> IntakeStore:
    store = open_intake(project).store  # SQLite: <project>/.civicmap/intake.sqlite; PostgreSQL: the test schema
    assert store.integrity_check() == "ok"
    for iid, sha in acked.items():
        store.submission(iid)  # NotFoundError would fail the test
        atts = store.attachments(iid)
        assert [a.sha256 for a in atts] == ([] if sha is None else [sha]), iid
    for sub in store.submissions():  # none half-stored: every row's files are complete
        for a in store.attachments(sub.instance_id):
            assert hashlib.sha256((store.attachments_dir / a.path).read_bytes()).hexdigest() == a.sha256
    return store


def test_sigkill_mid_flight_loses_no_acknowledged_submission(served: Path, helpers: object) -> None:
    proc, url = _start(served)
    stop = threading.Event()
    acked, sent, threads = _clients([url], stop, helpers)  # type: ignore[misc]
    try:
        time.sleep(KILL_AT_S)
        os.kill(proc.pid, signal.SIGKILL)
        time.sleep(RUN_S - KILL_AT_S)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        _stop(proc)
    assert len(acked) >= 20, f"only {len(acked)} submissions acknowledged before the kill"
    assert len(sent) > len(acked)  # some were in flight or refused after the kill
    store = _check_store(served, acked)
    before = {s.instance_id for s in store.submissions()}
    assert set(acked) <= before
    proc, url = _start(served)
    try:
        with httpx.Client(timeout=10) as http:
            codes = [http.post(f"{url}/forms/damage_report/submissions", **req).status_code for req in sent.values()]  # type: ignore[arg-type]
    finally:
        _stop(proc)
    assert set(codes) == {201}
    rows = store.submissions()
    assert len(rows) == len(sent) == len({r.instance_id for r in rows})
    with_photo = [iid for iid, req in sent.items() if len(req["files"]) == 2]  # type: ignore[arg-type]
    assert all(len(store.attachments(iid)) == 1 for iid in with_photo)
    assert store.integrity_check() == "ok"
    print(f"\nkill test: {len(sent)} sent, {len(acked)} acknowledged before SIGKILL, all present; retries stored once")


def test_two_server_processes_one_file(served: Path, helpers: object) -> None:
    (p1, u1), (p2, u2) = _start(served), _start(served)
    stop = threading.Event()
    acked, _, threads = _clients([u1, u2], stop, helpers)  # type: ignore[misc]
    try:
        time.sleep(2.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        _stop(p1)
        _stop(p2)
    assert len(acked) >= 20
    store = _check_store(served, acked)
    ids = [s.instance_id for s in store.submissions()]
    assert set(ids) == set(acked) and len(ids) == len(set(ids))
    print(f"\ntwo writers: {len(acked)} submissions through 2 processes, none lost")
