"""Group work: submissions waiting for their turn are validated together, each still stored (and answered) alone."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from civicmap.errors import AuthError, ConflictError, NotFoundError, SubmissionError
from civicmap.intake import FormSettings, Intake, SubmissionRequest, publish_form
from civicmap.intake import submissions as submissions_module
from civicmap.intake.base import PutResult
from civicmap.intake.submissions import parse_json_submission
from civicmap.intake.tokens import ANONYMOUS
from civicmap.serve.routes.forms import SubmissionBatcher

URL = "/forms/damage_report/submissions"


def _payload(instance_id: str, n: int = 0, **answers: object) -> dict[str, object]:
    return {
        "instance_id": instance_id,
        "answers": {"category": "flooding", "severity": n % 6, "description": f"report {n}"} | answers,
        "location": {"type": "Point", "coordinates": [39.2401 + n * 1e-3, -6.8152]},
    }


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def _held(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, first: Callable[[], Any], queued: list[Callable[[], Any]]
) -> tuple[Any, list[Any], list[int]]:
    """Send ``first``; while its batch runs, queue ``queued`` one by one (in this order); the batch sizes seen."""
    served: Intake = client.app.state.civicmap_intake  # type: ignore[attr-defined]
    batcher: SubmissionBatcher = client.app.state.civicmap_intake_batcher  # type: ignore[attr-defined]
    monkeypatch.setattr(batcher, "concurrency", 1)  # PostgreSQL too: one batch at a time
    sizes: list[int] = []
    original = served.submit_many

    def submit_many(requests: Any) -> Any:
        sizes.append(len(requests))
        if len(sizes) == 1:
            _wait(lambda: batcher.waiting >= len(queued), "the queued submissions")
        return original(requests)

    monkeypatch.setattr(served, "submit_many", submit_many)
    with ThreadPoolExecutor(len(queued) + 1) as pool:
        head = pool.submit(first)
        _wait(lambda: len(sizes) == 1, "the first batch")
        rest = []
        for k, send in enumerate(queued):
            rest.append(pool.submit(send))
            _wait(lambda k=k: batcher.waiting == k + 1, f"submission {k} queued")  # type: ignore[misc]
        return head.result(), [f.result() for f in rest], sizes


def test_one_bad_submission_fails_alone_in_its_batch(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    served: Intake = client.app.state.civicmap_intake  # type: ignore[attr-defined]
    calls: list[int] = []
    original = submissions_module.validate_submissions

    def validate(records: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(records))
        return original(records, *args, **kwargs)

    monkeypatch.setattr(submissions_module, "validate_submissions", validate)
    bad = _payload("uuid:bad", 3, severity=9)
    queued = [
        (lambda n=n: client.post(URL, json=bad if n == 4 else _payload(f"uuid:g-{n}", n)))  # type: ignore[misc]
        for n in range(8)
    ]
    head, answers, sizes = _held(client, monkeypatch, lambda: client.post(URL, json=_payload("uuid:first")), queued)
    assert sizes == [1, 8] and calls == [1, 8]  # the 8 that waited were validated as one table
    assert head.status_code == 201
    assert [r.status_code for r in answers] == [201] * 4 + [422] + [201] * 3
    problems = answers[4].json()["problems"]
    assert [(p["field"], p["value"]) for p in problems] == [("severity", "9")]
    assert [r.json()["instance_id"] for r in answers if r.status_code == 201] == [
        f"uuid:g-{n}" for n in range(8) if n != 4
    ]
    stored = sorted(s.instance_id for s in served.store.submissions(form_id="damage_report"))
    assert stored == sorted(["uuid:first"] + [f"uuid:g-{n}" for n in range(8) if n != 4])


def test_identical_retry_in_one_batch_is_stored_once(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    served: Intake = client.app.state.civicmap_intake  # type: ignore[attr-defined]
    same = _payload("uuid:twice", 2)
    other = _payload("uuid:twice", 2, description="other content")
    queued = [
        lambda: client.post(URL, json=same),
        lambda: client.post(URL, json=same),
        lambda: client.post(URL, json=other),
        lambda: client.post(URL, json=_payload("uuid:once", 1)),
    ]
    head, answers, sizes = _held(client, monkeypatch, lambda: client.post(URL, json=_payload("uuid:h")), queued)
    assert sizes == [1, 4] and head.status_code == 201
    assert [r.status_code for r in answers] == [201, 201, 409, 201]
    assert [answers[0].json()["created"], answers[1].json()["created"]] == [True, False]
    assert answers[0].json()["receipt"] == answers[1].json()["receipt"]
    assert "other content" not in str(served.store.submission("uuid:twice").answers)
    ids = [s.instance_id for s in served.store.submissions(form_id="damage_report")]
    assert sorted(ids) == ["uuid:h", "uuid:once", "uuid:twice"]


def test_openrosa_and_json_share_a_batch(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, helpers: Any, intake: Intake
) -> None:
    xmls = [f.read_bytes() for f in sorted(helpers.demo_instances.glob("*.xml"))[:3]]

    def odk(xml: bytes) -> Callable[[], httpx.Response]:
        return lambda: client.post("/submission", files={"xml_submission_file": ("submission.xml", xml, "text/xml")})

    queued = [odk(xmls[0]), lambda: client.post(URL, json=_payload("uuid:j", 1)), odk(xmls[1]), odk(xmls[2])]
    head, answers, sizes = _held(client, monkeypatch, odk(xmls[0]), queued)
    assert sizes == [1, 4]
    assert head.status_code == 201 and "Submission received" in head.text
    assert [r.status_code for r in answers] == [201] * 4
    assert "already received" in answers[0].text  # the same instance again, in the next batch
    assert len(intake.store.submissions(form_id="building_survey")) == 3
    assert [s.instance_id for s in intake.store.submissions(form_id="damage_report")] == ["uuid:j"]


@pytest.mark.parametrize("intake_backend", ["sqlite"], indirect=True)
def test_submit_many_gives_each_request_its_outcome(
    intake: Intake, tmp_path: Path, helpers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = helpers.write_photo_form(tmp_path / "private.xlsx", form_id="private_report", version="1")
    publish_form(intake.store, closed, settings=FormSettings(anonymous=False))
    reads: list[tuple[str, str | None]] = []
    original = intake.store.form

    def form(form_id: str, version: str | None = None) -> Any:
        reads.append((form_id, version))
        return original(form_id, version)

    monkeypatch.setattr(intake.store, "form", form)

    def request(form_id: str, payload: dict[str, object]) -> SubmissionRequest:
        return SubmissionRequest(parse_json_submission(form_id, payload), {}, ANONYMOUS, "10.0.0.1")

    outcomes = intake.submit_many(
        [
            request("damage_report", _payload("uuid:m-0")),
            request("no_such_form", _payload("uuid:m-1")),
            request("private_report", _payload("uuid:m-2")),
            request("damage_report", _payload("uuid:m-3", category="volcano")),
            request("damage_report", _payload("uuid:m-4", 4)),
            request("damage_report", {"instance_id": "uuid:m-5", "answers": {"category": "flooding", "severity": "x"}}),
        ]
    )
    kinds = [type(o) for o in outcomes]
    assert kinds == [PutResult, NotFoundError, AuthError, SubmissionError, PutResult, SubmissionError]
    assert sorted(reads) == [("damage_report", None), ("no_such_form", None), ("private_report", None)]
    assert [e.field for e in outcomes[3].problems] == ["category"]  # type: ignore[union-attr]
    assert sorted(e.field for e in outcomes[5].problems) == ["location", "severity"]  # type: ignore[union-attr]
    assert [s.instance_id for s in intake.store.submissions()] == ["uuid:m-0", "uuid:m-4"]
    intake.store.set_form_open("damage_report", open_=False, who="test")
    with pytest.raises(ConflictError, match="closed"):
        intake.submit(parse_json_submission("damage_report", _payload("uuid:m-6")), {}, principal=ANONYMOUS)


class _FakeIntake:
    """Answers each request with its instance id, or raises for ids starting with ``bad``; remembers batches."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.fail_call = False
        self.gate = threading.Event()

    def submit_many(self, requests: list[SubmissionRequest]) -> list[Any]:
        self.batches.append([r.incoming.instance_id for r in requests])
        self.gate.wait(10)
        if self.fail_call:
            raise RuntimeError("store went away")
        return [ValueError(r.incoming.instance_id) if r.incoming.instance_id.startswith("bad") else
                r.incoming.instance_id for r in requests]  # fmt: skip


