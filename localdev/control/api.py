"""A client of the instance's real HTTP API, as an SDK would talk to it: every console action goes
through here, so it obeys the API's rules and answers with the API's own status and error body."""
from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from . import appstate

ROOMS_API_VERSION = "2025-03-13"
IDENTITY_API_VERSION = "2023-10-01"
# Tokens the console holds for acting users: an hour, re-issued a few minutes before they expire.
TOKEN_MINUTES = 60
_TOKEN_MARGIN_SECONDS = 300


@dataclass(frozen=True)
class Answer:
    """What the API answered: status and JSON body (None when empty), as received."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return self.status < 400

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body}


class AnteroomApi:
    """Signed (HMAC) and token (Bearer) requests to one instance; thread-safe, blocking."""

    def __init__(self, endpoint: str, access_key: str, ca_file: str, timeout: float = 60.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._key = base64.b64decode(access_key)
        self._ca_file = ca_file
        self._timeout = timeout
        self._session = requests.Session()
        self._tokens: dict[str, tuple[str, float]] = {}  # user id -> (token, expires at, epoch)
        self._lock = threading.Lock()

    # -- transport ------------------------------------------------------------------------------
    def _send(self, method: str, path: str, data: bytes, headers: dict[str, str]) -> Answer:
        response = self._session.request(method, self.endpoint + path, data=data, headers=headers,
                                         verify=self._ca_file, timeout=self._timeout)
        try:
            parsed = response.json() if response.content else None
        except ValueError:
            parsed = response.text
        return Answer(response.status_code, parsed)

    def signed(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Answer:
        data = b"" if body is None else json.dumps(body).encode()
        headers = appstate.sign(self._key, method, self.endpoint + path, data)
        if body is not None:
            headers["Content-Type"] = content_type
        return self._send(method, path, data, headers)

    def as_user(self, user_id: str, method: str, path: str, body: Any = None) -> Answer:
        """A room-call request with the user's token; a token refused (revoked meanwhile) is issued
        again once. An answer from issuing the token (say 404, the user was deleted) is returned as is."""
        for attempt in range(2):
            token = self._token(user_id, fresh=attempt > 0)
            if isinstance(token, Answer):
                return token
            headers = {"Authorization": f"Bearer {token}"}
            data = b""
            if body is not None:
                data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
            answer = self._send(method, path, data, headers)
            if answer.status != 401:
                return answer
        return answer

    def _token(self, user_id: str, fresh: bool = False) -> str | Answer:
        with self._lock:
            held = self._tokens.get(user_id)
        if held and not fresh and held[1] - time.time() > _TOKEN_MARGIN_SECONDS:
            return held[0]
        answer = self.signed("POST", f"/identities/{quote(user_id, safe='')}/:issueAccessToken"
                                     f"?api-version={IDENTITY_API_VERSION}",
                             {"scopes": ["voip"], "expiresInMinutes": TOKEN_MINUTES})
        if not answer.ok:
            return answer
        with self._lock:
            self._tokens[user_id] = (answer.body["token"], time.time() + TOKEN_MINUTES * 60)
        return answer.body["token"]

    def forget_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    # -- the operations the console offers ---------------------------------------------------------
    def create_user(self) -> Answer:
        return self.signed("POST", f"/identities?api-version={IDENTITY_API_VERSION}", {})

    def delete_user(self, user_id: str) -> Answer:
        return self.signed("DELETE", f"/identities/{quote(user_id, safe='')}?api-version={IDENTITY_API_VERSION}")

    def create_room(self, body: dict[str, Any]) -> Answer:
        return self.signed("POST", f"/rooms?api-version={ROOMS_API_VERSION}", body)

    def update_room(self, room_id: str, body: dict[str, Any]) -> Answer:
        return self.signed("PATCH", f"/rooms/{quote(room_id, safe='')}?api-version={ROOMS_API_VERSION}", body,
                           "application/merge-patch+json")

    def delete_room(self, room_id: str) -> Answer:
        return self.signed("DELETE", f"/rooms/{quote(room_id, safe='')}?api-version={ROOMS_API_VERSION}")

    def update_participants(self, room_id: str, participants: dict[str, Any]) -> Answer:
        return self.signed("PATCH", f"/rooms/{quote(room_id, safe='')}/participants?api-version={ROOMS_API_VERSION}",
                           {"participants": participants}, "application/merge-patch+json")

    def join(self, room_id: str, user_id: str) -> Answer:
        return self.as_user(user_id, "POST", f"/roomCalls/{quote(room_id, safe='')}/join")

    def act_self(self, room_id: str, user_id: str, action: str) -> Answer:
        return self.as_user(user_id, "POST", f"/roomCalls/{quote(room_id, safe='')}/me/{quote(action, safe='')}")

    def act_on(self, room_id: str, user_id: str, participant_id: str, action: str) -> Answer:
        return self.as_user(user_id, "POST", f"/roomCalls/{quote(room_id, safe='')}/participants/"
                                             f"{quote(participant_id, safe='')}/{quote(action, safe='')}")

    def dial_out(self, room_id: str, user_id: str, phone_number: str, caller_id_number: str) -> Answer:
        return self.as_user(user_id, "POST", f"/roomCalls/{quote(room_id, safe='')}/dialOut",
                            {"phoneNumber": phone_number, "callerIdNumber": caller_id_number})

    def replay(self, body: dict[str, Any]) -> Answer:
        return self.signed("POST", "/callEvents:replay", body)
