"""The answer check in the tests' HTTP clients (tests/support/answers.py) refuses answers off the document.

A small server stands in for the app and answers what the app must never answer; the check, given
the document the app serves, must catch each of them through both hooks (requests, aiohttp) and
let a right answer through, so it cannot be a no-op.
"""
from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import pytest
import requests

from functions.openapi import build_document
from tests.support import answers
from tests.support.answers import AnswerCheck, AnswerMismatch

ROOM = "99" + "1" * 15
MS_CV = "A" * 22


def _call(leave_reason: str) -> dict:
    participant = {
        "participantId": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "identifier": {"kind": "communicationUser", "rawId": "8:acs:one", "communicationUser": {"id": "8:acs:one"}},
        "role": "Attendee", "state": "disconnected", "isMuted": False, "isVideoOn": False, "isScreenSharing": False,
        "joinedAt": "2026-01-01T10:00:00+00:00", "leftAt": "2026-01-01T10:05:00+00:00", "leaveReason": leave_reason,
    }
    return {
        "serverCallId": "abc_DEF-123", "roomId": ROOM, "state": "ended", "startedAt": "2026-01-01T10:00:00+00:00",
        "correlationId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "participants": [participant],
        "endedAt": "2026-01-01T10:05:00+00:00", "endReason": "lastParticipantLeft",
    }


NO = {"error": {"code": "Teapot", "message": "No."}}
# (method, path) -> (status, body, extra headers) the stand-in answers
ANSWERS_OF_THE_STAND_IN = {
    ("GET", f"/roomCalls/{ROOM}"): (200, _call("hungUp"), {}),  # as documented
    ("GET", f"/roomCalls/{'9' * 17}"): (200, _call("teleported"), {}),  # a leaveReason no enum has
    ("POST", f"/roomCalls/{ROOM}/join"): (418, NO, {}),  # a status never documented
    # Requests the document has no operation for: a method a path lacks, a path it lacks.
    ("TRACE", "/rooms"): (405, NO, {"Allow": "GET, POST"}),
    ("PUT", "/rooms"): (200, NO, {}),
    ("GET", "/nowhere"): (404, NO, {}),
}


class _StandIn(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        status, body, headers = ANSWERS_OF_THE_STAND_IN[self.command, self.path]
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("MS-CV", MS_CV)
        self.send_header("x-ms-error-code", "Teapot")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_TRACE = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def check(monkeypatch):
    """The hooks' check, for this test alone: what it provokes stays out of the session's counts."""
    own = AnswerCheck()
    monkeypatch.setattr(answers, "ANSWERS", own)
    return own


@pytest.fixture
def stand_in(check):
    """A server at a base URL the check takes for the app's, with the app's own document."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    check.serve(base, document=build_document())
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()


def test_requests_hook_passes_a_documented_answer_and_catches_the_rest(stand_in, check):
    assert requests.get(f"{stand_in}/roomCalls/{ROOM}", timeout=10).json()["participants"][0]["leaveReason"] == "hungUp"
    assert check.take_pending() == []
    # The caller still gets the body the hook read.
    assert requests.get(f"{stand_in}/roomCalls/{'9' * 17}", timeout=10).json()["participants"][0]["leaveReason"] == "teleported"
    assert requests.post(f"{stand_in}/roomCalls/{ROOM}/join", timeout=10).status_code == 418
    caught = check.take_pending()
    assert check.validated == 3
    assert len(caught) == 2, caught
    assert "teleported" in caught[0] and "participants/0/leaveReason" in caught[0]
    assert "answered 418" in caught[1] and "Unknown response http status: 418" in caught[1]


def test_aiohttp_hook_catches_an_undocumented_enum_value(stand_in, check):

    async def read() -> dict:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{stand_in}/roomCalls/{'9' * 17}") as response:
                return await response.json()

    assert asyncio.run(read())["participants"][0]["leaveReason"] == "teleported"
    caught = check.take_pending()
    assert len(caught) == 1 and "teleported" in caught[0], caught


def test_a_mismatch_fails_the_running_test(stand_in, check):
    requests.get(f"{stand_in}/roomCalls/{'9' * 17}", timeout=10)
    with pytest.raises(AnswerMismatch, match="do not match its OpenAPI document") as raised:
        check.fail_on_pending()
    assert "teleported" in str(raised.value)
    check.fail_on_pending()  # reported once: nothing left for the next test


def test_tooling_is_skipped_by_base_url_and_other_origins_are_counted(stand_in, check):
    check.forget(stand_in)
    requests.post(f"{stand_in}/roomCalls/{ROOM}/join", timeout=10)
    assert check.other_origins == {stand_in: 1}
    check.tooling(stand_in, "stand-in tooling")
    requests.post(f"{stand_in}/roomCalls/{ROOM}/join", timeout=10)
    assert (check.validated, check.skipped) == (0, {"stand-in tooling": 1})
    assert check.take_pending() == []


def test_answers_to_requests_without_an_operation_follow_the_host_rules(stand_in, check):
    assert requests.request("TRACE", f"{stand_in}/rooms", timeout=10).status_code == 405
    assert requests.get(f"{stand_in}/nowhere", timeout=10).status_code == 404
    assert check.take_pending() == []
    requests.put(f"{stand_in}/rooms", timeout=10)
    [caught] = check.take_pending()
    assert "PUT" in caught and "must answer 405 with Allow ['GET', 'POST']" in caught
