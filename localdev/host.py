"""A small aiohttp host that serves an azure.functions FunctionApp without Core Tools."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import socket
import ssl
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import azure.functions as func
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .certs import DevCertificate
from .eventgrid_trigger import EventGridTriggerAdapter
from .http_trigger import HttpTriggerAdapter, error_response
from .invocation import HostedFunction, RunningCalls
from .settings import HostConfig, load_local_settings_json
from .timer_trigger import TimerTriggerAdapter

log = logging.getLogger("localdev.host")


class _QuietMalformedRequests(logging.Filter):
    """aiohttp logs a malformed request's offending header line verbatim, and that line may hold
    an access token or a signature: log the refusal without the request's content."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.msg, record.args = "%s (malformed HTTP request refused with %s; its content is not logged)", (
                record.getMessage(), error.code)
            record.exc_info = record.exc_text = None
            # The client's mistake, not the host's: one INFO line, so garbage cannot flood the error log.
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_malformed_request_logs() -> None:
    """Install the filter on aiohttp's server logger, which every local server shares (host,
    Event Grid topic, webhook subscriber, PSTN simulator): each calls this before it listens."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _QuietMalformedRequests) for f in server_log.filters):
        server_log.addFilter(_QuietMalformedRequests())


# What the host answers when a request never reaches a function (no request content is echoed).
_REFUSALS = {
    400: ("BadRequest", "The request could not be understood by the server due to malformed syntax."),
    413: ("RequestEntityTooLarge", "The request is larger than the host accepts."),
    431: ("RequestHeaderFieldsTooLarge", "The request's headers are larger than the host accepts."),
}
_INTERNAL_ERROR = ("InternalServerError", "The server had an internal error.")


class _Connection(web.RequestHandler):
    """aiohttp's per-connection protocol, answering its own refusals (malformed requests) in the
    JSON error shape the rest of the host uses, without echoing the offending line."""

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs (see the filter) and refuses a sent answer
        code, text = _REFUSALS.get(status, _INTERNAL_ERROR)
        response = error_response(status, code, text)
        response.force_close()
        return response


class _Server(web.Server):
    """web.Server making `_Connection`s, with the protocol options given here."""

    def __init__(self, handler: Callable[[web.BaseRequest], Any], *, request_factory: Any,
                 **protocol_options: Any) -> None:
        super().__init__(handler, request_factory=request_factory, **protocol_options)
        self.protocol_options = protocol_options

    def __call__(self) -> web.RequestHandler:
        return _Connection(self, loop=asyncio.get_running_loop(), **self.protocol_options)


LOOPBACK = "127.0.0.1"
# The line `python -m localdev serve|run` prints once listening, followed by the URLs.
READY_PREFIX = "localdev: listening "
# Azure Functions accepts request bodies up to 100 MB; aiohttp's default is 1 MB.
MAX_REQUEST_BODY = 100 * 1024 * 1024


class TriggerAdapter(Protocol):
    """Hosts every function of one trigger kind: add at start-up, start/stop with the host."""

    binding_type: str

    def add(self, function: HostedFunction) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


AdapterFactory = Callable[[HostConfig], TriggerAdapter]


def default_adapter_factories() -> dict[str, AdapterFactory]:
    """Trigger kinds the host supports; a new kind is one more entry."""
    return {
        HttpTriggerAdapter.binding_type: HttpTriggerAdapter,
        TimerTriggerAdapter.binding_type: lambda config: TimerTriggerAdapter(),
        EventGridTriggerAdapter.binding_type: lambda config: EventGridTriggerAdapter(),
    }


def bind_loopback_socket(port: int, host: str = LOOPBACK) -> socket.socket:
    """A listening-ready TCP socket; port 0 picks a free one (read it back from getsockname)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def server_ssl_context(certificate: DevCertificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.server_cert, certificate.server_key)
    context.set_alpn_protocols(["http/1.1"])
    return context


