"""Helpers for room-call tests: users with tokens, rooms, a small client for the call API, and the PSTN simulator."""
from __future__ import annotations

from dataclasses import dataclass

import requests
from azure.communication.identity import CommunicationTokenScope, CommunicationUserIdentifier
from azure.communication.rooms import RoomParticipant


@dataclass
class CallUser:
    """A user with a token, talking to the room-call API like a calling client would."""

    raw_id: str
    token: str
    base_url: str
    ca_file: str

    def request(self, method: str, path: str, body=None) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.request(
            method, self.base_url + path, json=body, headers=headers, verify=self.ca_file, timeout=60
        )

    def join(self, room_id: str, body=None) -> requests.Response:
        return self.request("POST", f"/roomCalls/{room_id}/join", body)

    def me(self, room_id: str, action: str) -> requests.Response:
        return self.request("POST", f"/roomCalls/{room_id}/me/{action}")

    def on(self, room_id: str, participant_id: str, action: str) -> requests.Response:
        return self.request("POST", f"/roomCalls/{room_id}/participants/{participant_id}/{action}")

    def call(self, room_id: str) -> requests.Response:
        return self.request("GET", f"/roomCalls/{room_id}")


def new_user(stack, identity_client, scopes=(CommunicationTokenScope.VOIP,)) -> CallUser:
    user, token = identity_client.create_user_and_token(list(scopes))
    return CallUser(user.raw_id, token.token, stack.base_url, stack.ca_file)


def roster(*pairs) -> list[RoomParticipant]:
    return [RoomParticipant(communication_identifier=CommunicationUserIdentifier(u.raw_id), role=role) for u, role in pairs]


def participant_states(response: requests.Response) -> dict:
    return {p["participantId"]: (p["state"], p["isMuted"], p["isVideoOn"], p["isScreenSharing"]) for p in response.json()["participants"]}


def put_rule(stack, number: str, behaviour: str, ring_seconds: float = 0) -> str:
    """Make the PSTN simulator's `number` ring `ring_seconds`, then `behaviour` (answer, decline, ...); answers the number."""
    response = requests.put(
        f"{stack.pstn.url}/numbers/{number}", json={"behaviour": behaviour, "ringSeconds": ring_seconds}, timeout=30
    )
    assert response.status_code == 200, response.text
    return number


def phone(stack, number: str, action: str) -> requests.Response:
    """Act as the phone `number` on its call in progress (leave, muteMic, unmuteMic); the simulator relays the app's answer."""
    return requests.post(f"{stack.pstn.url}/phones/{number}/{action}", timeout=30)
