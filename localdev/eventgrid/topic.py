"""The local Event Grid custom topic: an aiohttp server that accepts events and delivers them to subscriptions."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import ssl
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
from aiohttp import web

from ..certs import DevCertificate
from ..files import write_atomically
from ..host import LOOPBACK, bind_loopback_socket, quiet_malformed_request_logs, server_ssl_context
from ..identity import LOCAL_TOKEN_SECRET
from .delivery import (NON_RETRIABLE_STATUSES, SUCCESS_STATUSES, DeliveryLog, DeliveryStore, PendingDelivery,
                       isoformat, retry_delay, utc_now)
from .publishing import EVENT_GRID_SCHEMA, MAX_REQUEST_BYTES, PublishError, authenticate, bad_request, parse_batch
from .subscriptions import (Subscription, SubscriptionError, cloud_event_to_event_grid, convert,
                            ensure_subscriptions_file, load_subscriptions, write_subscriptions)
from .webhooks import (ACTIVE, AWAITING_VALIDATION_URL, abuse_protection_handshake, event_grid_handshake,
                       post_notification)

log = logging.getLogger("localdev.eventgrid")

TOPIC_PATH = "/api/events"
# A failed webhook validation is tried again this often (and whenever the file changes), for as
# long as Event Grid keeps a subscription awaiting validation before failing it: after that it
# stays failed until the file changes or the topic restarts.
REVALIDATE_SECONDS = 5.0
REVALIDATE_FOR_SECONDS = 600.0

# Delivers one event (Event Grid schema dict) to an Event Grid-triggered function of a served app.
FunctionInvoker = Callable[[str, dict[str, Any]], Awaitable[None]]


async def _read_limited(request: web.Request, limit: int) -> bytes:
    """The body, or 400 as soon as it passes `limit` (before reading the rest)."""
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise bad_request("RequestTooLarge", f"The request is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


class EventGridTopic:
    """One custom topic on 127.0.0.1 with its subscriptions, state under `state_dir`.

    `time_scale` multiplies the retry schedule and the time to live (0.001 turns Event Grid's
    10 s first retry into 10 ms). Start and stop it on a running event loop, or use TopicThread.
    """

    def __init__(self, state_dir: str | os.PathLike[str], *, key: str, secondary_key: str | None = None,
                 port: int = 0, certificate: DevCertificate | None = None, ca_file: str | None = None,
                 time_scale: float = 1.0, subscriptions_file: str | os.PathLike[str] | None = None,
                 function_invoker: FunctionInvoker | None = None, concurrency: int = 32,
                 response_timeout: float = 30.0, reload_interval: float = 1.0,
                 revalidate_interval: float = REVALIDATE_SECONDS, revalidate_for: float = REVALIDATE_FOR_SECONDS,
                 resource_id: str | None = None, token_secret: bytes = LOCAL_TOKEN_SECRET) -> None:
        self.token_secret = token_secret  # Entra tokens of localdev/identity.py signed with it are accepted
        self.state_dir = Path(state_dir).resolve()
        self.keys = [k for k in (key, secondary_key) if k]
        self.port = port
        self.certificate = certificate
        self.time_scale = time_scale
        self.subscriptions_file = Path(subscriptions_file or self.state_dir / "subscriptions.json").resolve()
        self.function_invoker = function_invoker
        self.concurrency = concurrency
        self.response_timeout = response_timeout
        self.reload_interval = reload_interval
        self.revalidate_interval = revalidate_interval
        self.revalidate_for = revalidate_for
        self.resource_id = resource_id or ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/"
                                           "localdev/providers/Microsoft.EventGrid/topics/anteroom-local")
        self.store = DeliveryStore(self.state_dir)
        self.log = DeliveryLog(self.state_dir / "deliveries.jsonl")
        self.subscriptions: dict[str, Subscription] = {}
        self.validation: dict[str, str] = {}  # name -> "active" | "validating" | "failed: ..."
        self._validated_file = self.state_dir / "validated.json"
        self._pending_codes: dict[str, str] = {}  # name -> code awaiting a GET of the validation URL
        self._ca_file = ca_file or (str(certificate.ca_cert) if certificate else None)
        self._pending: dict[str, PendingDelivery] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        # First attempts go out one at a time per subscription, in publish order (see _enqueue).
        self._lanes: dict[str, collections.deque[str]] = {}
        self._in_lane: dict[str, str] = {}  # subscription -> its first attempt under way
        self._last_order = 0
        self._ready: asyncio.Queue[str] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._file_stamp: tuple[float, int] | None = None
        self._last_validation_try = 0.0
        self._revalidate_until = 0.0
        self.base_url = ""

    # -- addresses ---------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """The topic endpoint publishers use (like https://<topic>.<region>-1.eventgrid.azure.net/api/events)."""
        return self.base_url + TOPIC_PATH

    @property
    def key(self) -> str:
        return self.keys[0]

    # -- life cycle --------------------------------------------------------------------------
    async def start(self) -> "EventGridTopic":
        ensure_subscriptions_file(self.subscriptions_file)
        # Webhooks may be local (dev CA) or public (system CAs): trust both.
        context = ssl.create_default_context()
        if self._ca_file:
            context.load_verify_locations(cafile=self._ca_file)
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=self.concurrency * 2))
        self._ready = asyncio.Queue()
        # Known subscriptions are active before the first publish can arrive; new webhooks are
        # validated once listening (their validation URL points here).
        await self.reload_subscriptions(validate=False)
        for delivery in sorted(self.store.load(), key=lambda d: d.order):
            self._track(delivery)
        application = web.Application()  # the publish body is read through _read_limited, never read()
        application.router.add_post(TOPIC_PATH, self._publish)
        application.router.add_get("/deliveries", self._list_deliveries)
        application.router.add_get("/subscriptions", self._list_subscriptions)
        application.router.add_get("/deadletters", self._list_dead_letters)
        application.router.add_get("/validate", self._validate_by_url)
        quiet_malformed_request_logs()  # publishers send aeg-sas-key and SharedAccessSignature headers
        self._runner = web.AppRunner(application, access_log=None)
        await self._runner.setup()
        sock = bind_loopback_socket(self.port)
        self.port = sock.getsockname()[1]  # a restart comes back on the same port
        context = server_ssl_context(self.certificate) if self.certificate else None
        await web.SockSite(self._runner, sock, ssl_context=context).start()
        self.base_url = f"{'https' if context else 'http'}://{LOOPBACK}:{self.port}"
        await self._validate_inactive()
        self._tasks = [asyncio.create_task(self._worker(), name=f"eventgrid-delivery-{i}")
                       for i in range(self.concurrency)]
        self._tasks.append(asyncio.create_task(self._watch_subscriptions(), name="eventgrid-subscriptions"))
        log.info("Event Grid topic %s (%d pending deliveries)", self.endpoint, len(self._pending))
        return self

    async def stop(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._pending.clear()
        self._lanes.clear()
        self._in_lane.clear()

    # -- subscriptions ----------------------------------------------------------------------
    def _stamp(self) -> tuple[float, int] | None:
        try:
            status = self.subscriptions_file.stat()
        except FileNotFoundError:
            return None
        return status.st_mtime_ns, status.st_size

    def _validated(self) -> dict[str, dict[str, str]]:
        try:
            return json.loads(self._validated_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}

    def _remember_validated(self, subscription: Subscription) -> None:
        validated = self._validated()
        validated[subscription.name] = {"endpoint": subscription.endpoint, "schema": subscription.delivery_schema}
        write_atomically(self._validated_file, json.dumps(validated, indent=2).encode(), 0o644)

    async def reload_subscriptions(self, validate: bool = True) -> None:
        """Re-read the file; webhooks new or changed since their last handshake are validated again."""
        self._file_stamp = self._stamp()
        try:
            subscriptions = load_subscriptions(self.subscriptions_file)
        except (SubscriptionError, OSError) as error:
            log.error("keeping the previous subscriptions: %s", error)
            return
        validated = self._validated()
        self.subscriptions = subscriptions
        self._revalidate_until = time.monotonic() + self.revalidate_for
        self.validation = {}
        for subscription in subscriptions.values():
            known = validated.get(subscription.name)
            if not subscription.is_webhook or known == {"endpoint": subscription.endpoint,
                                                        "schema": subscription.delivery_schema}:
                self.validation[subscription.name] = ACTIVE
            else:
                self.validation[subscription.name] = "validating"
        if validate:
            await self._validate_inactive()

    async def _validate_inactive(self) -> None:
        self._last_validation_try = time.monotonic()
        waiting = [s for s in self.subscriptions.values() if self.validation.get(s.name) != ACTIVE
                   and s.name not in self._pending_codes]
        await asyncio.gather(*(self._handshake(s) for s in waiting))

    async def _watch_subscriptions(self) -> None:
        while True:
            await asyncio.sleep(self.reload_interval)
            try:
                now = time.monotonic()
                if self._stamp() != self._file_stamp:
                    await self.reload_subscriptions()
                elif self._last_validation_try + self.revalidate_interval < now < self._revalidate_until and \
                        any(state != ACTIVE for state in self.validation.values()):
                    await self._validate_inactive()
            except Exception:
                log.exception("reloading subscriptions failed")

    async def set_subscriptions(self, entries: list[dict[str, Any]]) -> dict[str, str]:
        """Write the subscriptions file and apply it now; returns each subscription's state."""
        write_subscriptions(self.subscriptions_file, entries)
        await self.reload_subscriptions()
        return dict(self.validation)

    def is_active(self, name: str) -> bool:
        return self.validation.get(name) == ACTIVE

    async def _handshake(self, subscription: Subscription) -> None:
        assert self._session is not None
        started = time.monotonic()
        try:
            if subscription.delivery_schema == EVENT_GRID_SCHEMA:
                code = str(uuid.uuid4()).upper()
                state = await event_grid_handshake(
                    self._session, subscription, code, topic=self.resource_id, timeout=self.response_timeout,
                    validation_url=f"{self.base_url}/validate?subscription={subscription.name}&code={code}")
                if state == AWAITING_VALIDATION_URL:
                    self._pending_codes[subscription.name] = code
            else:
                state = await abuse_protection_handshake(self._session, subscription, self.response_timeout)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
            state = f"failed: {type(error).__name__}: {error}"
        self.validation[subscription.name] = state
        if state == ACTIVE:
            self._remember_validated(subscription)
        else:
            log.warning("subscription %s is not active: %s", subscription.name, state)
        self.log.write(subscription=subscription.name, kind="validation", destination=subscription.endpoint,
                       outcome=state, durationMs=round((time.monotonic() - started) * 1000, 2))

    async def _validate_by_url(self, request: web.Request) -> web.Response:
        name, code = request.query.get("subscription", ""), request.query.get("code", "")
        subscription = self.subscriptions.get(name)
        if subscription is None or self._pending_codes.get(name) != code:
            return web.json_response({"error": {"code": "NotFound", "message": "Unknown or used validation code."}},
                                     status=404)
        del self._pending_codes[name]
        self.validation[name] = ACTIVE
        self._remember_validated(subscription)
        self.log.write(subscription=name, kind="validation", destination=subscription.endpoint,
                       outcome="active (validation URL)")
        return web.Response(text="Webhook successfully validated as a subscription endpoint.")

    # -- publishing -------------------------------------------------------------------------
    async def _publish(self, request: web.Request) -> web.Response:
        try:
            authenticate(request.headers, self.keys, topic_path=TOPIC_PATH, request_host=request.host,
                         now=utc_now(), token_secret=self.token_secret)
            events = parse_batch(await _read_limited(request, MAX_REQUEST_BYTES),
                                 request.headers.get("Content-Type", ""))
        except PublishError as error:
            return web.json_response(error.body, status=error.status)
        published = utc_now()
        deliveries = [
            PendingDelivery.new(subscription.name, convert(event, subscription.delivery_schema, self.resource_id),
                                event.id, event.event_type, published, subscription.ttl_minutes * 60 * self.time_scale,
                                order=self._next_order())
            for event in events for subscription in self.subscriptions.values()
            if self.is_active(subscription.name) and subscription.matches(event)
        ]
        # Durable before the 200: a topic stopped or killed after answering still delivers these.
        await asyncio.get_running_loop().run_in_executor(None, self.store.save_all, deliveries)
        for delivery in deliveries:
            self._track(delivery)
        return web.Response(status=200)

    # -- delivery ---------------------------------------------------------------------------
    def _next_order(self) -> int:
        """Increasing across the deliveries of a run and across restarts (nanoseconds, never repeated)."""
        self._last_order = max(self._last_order + 1, time.time_ns())
        return self._last_order

    def _track(self, delivery: PendingDelivery) -> None:
        self._pending[delivery.delivery_id] = delivery
        self._schedule(delivery)

    def _schedule(self, delivery: PendingDelivery) -> None:
        wake = min(delivery.next_attempt_at, delivery.expires_at)
        delay = wake - time.time()
        if delay <= 0:
            self._enqueue(delivery.delivery_id)
            return
        self._timers[delivery.delivery_id] = asyncio.get_running_loop().call_later(
            delay, self._enqueue, delivery.delivery_id)

    def _enqueue(self, delivery_id: str) -> None:
        """Hand a due delivery to the workers. A first attempt waits in its subscription's lane until
        the subscription's previous first attempt has its answer, so a subscriber that answers 2xx
        gets the events in the order they were published (a publish's own events in its order).
        Retries skip the lane: a failing event does not hold back the ones after it, which may then
        overtake it, as on Event Grid, which promises no order at all."""
        assert self._ready is not None
        delivery = self._pending.get(delivery_id)
        if delivery is None:
            return
        if delivery.attempts:
            self._ready.put_nowait(delivery_id)
            return
        self._lanes.setdefault(delivery.subscription, collections.deque()).append(delivery_id)
        self._advance_lane(delivery.subscription)

    def _advance_lane(self, subscription: str) -> None:
        assert self._ready is not None
        lane = self._lanes.get(subscription)
        while subscription not in self._in_lane and lane:
            delivery_id = lane.popleft()
            if delivery_id in self._pending:
                self._in_lane[subscription] = delivery_id
                self._ready.put_nowait(delivery_id)
        if lane is not None and not lane:
            del self._lanes[subscription]

    def _leave_lane(self, delivery: PendingDelivery) -> None:
        if self._in_lane.get(delivery.subscription) == delivery.delivery_id:
            del self._in_lane[delivery.subscription]
            self._advance_lane(delivery.subscription)

    async def _worker(self) -> None:
        assert self._ready is not None
        while True:
            delivery_id = await self._ready.get()
            self._timers.pop(delivery_id, None)
            delivery = self._pending.get(delivery_id)
            if delivery is None:
                for subscription in [s for s, held in self._in_lane.items() if held == delivery_id]:
                    del self._in_lane[subscription]
                    self._advance_lane(subscription)
                continue
            try:
                await self._attempt(delivery)
            except Exception:
                self._leave_lane(delivery)
                # Done with (finished or given up) before the failure: nothing to retry in this run; a
                # file the failure left on disk is picked up at the next start.
                if delivery_id not in self._pending:
                    log.exception("delivery %s failed unexpectedly after it was done with", delivery_id)
                    continue
                log.exception("delivery %s failed unexpectedly; retrying", delivery_id)
                delivery.next_attempt_at = time.time() + retry_delay(max(delivery.attempts, 1), self.time_scale)
                self._schedule(delivery)
            else:
                self._leave_lane(delivery)

    def _finish(self, delivery: PendingDelivery) -> None:
        self._pending.pop(delivery.delivery_id, None)
        self.store.remove(delivery.delivery_id)

    def _give_up(self, delivery: PendingDelivery, subscription: Subscription | None, reason: str) -> None:
        dead_letter = subscription is not None and subscription.dead_letter
        try:
            if dead_letter:
                self.store.dead_letter(delivery, reason)
            # Logged before the delivery leaves the pending set, so whoever waits for that sees the line.
            self.log.write(subscription=delivery.subscription, kind="delivery", eventId=delivery.event_id,
                           eventType=delivery.event_type, deliveryId=delivery.delivery_id, attempt=delivery.attempts,
                           outcome="DeadLettered" if dead_letter else "Dropped", reason=reason,
                           statusCode=delivery.last_status)
        finally:
            # Given up even if writing that failed: giving up again would fail alike.
            self._pending.pop(delivery.delivery_id, None)
        self._finish(delivery)

    async def _attempt(self, delivery: PendingDelivery) -> None:
        subscription = self.subscriptions.get(delivery.subscription)
        now = time.time()
        if subscription is None:
            self._give_up(delivery, None, "SubscriptionDeleted")
            return
        if now >= delivery.expires_at:
            self._give_up(delivery, subscription, "TimeToLiveExceeded")
            return
        if delivery.attempts >= subscription.max_delivery_attempts:  # attempts that raised count too
            self._give_up(delivery, subscription, "MaxDeliveryAttemptsExceeded")
            return
        if now < delivery.next_attempt_at:
            self._schedule(delivery)  # woken early (e.g. a time-to-live check): not due yet
            return
        delivery.attempts += 1
        started = time.monotonic()
        status, error, answer = await self._send(subscription, delivery)
        delivery.last_status = status
        delivery.last_answer = answer
        delivery.last_attempt_time = isoformat(utc_now())
        delivered = status in SUCCESS_STATUSES
        delivery.last_outcome = "Succeeded" if delivered else (f"HTTP {status}" if status else error)
        entry = dict(subscription=subscription.name, kind="delivery", eventId=delivery.event_id,
                     eventType=delivery.event_type, deliveryId=delivery.delivery_id, attempt=delivery.attempts,
                     destination=subscription.endpoint, statusCode=status, error=error, answer=answer,
                     durationMs=round((time.monotonic() - started) * 1000, 2))
        if delivered:
            self.log.write(**entry, outcome="Succeeded")
            self._finish(delivery)
        elif status in NON_RETRIABLE_STATUSES and subscription.is_webhook:
            self.log.write(**entry, outcome="Failed")
            self._give_up(delivery, subscription, "NonRetriableHttpStatusCode")
        elif delivery.attempts >= subscription.max_delivery_attempts:
            self.log.write(**entry, outcome="Failed")
            self._give_up(delivery, subscription, "MaxDeliveryAttemptsExceeded")
        else:
            delivery.next_attempt_at = time.time() + retry_delay(delivery.attempts, self.time_scale)
            self.store.save(delivery)
            self.log.write(**entry, outcome="Retrying", nextAttemptAt=delivery.next_attempt_at)
            self._schedule(delivery)

    async def _send(self, subscription: Subscription,
                    delivery: PendingDelivery) -> tuple[int | None, str | None, str | None]:
        if not subscription.is_webhook:
            return (*await self._invoke_function(subscription, delivery), None)
        assert self._session is not None
        return await post_notification(self._session, subscription, delivery.event, delivery.attempts - 1,
                                       self.response_timeout)

    async def _invoke_function(self, subscription: Subscription,
                               delivery: PendingDelivery) -> tuple[int | None, str | None]:
        if self.function_invoker is None:
            return None, "no function host is attached to this topic"
        event = delivery.event if subscription.delivery_schema == EVENT_GRID_SCHEMA else \
            cloud_event_to_event_grid(delivery.event)
        try:
            await self.function_invoker(subscription.endpoint, event)
        except Exception as error:
            # The Functions host answers Event Grid 500 when the function fails: retried.
            log.warning("function %s failed on event %s", subscription.endpoint, delivery.event_id, exc_info=True)
            return 500, f"{type(error).__name__}: {error}"
        return 200, None

    def pending_count(self, subscription: str | None = None) -> int:
        return sum(1 for d in self._pending.values() if subscription in (None, d.subscription))

    def pending_delivery(self, delivery_id: str) -> PendingDelivery | None:
        """A delivery not yet delivered nor given up (its event, attempts and next attempt time)."""
        return self._pending.get(delivery_id)

    def pending_deliveries(self) -> list[PendingDelivery]:
        return list(self._pending.values())

    async def reset(self, *, keep_subscriptions: bool = False) -> None:
        """Forget every pending delivery, dead letter and log entry; also the subscriptions (and the
        webhooks' validations) unless `keep_subscriptions`."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._pending.clear()
        self._lanes.clear()
        self._in_lane.clear()
        await asyncio.get_running_loop().run_in_executor(None, self.store.clear)
        self.log.clear()
        if not keep_subscriptions:
            self._pending_codes.clear()
            self._validated_file.unlink(missing_ok=True)
            await self.set_subscriptions([])

    # -- inspection -------------------------------------------------------------------------
    async def _list_deliveries(self, request: web.Request) -> web.Response:
        filters = {k: request.query.get(k) for k in ("subscription", "eventId", "outcome", "kind")}
        return web.json_response(self.log.entries(**filters))

    async def _list_subscriptions(self, request: web.Request) -> web.Response:
        return web.json_response([
            {"name": s.name, "endpointType": s.endpoint_type, "destination": s.endpoint,
             "eventDeliverySchema": s.delivery_schema, "state": self.validation.get(s.name),
             "pendingDeliveries": self.pending_count(s.name)}
            for s in self.subscriptions.values()
        ])

    async def _list_dead_letters(self, request: web.Request) -> web.Response:
        return web.json_response(self.store.dead_letters(request.query.get("subscription")))


class TopicThread:
    """Runs an EventGridTopic on its own event loop and thread (for tests and synchronous callers)."""

    def __init__(self, topic: EventGridTopic) -> None:
        self.topic = topic
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> EventGridTopic:
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.topic.start())
            except BaseException as error:  # report to start(), then end the thread
                failure.append(error)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.topic.stop())
            loop.close()

        self._thread = threading.Thread(target=serve, name="eventgrid-topic", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise RuntimeError("the Event Grid topic did not start")
        if failure:
            raise failure[0]
        return self.topic

    def call(self, coroutine: Awaitable[Any], timeout: float = 60.0) -> Any:
        """Run a coroutine of the topic (e.g. set_subscriptions) on its loop and wait for the result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)  # type: ignore[arg-type]

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        self._thread = None
        self._loop = None

    def __enter__(self) -> EventGridTopic:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
