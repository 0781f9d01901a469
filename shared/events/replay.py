"""Replays stored call events of a call, a room or a time range straight to one webhook."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import requests

from .model import OutgoingEvent, envelope
from ..core.errors import InvalidRequest
from .outbox import Outbox

CONTENT_TYPES = {"EventGridSchema": "application/json", "CloudEventSchemaV1_0": "application/cloudevents-batch+json"}


@dataclass(frozen=True)
class ReplayResult:
    replayed: int
    failed: int
    last_status: int | None


def replay(
    outbox: Outbox, resource: str, endpoint: str, schema: str, *, room_id: str | None = None,
    server_call_id: str | None = None, since: datetime | None = None, until: datetime | None = None,
    timeout: float = 30.0,
) -> ReplayResult:
    """Deliver the matching events, one per POST like Event Grid, with their original ids.

    Raises InvalidRequest when no selector is given, the schema is unknown or the endpoint is not http(s).
    A webhook refusing one event does not stop the others; the result counts both.
    """
    if schema not in CONTENT_TYPES:
        raise InvalidRequest(f"schema must be one of {', '.join(CONTENT_TYPES)}.", target="schema")
    if not endpoint.startswith(("http://", "https://")):
        raise InvalidRequest("endpoint must be an http(s) URL.", target="endpoint")
    if room_id is None and server_call_id is None and since is None:
        raise InvalidRequest("Name a roomId, a serverCallId or a time range (from, until).")
    events: list[OutgoingEvent] = outbox.history(room_id=room_id, server_call_id=server_call_id, since=since, until=until)
    replayed = failed = 0
    status = None
    with requests.Session() as session:
        for event in events:
            body = json.dumps([envelope(event, schema, resource)])
            headers = {"Content-Type": CONTENT_TYPES[schema], "aeg-event-type": "Notification", "aeg-delivery-count": "0"}
            try:
                status = session.post(endpoint, data=body, headers=headers, timeout=timeout).status_code
            except requests.RequestException:
                status = None
            if status is not None and 200 <= status < 300:
                replayed += 1
            else:
                failed += 1
    return ReplayResult(replayed, failed, status)
