"""What the console shows, gathered into sections (each sent to the page when it changes).

Reads, never writes: rooms, rosters, calls, Call Automation connections and callbacks and the
operation log from the app's storage (localdev/control/appstate.py, so reading leaves no requests in
the operation log); Event Grid subscriptions and deliveries from the topic object; phones from the
PSTN simulator; error codes and non-Rooms requests from the host's answers.
"""
from __future__ import annotations

import collections
import datetime
import json
import time
from typing import Any

from aiohttp import web

from ..control import appstate
from ..eventgrid import EventGridTopic
from ..pstn import PstnSimulator

KEPT_DELIVERIES = 500
SHOWN_DELIVERIES = 200
KEPT_REQUESTS = 300
SHOWN_REQUESTS = 100
# The Rooms API's functions: the operation log records these, so the console shows its rows.
ROOMS_FUNCTIONS = frozenset({"CreateRoom", "ListRooms", "GetRoom", "UpdateRoom", "DeleteRoom",
                             "ListParticipants", "UpdateParticipants"})
_OUTCOME_STATUS = {"Succeeded": "delivered", "Retrying": "retrying", "Failed": "failed",
                   "DeadLettered": "deadLettered", "Dropped": "dropped"}


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def _epoch(text: str | None) -> float:
    if not text:
        return 0.0
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


class DeliveryTracker:
    """Every delivery of the topic since start (the newest KEPT_DELIVERIES): state, payload, last answer.

    Fed by the topic's delivery log, on the topic's loop; the payload comes from the delivery while
    it is still pending (each log line is written before a delivery leaves the pending set).
    """

    def __init__(self, topic: EventGridTopic) -> None:
        self.topic = topic
        self.records: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        topic.log.listeners.append(self.observe)

    def observe(self, entry: dict[str, Any]) -> None:
        if entry.get("kind") != "delivery" or not entry.get("deliveryId"):
            return
        record = self.records.get(entry["deliveryId"])
        if record is None:
            record = self.records[entry["deliveryId"]] = {
                "deliveryId": entry["deliveryId"], "subscription": entry.get("subscription"),
                "eventId": entry.get("eventId"), "eventType": entry.get("eventType"), "payload": None,
                "attempts": 0, "lastStatusCode": None, "lastAnswer": None, "lastError": None,
                "nextAttemptAt": None, "reason": None, "publishedAt": None,
            }
            while len(self.records) > KEPT_DELIVERIES:
                self.records.popitem(last=False)
        pending = self.topic.pending_delivery(entry["deliveryId"])
        if pending is not None:
            record["payload"] = pending.event
            record["publishedAt"] = pending.publish_time
        outcome = entry.get("outcome")
        record["state"] = _OUTCOME_STATUS.get(outcome, str(outcome))
        record["time"] = entry.get("time")
        record["attempts"] = entry.get("attempt", record["attempts"])
        if outcome in ("DeadLettered", "Dropped"):
            record["reason"] = entry.get("reason")
        else:
            record["lastStatusCode"] = entry.get("statusCode")
            record["lastAnswer"] = entry.get("answer")
            record["lastError"] = entry.get("error")
        record["nextAttemptAt"] = _iso(entry.get("nextAttemptAt")) if outcome == "Retrying" else None
        self.records.move_to_end(entry["deliveryId"])

    def clear(self) -> None:
        self.records.clear()

    def deliveries(self) -> list[dict[str, Any]]:
        """Newest first; deliveries published but not attempted yet are `pending`."""
        shown = {key: dict(value) for key, value in self.records.items()}
        for pending in self.topic.pending_deliveries():
            if pending.delivery_id not in shown:
                shown[pending.delivery_id] = {
                    "deliveryId": pending.delivery_id, "subscription": pending.subscription,
                    "eventId": pending.event_id, "eventType": pending.event_type, "payload": pending.event,
                    "state": "pending", "attempts": pending.attempts, "time": pending.publish_time,
                    "publishedAt": pending.publish_time, "nextAttemptAt": _iso(pending.next_attempt_at),
                    "lastStatusCode": pending.last_status, "lastAnswer": pending.last_answer, "lastError": None,
                    "reason": None,
                }
        return sorted(shown.values(), key=lambda d: _epoch(d.get("time")), reverse=True)[:SHOWN_DELIVERIES]


