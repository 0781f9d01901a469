"""What the local topic says to a webhook: the two validation handshakes and one notification."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp

from shared.events.model import webhook_request

from .delivery import isoformat, utc_now
from .subscriptions import Subscription

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
ABUSE_PROTECTION_ORIGIN = "eventgrid.azure.net"
ACTIVE = "active"
AWAITING_VALIDATION_URL = "awaiting a GET of the validationUrl"
# How much of a subscriber's answer body is kept with a delivery (for the console and the log).
ANSWER_KEPT_CHARACTERS = 2000


async def event_grid_handshake(session: aiohttp.ClientSession, subscription: Subscription, code: str, *,
                               topic: str, validation_url: str, timeout: float) -> str:
    """POST a SubscriptionValidationEvent; active when the answer echoes the code.

    A 200 without a validationResponse leaves the manual route open: a GET of the validation URL.
    """
    event = [{
        "id": str(uuid.uuid4()), "topic": topic, "subject": "", "eventType": VALIDATION_EVENT,
        "eventTime": isoformat(utc_now()), "metadataVersion": "1", "dataVersion": "2",
        "data": {"validationCode": code, "validationUrl": validation_url},
    }]
    headers = {"Content-Type": "application/json; charset=utf-8", "aeg-event-type": "SubscriptionValidation",
               "aeg-subscription-name": subscription.name.upper(), "aeg-delivery-count": "0",
               "aeg-data-version": "2", "aeg-metadata-version": "1"}
    async with session.post(subscription.endpoint, data=json.dumps(event), headers=headers,
                            timeout=aiohttp.ClientTimeout(total=timeout)) as response:
        text = await response.text()
        if response.status != 200:  # Event Grid does not take a 202 here either
            return f"failed: the validation request got HTTP {response.status}"
    try:
        answer = json.loads(text) if text.strip() else {}
    except ValueError:
        answer = {}
    if isinstance(answer, dict) and answer.get("validationResponse") == code:
        return ACTIVE
    if isinstance(answer, dict) and "validationResponse" in answer:
        return "failed: the validationResponse does not match the validationCode"
    return AWAITING_VALIDATION_URL


async def abuse_protection_handshake(session: aiohttp.ClientSession, subscription: Subscription,
                                     timeout: float) -> str:
    """CloudEvents webhook validation: OPTIONS with WebHook-Request-Origin, answered with WebHook-Allowed-Origin."""
    headers = {"WebHook-Request-Origin": ABUSE_PROTECTION_ORIGIN, "WebHook-Request-Rate": "120"}
    async with session.options(subscription.endpoint, headers=headers,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as response:
        allowed = response.headers.get("WebHook-Allowed-Origin", "")
        if response.status != 200:
            return f"failed: the OPTIONS request got HTTP {response.status}"
    if allowed.strip() in ("*", ABUSE_PROTECTION_ORIGIN):
        return ACTIVE
    return "failed: WebHook-Allowed-Origin does not allow " + ABUSE_PROTECTION_ORIGIN


async def post_notification(session: aiohttp.ClientSession, subscription: Subscription, event: dict[str, Any],
                            earlier_attempts: int, timeout: float) -> tuple[int | None, str | None, str | None]:
    """One delivery attempt of one event: (HTTP status, None, the start of the answer's body) or
    (None, why it failed, None)."""
    body, headers = webhook_request(event, subscription.delivery_schema)
    headers.update({"aeg-subscription-name": subscription.name.upper(), "aeg-delivery-count": str(earlier_attempts)})
    try:
        async with session.post(subscription.endpoint, data=body, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            answer = (await response.read()).decode("utf-8", errors="replace")
            return response.status, None, answer[:ANSWER_KEPT_CHARACTERS]
    except asyncio.TimeoutError:
        return None, "TimedOut", None
    except aiohttp.ClientError as error:
        return None, f"{type(error).__name__}: {error}", None
