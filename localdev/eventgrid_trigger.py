"""Event Grid trigger adapter: hands events from the local topic to `@event_grid_trigger` functions as func.EventGridEvent."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import azure.functions as func

from .invocation import HostedFunction

log = logging.getLogger("localdev.eventgrid")


def parse_event_time(value: Any) -> datetime.datetime | None:
    """An RFC 3339 time as Event Grid writes it (7 fractional digits, which Python cannot read), or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None


def to_function_event(event: dict[str, Any]) -> func.EventGridEvent:
    """The binding value the Python worker builds from an Event Grid schema event."""
    return func.EventGridEvent(
        id=event["id"], data=event.get("data"), topic=event.get("topic") or "", subject=event.get("subject") or "",
        event_type=event["eventType"], event_time=parse_event_time(event.get("eventTime")),
        data_version=event.get("dataVersion") or "")


class EventGridTriggerAdapter:
    """Collects `eventGridTrigger` functions; the local topic calls `deliver` for subscriptions naming one.

    Nothing runs on its own: events arrive only from a topic running in the same process
    (`python -m localdev run` wires them together).
    """

    binding_type = "eventGridTrigger"

    def __init__(self) -> None:
        self.functions: dict[str, HostedFunction] = {}

    def add(self, function: HostedFunction) -> None:
        self.functions[function.name] = function
        log.info("%s: Event Grid trigger (subscribe with destination functionName %s)", function.name, function.name)

    async def deliver(self, function_name: str, event: dict[str, Any]) -> None:
        """Invoke the function with the event; raises if it fails (the topic then retries)."""
        function = self.functions.get(function_name)
        if function is None:
            raise LookupError(f"no Event Grid-triggered function named {function_name}")
        await function.invoke(to_function_event(event))

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
