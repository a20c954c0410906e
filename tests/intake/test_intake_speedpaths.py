"""The fast paths of JSON intake: one batch of submissions at a time per process, first come first served;
one form read per submission; no store look-up for anonymous callers; several server processes."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from civicmap.errors import ConfigError, InputError
from civicmap.intake import Intake, open_intake
from civicmap.intake.submissions import parse_json_submission
from civicmap.intake.tokens import ANONYMOUS
from civicmap.serve import ServiceSettings, run
from civicmap.serve.app import WORKSPACE_ENV, create_app_from_env

URL = "/forms/damage_report/submissions"


def _payload(instance_id: str, n: int = 0) -> dict[str, object]:
    return {
        "instance_id": instance_id,
        "answers": {"category": "flooding", "severity": n % 6, "description": f"report {n}"},
        "location": {"type": "Point", "coordinates": [39.2401 + n * 1e-3, -6.8152]},
    }


def _count_in_flight(intake: Intake, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Wrap ``intake.submit_many`` to record how many batches run at the same time (each held 20 ms)."""
    seen = {"now": 0, "max": 0, "calls": 0, "items": 0}
    lock = threading.Lock()
    original: Callable[..., Any] = intake.submit_many

    def submit_many(requests: Any) -> Any:
        with lock:
            seen["now"] += 1
            seen["calls"] += 1
            seen["items"] += len(requests)
            seen["max"] = max(seen["max"], seen["now"])
        try:
            time.sleep(0.02)
            return original(requests)
        finally:
            with lock:
                seen["now"] -= 1

    monkeypatch.setattr(intake, "submit_many", submit_many)
    return seen


def test_submissions_run_at_most_write_concurrency_at_once(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, intake_backend: str
) -> None:
    served: Intake = client.app.state.civicmap_intake  # type: ignore[attr-defined]
    assert served.write_concurrency == 1  # one batch at a time (see Intake)
    expected = 1 if intake_backend == "sqlite" else 3  # PostgreSQL may be given more
    batcher = client.app.state.civicmap_intake_batcher  # type: ignore[attr-defined]
    monkeypatch.setattr(batcher, "concurrency", expected)
    seen = _count_in_flight(served, monkeypatch)
    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda n: client.post(URL, json=_payload(f"uuid:c-{n}", n)).status_code, range(12)))
    assert codes == [201] * 12
    assert seen["items"] == 12
    assert seen["max"] == expected  # 12 requests at once: exactly the limit of batches ran together, never more
    assert seen["calls"] < 12  # those that waited for their turn were handled together
    assert {s.instance_id for s in served.store.submissions()} == {f"uuid:c-{n}" for n in range(12)}


def test_write_concurrency_must_be_positive(intake: Intake) -> None:
    assert Intake(intake.store, project="p", write_concurrency=3).write_concurrency == 3
    with pytest.raises(InputError, match="write_concurrency 0 must be at least 1"):
        Intake(intake.store, project="p", write_concurrency=0)


@pytest.mark.parametrize("intake_backend", ["sqlite"], indirect=True)
def test_one_form_read_per_submission(intake: Intake, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str | None]] = []
    original = intake.store.form

    def form(form_id: str, version: str | None = None) -> Any:
        calls.append((form_id, version))
        return original(form_id, version)

    monkeypatch.setattr(intake.store, "form", form)
    result = intake.submit(parse_json_submission("damage_report", _payload("uuid:f1")), {}, principal=ANONYMOUS)
    assert result.created and calls == [("damage_report", None)]
    calls.clear()
    pinned = parse_json_submission("damage_report", _payload("uuid:f2") | {"version": "2"})
    assert intake.submit(pinned, {}, principal=ANONYMOUS).record.version == "2"
    assert calls == [("damage_report", "2")]


@pytest.mark.parametrize("intake_backend", ["sqlite"], indirect=True)
def test_anonymous_caller_needs_no_token_lookup(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, tokens: dict[str, str]
) -> None:
    served: Intake = client.app.state.civicmap_intake  # type: ignore[attr-defined]
    looked_up: list[str | None] = []
    original = served.authenticate

    def authenticate(token: str | None) -> Any:
        looked_up.append(token)
        return original(token)

    monkeypatch.setattr(served, "authenticate", authenticate)
    assert client.post(URL, json=_payload("uuid:anon")).json()["created"] is True
    assert looked_up == []
    auth = {"Authorization": f"Bearer {tokens['mapper']}"}
    assert client.post(URL, json=_payload("uuid:mapper"), headers=auth).status_code == 201
    assert looked_up == [tokens["mapper"]]
    assert served.store.submission("uuid:mapper").submitter == tokens["mapper"].split("_")[1]
    bad = client.post(URL, json=_payload("uuid:bad"), headers={"Authorization": "Bearer cm_nope"})
    assert bad.status_code == 401


def test_run_checks_workers_and_settings(project: Path) -> None:
    with pytest.raises(InputError, match="workers 0 must be a whole number"):
        run(project, workers=0)
    with pytest.raises(ConfigError, match="CIVICMAP_\\* variables"):
        run(project, workers=2, settings=ServiceSettings(cache_bytes=1024))


def test_worker_app_factory_reads_the_environment(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    with pytest.raises(ConfigError, match=WORKSPACE_ENV):
        create_app_from_env()
    monkeypatch.setenv(WORKSPACE_ENV, str(project))
    monkeypatch.setenv("CIVICMAP_DEFAULT_LIMIT", "7")
    app = create_app_from_env()
    assert app.state.civicmap.settings.default_limit == 7
    assert app.state.civicmap_intake.project == "intake test"
    app.state.civicmap_intake.store.close()


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the process tree from /proc (Linux)")
@pytest.mark.parametrize("intake_backend", ["sqlite"], indirect=True)
def test_two_worker_processes_share_one_port_and_store(project: Path, intake: Intake) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    code = f"from civicmap.serve import run; run({str(project)!r}, port={port}, log_level='warning', workers=2)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        workers = [c for c in _children(proc.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()]
        assert len(workers) == 2
        with ThreadPoolExecutor(8) as pool:
            codes = list(
                pool.map(lambda n: httpx.post(f"{url}{URL}", json=_payload(f"uuid:w-{n}", n)).status_code, range(40))
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert codes == [201] * 40
    store = open_intake(project).store
    assert sorted(s.instance_id for s in store.submissions()) == sorted(f"uuid:w-{n}" for n in range(40))
    store.close()