class RequestTap:
    """The host's answers, newest KEPT_REQUESTS: operation, status, duration, error code, MS-CV."""

    def __init__(self) -> None:
        self.entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=KEPT_REQUESTS)

    def observe(self, function: str, request: web.BaseRequest, response: web.StreamResponse, seconds: float) -> None:
        error_code = response.headers.get("x-ms-error-code")
        body = getattr(response, "body", None)
        if response.status >= 400 and not error_code and isinstance(body, (bytes, bytearray)):
            try:
                error_code = json.loads(body).get("error", {}).get("code")
            except (ValueError, AttributeError):
                error_code = None
        self.entries.append({
            "t": time.time(), "operation": function, "method": request.method, "path": request.path,
            "status": response.status, "durationMs": round(seconds * 1000, 2), "errorCode": error_code,
            "correlationId": response.headers.get("MS-CV"),
        })

    def clear(self) -> None:
        self.entries.clear()


def request_rows(operation_log: list[dict[str, Any]], tap: RequestTap) -> list[dict[str, Any]]:
    """The operation log's records (Rooms API) with the error code each answer carried, and the
    other APIs' requests as the host answered them; newest first."""
    by_correlation = {e["correlationId"]: e for e in tap.entries if e.get("correlationId")}
    rows = []
    for record in operation_log:
        answered = by_correlation.get(record.get("CorrelationId"))
        rows.append({
            "t": _epoch(record.get("TimeGenerated")), "time": record.get("TimeGenerated"), "source": "operation log",
            "operation": record.get("OperationName"), "version": record.get("OperationVersion"),
            "status": record.get("ResultSignature"), "result": record.get("ResultType"),
            "durationMs": record.get("DurationMs"), "errorCode": answered.get("errorCode") if answered else None,
            "roomId": record.get("RoomId"), "correlationId": record.get("CorrelationId"),
        })
    for entry in tap.entries:
        if entry["operation"] in ROOMS_FUNCTIONS:
            continue  # the operation log has it (within a fraction of a second)
        rows.append({"t": entry["t"], "time": _iso(entry["t"]), "source": "host", "operation": entry["operation"],
                     "version": None, "status": entry["status"],
                     "result": "Succeeded" if entry["status"] < 400 else "Failed", "durationMs": entry["durationMs"],
                     "errorCode": entry["errorCode"], "roomId": None, "correlationId": entry["correlationId"],
                     "path": entry["path"]})
    rows.sort(key=lambda r: r["t"], reverse=True)
    return rows[:SHOWN_REQUESTS]


def _guarded(read, *args) -> Any:
    try:
        return read(*args)
    except Exception as error:  # storage down, app settings missing: shown, not fatal
        return {"error": f"{type(error).__name__}: {error}"}


def storage_sections(tap: RequestTap, topic: EventGridTopic | None) -> dict[str, Any]:
    """The sections read from storage and files (run on a worker thread)."""
    operation_log = _guarded(appstate.operations)
    return {
        "rooms": _guarded(appstate.rooms),
        "identities": _guarded(appstate.identities),
        "callbacks": _guarded(appstate.callbacks),
        "requests": request_rows(operation_log, tap) if isinstance(operation_log, list) else operation_log,
        "deadLetters": _guarded(topic.store.dead_letters) if topic is not None else [],
    }


def loop_sections(tracker: DeliveryTracker | None, topic: EventGridTopic | None,
                  pstn: PstnSimulator | None) -> dict[str, Any]:
    """The sections read from objects living on the event loop (topic) or guarded by a lock (PSTN)."""
    eventgrid: dict[str, Any] = {"running": topic is not None, "subscriptions": [], "deliveries": []}
    if topic is not None and tracker is not None:
        eventgrid["subscriptions"] = [
            {"name": s.name, "endpointType": s.endpoint_type, "destination": s.endpoint,
             "eventDeliverySchema": s.delivery_schema, "state": topic.validation.get(s.name),
             "includedEventTypes": list(s.included_event_types) if s.included_event_types is not None else None,
             "subjectBeginsWith": s.subject_begins_with, "subjectEndsWith": s.subject_ends_with,
             "maxDeliveryAttempts": s.max_delivery_attempts, "deadLetter": s.dead_letter,
             "pendingDeliveries": topic.pending_count(s.name)}
            for s in topic.subscriptions.values()]
        eventgrid["deliveries"] = tracker.deliveries()
    phones = pstn.snapshot() if pstn is not None else {"calls": [], "rules": {}}
    phones["running"] = pstn is not None
    return {"eventgrid": eventgrid, "phones": phones}
