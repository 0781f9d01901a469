"""A webhook that records what Event Grid delivers to it, for tests and benchmarks (runs on its own thread)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web

from ..certs import DevCertificate
from ..host import LOOPBACK, bind_loopback_socket, quiet_malformed_request_logs, server_ssl_context


@dataclass
class Received:
    """One delivery request as the webhook saw it."""

    headers: dict[str, str]
    body: Any
    content_type: str
    received_at: float = field(default_factory=time.time)  # epoch seconds, for latency figures

    @property
    def events(self) -> list[dict[str, Any]]:
        """The delivered events: Event Grid schema sends an array, CloudEvents one object."""
        return self.body if isinstance(self.body, list) else [self.body]


class WebhookSubscriber:
    """Answers Event Grid's validation handshakes and records notifications at `url`.

    `validate`: True answers the handshake, False refuses it (403), "manual" answers 200 without
    the code (the Event Grid schema's manual route: someone GETs the validationUrl later).

    `status` is what notifications get (200 by default; set 500 to make the topic retry, 400 to
    make it dead-letter). `stop()` then `start()` takes it down and brings it back on the same port.
    `handling_seconds` (a number, or a callable giving one per request) is how long each
    notification takes to handle before it is recorded and answered, as a subscriber doing work.
    """

    def __init__(self, *, path: str = "/events", port: int = 0, validate: bool | str = True,
                 certificate: DevCertificate | None = None) -> None:
        self.path = path
        self.port = port
        self.certificate = certificate  # HTTPS with the dev certificate; plain HTTP without
        self.validate = validate
        self.status = 200
        self.handling_seconds: float | Callable[[], float] = 0.0
        self.notifications: list[Received] = []
        self.validations: list[Received] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.certificate else "http"
        return f"{scheme}://{LOOPBACK}:{self.port}{self.path}"

    async def _options(self, request: web.Request) -> web.Response:
        origin = request.headers.get("WebHook-Request-Origin", "")
        with self._lock:
            self.validations.append(Received(dict(request.headers), None, ""))
        if not self.validate:
            return web.Response(status=403)
        headers = {"WebHook-Allowed-Origin": origin, "Allow": "POST, OPTIONS"}
        if "WebHook-Request-Rate" in request.headers:
            headers["WebHook-Allowed-Rate"] = "*"
        return web.Response(status=200, headers=headers)

    async def _post(self, request: web.Request) -> web.Response:
        raw = await request.read()
        record = Received(dict(request.headers), json.loads(raw) if raw else None,
                          request.headers.get("Content-Type", ""))
        if request.headers.get("aeg-event-type") == "SubscriptionValidation":
            with self._lock:
                self.validations.append(record)
            if not self.validate:
                return web.Response(status=403)
            if self.validate == "manual":
                return web.Response(status=200)  # validated later by a GET of the validationUrl
            return web.json_response({"validationResponse": record.events[0]["data"]["validationCode"]})
        handling = self.handling_seconds() if callable(self.handling_seconds) else self.handling_seconds
        if handling:
            await asyncio.sleep(handling)
        with self._changed:
            status = self.status
            if status in (200, 201, 202, 204):
                self.notifications.append(record)
                self._changed.notify_all()
        return web.Response(status=status)

    def start(self, timeout: float = 30.0) -> "WebhookSubscriber":
        started = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            application = web.Application()
            application.router.add_post(self.path, self._post)
            application.router.add_route("OPTIONS", self.path, self._options)
            quiet_malformed_request_logs()
            runner = web.AppRunner(application, access_log=None)
            loop.run_until_complete(runner.setup())
            sock = bind_loopback_socket(self.port)
            self.port = sock.getsockname()[1]
            context = server_ssl_context(self.certificate) if self.certificate else None
            loop.run_until_complete(web.SockSite(runner, sock, ssl_context=context).start())
            started.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="webhook-subscriber", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise RuntimeError("the webhook subscriber did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
        self._loop = self._thread = None

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [event for record in self.notifications for event in record.events]

    def wait_for(self, condition: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until `condition(events received so far)` holds; return the events (raises on timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                events = [event for record in self.notifications for event in record.events]
                if condition(events):
                    return events
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"after {timeout} s the webhook has {len(events)} events: {events[-3:]}")
                self._changed.wait(min(remaining, 0.5))

    def wait_for_count(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        return self.wait_for(lambda events: len(events) >= count, timeout)

    def __enter__(self) -> "WebhookSubscriber":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