def _request(instance_id: str) -> SubmissionRequest:
    return SubmissionRequest(parse_json_submission("f", _payload(instance_id)), {}, ANONYMOUS)


def test_batcher_takes_what_waited_and_settles_each_request() -> None:
    fake = _FakeIntake()
    batcher = SubmissionBatcher(fake, concurrency=1, max_batch=3)  # type: ignore[arg-type]

    async def main() -> list[Any]:
        first = asyncio.ensure_future(batcher.submit(_request("a")))
        await asyncio.sleep(0.05)  # the first batch (just "a") is running, held by the gate
        rest = [asyncio.ensure_future(batcher.submit(_request(i))) for i in ("b", "bad-c", "d", "e", "gone", "f")]
        await asyncio.sleep(0.01)
        rest[4].cancel()  # its client left before its turn: not handed to the store
        assert batcher.waiting == 6
        fake.gate.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert fake.batches == [["a"], ["b", "bad-c", "d"], ["e", "f"]]  # at most max_batch; "gone" skipped
    assert outcomes[:5] + outcomes[6:] == ["a", "b", outcomes[2], "d", "e", "f"]
    assert isinstance(outcomes[2], ValueError) and str(outcomes[2]) == "bad-c"
    assert isinstance(outcomes[5], asyncio.CancelledError)


def test_batcher_failure_of_the_call_reaches_every_request_of_that_batch_only() -> None:
    fake = _FakeIntake()
    fake.gate.set()
    batcher = SubmissionBatcher(fake, concurrency=2)  # type: ignore[arg-type]

    async def main() -> tuple[list[Any], Any]:
        fake.fail_call = True
        failed = await asyncio.gather(*(batcher.submit(_request(i)) for i in "xy"), return_exceptions=True)
        fake.fail_call = False
        return failed, await batcher.submit(_request("z"))

    failed, ok = asyncio.run(main())
    assert [type(e) for e in failed] == [RuntimeError, RuntimeError] and ok == "z"
    assert batcher.waiting == 0