class FunctionHost:
    """Indexes a FunctionApp once and serves it over HTTPS (and optionally plain HTTP)."""

    def __init__(self, app: func.FunctionApp, config: HostConfig | None = None, *,
                 adapter_factories: Mapping[str, AdapterFactory] | None = None) -> None:
        self.config = config or HostConfig()
        self._executor = ThreadPoolExecutor(max_workers=self.config.thread_pool_size,
                                            thread_name_prefix="localdev-function")
        self._running = RunningCalls()
        # Function calls still running when stop() gave up waiting for them.
        self.abandoned_calls = 0
        factories = {**default_adapter_factories(), **(adapter_factories or {})}
        self.functions: dict[str, HostedFunction] = {}
        self.adapters: dict[str, TriggerAdapter] = {}
        # get_functions() indexes the app and refuses to run twice.
        for function in app.get_functions():
            hosted = HostedFunction(function, executor=self._executor, running=self._running,
                                    function_directory=self.config.function_directory)
            self.functions[hosted.name] = hosted
            kind = hosted.binding_type
            if kind not in self.adapters:
                if kind not in factories:
                    log.info("ignoring function %s: localdev does not support %s triggers yet",
                             hosted.name, kind)
                    continue
                self.adapters[kind] = factories[kind](self.config)
            self.adapters[kind].add(hosted)
        http = self.adapters.get(HttpTriggerAdapter.binding_type)
        # Without HTTP functions the listener still answers (404s).
        self.http: HttpTriggerAdapter = http if isinstance(http, HttpTriggerAdapter) \
            else HttpTriggerAdapter(self.config)
        self._runner: web.ServerRunner | None = None
        self.urls: list[str] = []
        self.https_port: int | None = None
        self.http_port: int | None = None

    async def invoke(self, function_name: str, trigger_value: Any) -> Any:
        """Call a function directly, e.g. to drive a trigger kind the host cannot fire itself."""
        return await self.functions[function_name].invoke(trigger_value)

    async def start(self, *, https_port: int | None = 7071, certificate: DevCertificate | None = None,
                    http_port: int | None = None, access_log: bool = False,
                    shutdown_timeout: float = 5.0) -> list[str]:
        """Listen on 127.0.0.1, then start the trigger adapters (timers). Returns the URLs."""
        if https_port is None and http_port is None:
            raise ValueError("nothing to listen on: give https_port and/or http_port")
        if https_port is not None and certificate is None:
            raise ValueError("HTTPS needs a certificate (see localdev.certs.ensure_dev_certificate)")
        loop = asyncio.get_running_loop()

        def make_request(message, payload, protocol, writer, task):  # type: ignore[no-untyped-def]
            return web.BaseRequest(message, payload, protocol, writer, task, loop,
                                   client_max_size=MAX_REQUEST_BODY)

        quiet_malformed_request_logs()
        server = _Server(
            self.http.handle, request_factory=make_request,
            access_log=logging.getLogger("localdev.access") if access_log else None,
            # Bodies reach the app as sent, as on Azure: inflating them here would let a few KB of
            # gzip cost the host a hundred MB each, on the event loop.
            auto_decompress=False,
            # aiohttp closes a connection whose request headers are not complete this long after it
            # opened or after its previous answer (its default, an hour, lets half-sent headers
            # hold a connection open all that time).
            keepalive_timeout=self.config.header_timeout,
        )
        self._runner = web.ServerRunner(server, shutdown_timeout=shutdown_timeout)
        await self._runner.setup()
        try:
            listeners = []
            if https_port is not None:
                assert certificate is not None
                listeners.append(("https", https_port, server_ssl_context(certificate)))
            if http_port is not None:
                listeners.append(("http", http_port, None))
            for scheme, port, context in listeners:
                sock = bind_loopback_socket(port)
                bound_port = sock.getsockname()[1]
                await web.SockSite(self._runner, sock, ssl_context=context).start()
                setattr(self, f"{scheme}_port", bound_port)
                self.urls.append(f"{scheme}://{LOOPBACK}:{bound_port}")
            # As the Functions host does (Core Tools: localhost:7071), tell the app the name it is
            # served under, before any trigger runs: the HTTPS address when there is one.
            os.environ["WEBSITE_HOSTNAME"] = self.urls[0].split("://", 1)[1]
            for adapter in self.adapters.values():
                await adapter.start()
        except BaseException:
            await self.stop()
            raise
        return list(self.urls)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop listening and firing triggers, then give running function calls `grace` seconds.

        Calls still running after that are left behind and counted in `abandoned_calls`: a hung
        function (a webhook that never answers, storage that went away) must not keep Ctrl-C from
        working. The pool's threads are not daemons, so a process that wants to exit anyway has to
        say so (see `python -m localdev`).
        """
        deadline = asyncio.get_running_loop().time() + grace
        for adapter in self.adapters.values():
            try:
                await adapter.stop()
            except Exception:
                log.exception("stopping %s adapter failed", adapter.binding_type)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._executor.shutdown(wait=False, cancel_futures=True)
        while self._running.count and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        self.abandoned_calls = self._running.count
        if self.abandoned_calls:
            log.warning("%d function call(s) still running after %.0f s; not waiting for them",
                        self.abandoned_calls, grace)
        self.urls = []

    async def __aenter__(self) -> "FunctionHost":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def load_app(spec: str, app_directory: str | os.PathLike[str] = ".") -> func.FunctionApp:
    """Import `module:attribute` from the app directory, after loading local.settings.json like `func start`."""
    module_name, _, attribute = spec.partition(":")
    directory = str(Path(app_directory).resolve())
    load_local_settings_json(directory)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    module = importlib.import_module(module_name)
    app = getattr(module, attribute or "app")
    if not isinstance(app, func.FunctionApp):
        raise TypeError(f"{spec} is a {type(app).__name__}, not an azure.functions.FunctionApp")
    return app
