"""Replays stored call events of a call, a room or a time range straight to one webhook."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import requests

from .model import DELIVERY_SCHEMAS, OutgoingEvent, envelope, webhook_request
from ..core.errors import InvalidRequest
from .outbox import Outbox


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
    """Deliver the matching events in commit order, one per POST in the shape Event Grid delivers
    (`webhook_request`), with their original ids. No validation handshake comes first: whoever
    asks for a replay (HMAC-signed) names the endpoint.

    Raises InvalidRequest when no selector is given, the schema is unknown or the endpoint is not http(s).
    A webhook refusing one event does not stop the others; the result counts both.
    """
    if schema not in DELIVERY_SCHEMAS:
        raise InvalidRequest(f"schema must be one of {', '.join(DELIVERY_SCHEMAS)}.", target="schema")
    if not endpoint.startswith(("http://", "https://")):
        raise InvalidRequest("endpoint must be an http(s) URL.", target="endpoint")
    if room_id is None and server_call_id is None and since is None:
        raise InvalidRequest("Name a roomId, a serverCallId or a time range (from, until).")
    events: list[OutgoingEvent] = outbox.history(room_id=room_id, server_call_id=server_call_id, since=since, until=until)
    replayed = failed = 0
    status = None
    with requests.Session() as session:
        for event in events:
            body, headers = webhook_request(envelope(event, schema, resource), schema)
            headers["aeg-delivery-count"] = "0"
            try:
                status = session.post(endpoint, data=body, headers=headers, timeout=timeout).status_code
            except requests.RequestException:
                status = None
            if status is not None and 200 <= status < 300:
                replayed += 1
            else:
                failed += 1
    return ReplayResult(replayed, failed, status)
