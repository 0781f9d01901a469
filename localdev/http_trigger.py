"""HTTP trigger adapter: routes, auth levels, and conversion between aiohttp and azure.functions objects."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import azure.functions as func
from aiohttp import web
from multidict import CIMultiDict, MultiDictProxy

from .invocation import HostedFunction
from .routing import Route, Router
from .settings import HostConfig

log = logging.getLogger("localdev.http")

_FRAMING_HEADERS = frozenset(("content-length", "transfer-encoding"))


@dataclass(frozen=True)
class HttpEndpoint:
    function: HostedFunction
    auth_level: str  # "anonymous" | "function" | "admin"


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    """The JSON error body the host itself answers with (not the product's)."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return web.Response(status=status, body=body, headers=headers,
                        content_type="application/json", charset="utf-8")


def _enum_text(value: Any) -> str:
    return str(getattr(value, "value", value))


def _normalise_methods(methods: Iterable[Any] | None) -> frozenset[str] | None:
    if not methods:
        return None
    return frozenset(_enum_text(m).upper() for m in methods)


def to_web_response(result: Any) -> web.Response:
    """Convert what an HTTP function returned into the response the host sends."""
    if result is None:
        return web.Response(status=204)
    if isinstance(result, str):
        return web.Response(status=200, body=result.encode("utf-8"),
                            content_type="text/plain", charset="utf-8")
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"an HTTP function must return func.HttpResponse or str, "
                        f"not {type(result).__name__}")
    status = int(result.status_code)
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in result.headers.items():
        # aiohttp frames the body itself; a stale length would corrupt the connection.
        if name.lower() not in _FRAMING_HEADERS:
            headers.add(name, value)
    if status < 200 or status in (204, 304):
        headers.popall("Content-Type", None)
        return web.Response(status=status, headers=headers)
    if "Content-Type" not in headers:
        mimetype = result.mimetype
        headers["Content-Type"] = (f"{mimetype}; charset={result.charset}"
                                   if mimetype.startswith("text/") else mimetype)
    return web.Response(status=status, body=result.get_body(), headers=headers)


def _flatten_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    flattened: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        flattened[key] = f"{flattened[key]}, {value}" if key in flattened else value
    return flattened


def _query_params(query: MultiDictProxy[str]) -> dict[str, str]:
    # Repeated keys are joined with commas, as the host's StringValues do.
    params: dict[str, str] = {}
    for name, value in query.items():
        params[name] = f"{params[name]},{value}" if name in params else value
    return params


class HttpTriggerAdapter:
    """Serves every `httpTrigger` function of the app through one Router."""

    binding_type = "httpTrigger"

    def __init__(self, config: HostConfig) -> None:
        self._config = config
        self._routes: list[Route] = []
        self._router: Router | None = None
        self._master_key = config.master_key.encode() if config.master_key else None
        self._function_keys = [k.encode() for k in config.function_keys]
        # Called after each function answered: (function name, request, response, seconds taken).
        # The console reads error codes and non-Rooms requests from here; one that raises is logged.
        self.observers: list[Callable[[str, web.BaseRequest, web.StreamResponse, float], None]] = []

    def add(self, function: HostedFunction) -> None:
        trigger = function.trigger
        auth_level = _enum_text(trigger.auth_level or "function").lower()
        if auth_level != "anonymous" and not (self._master_key or self._function_keys):
            log.warning("%s has auth level %s but no key is configured; set %s or %s",
                        function.name, auth_level, "LOCALDEV_MASTER_KEY", "LOCALDEV_FUNCTION_KEYS")
        route = Route(trigger.route, _normalise_methods(trigger.methods),
                      HttpEndpoint(function, auth_level), order=len(self._routes))
        self._routes.append(route)
        self._router = None
        log.info("%s: %s /%s", function.name,
                 ",".join(sorted(route.methods)) if route.methods else "*",
                 "/".join(p for p in (self._config.route_prefix, trigger.route.strip("/")) if p))

    @property
    def router(self) -> Router:
        if self._router is None:
            self._router = Router(self._routes, self._config.route_prefix)
        return self._router

    async def start(self) -> None:
        """Routes are served by `handle`; nothing runs in the background."""
        self.router  # noqa: B018 - compile once before the first request

    async def stop(self) -> None:
        return None

    def _authorized(self, auth_level: str, request: web.BaseRequest) -> bool:
        if auth_level == "anonymous":
            return True
        presented = request.headers.get("x-functions-key") or request.query.get("code")
        if not presented:
            return False
        key = presented.encode()
        if self._master_key and hmac.compare_digest(key, self._master_key):
            return True
        if auth_level == "admin":
            return False
        return any(hmac.compare_digest(key, k) for k in self._function_keys)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """aiohttp low-level handler: route, authorize, invoke, convert."""
        raw_target = request.raw_path
        raw_path = raw_target.partition("?")[0]
        resolution = self.router.resolve(request.method, raw_path)
        route = resolution.route
        if route is None:
            if resolution.method_not_allowed:
                allowed = ", ".join(sorted(resolution.allowed_methods))
                return error_response(405, "MethodNotAllowed",
                                      f"{request.method} is not allowed on {raw_path}",
                                      {"Allow": allowed})
            return error_response(404, "NotFound", f"no function serves {raw_path}")
        endpoint: HttpEndpoint = route.target
        if not self._authorized(endpoint.auth_level, request):
            return error_response(401, "Unauthorized",
                                  f"{endpoint.function.name} requires a key (auth level {endpoint.auth_level})")
        headers = _flatten_headers(request.headers.items())
        if request.remote:
            # As Azure's front end does: the peer address goes last, after whatever the client sent.
            sent = headers.get("x-forwarded-for")
            headers["x-forwarded-for"] = f"{sent}, {request.remote}" if sent else request.remote
        try:
            body = await asyncio.wait_for(request.read(), self._config.body_timeout)
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, "RequestEntityTooLarge",
                                  f"The request body is larger than the host accepts ({request.client_max_size} bytes).")
        except asyncio.TimeoutError:
            log.info("%s %s: the body did not arrive within %.0f s; connection closed",
                     request.method, raw_path, self._config.body_timeout)
            refused = error_response(408, "RequestTimeout", "The request body did not arrive in time.")
            refused.force_close()
            return refused
        except ConnectionError:
            # One line, no traceback: a client hanging up mid-body is not the host's failure.
            log.info("%s %s: the client closed the connection before sending the whole body",
                     request.method, raw_path)
            return web.Response(status=400)  # never sent: the connection is gone
        http_request = func.HttpRequest(
            request.method,
            # The raw target keeps percent-encoding and the exact query string,
            # which the product signs and verifies.
            f"{request.scheme}://{request.host}{raw_target}",
            headers=headers,
            params=_query_params(request.query) if request.query_string else {},
            route_params=resolution.route_params,
            body=body,
        )
        started = time.perf_counter()
        try:
            result = await endpoint.function.invoke(http_request)
            response = to_web_response(result)
        except Exception:
            log.exception("Exception while executing function: Functions.%s", endpoint.function.name)
            response = error_response(500, "InternalServerError",
                                      f"Exception while executing function: Functions.{endpoint.function.name}")
        for observe in self.observers:
            try:
                observe(endpoint.function.name, request, response, time.perf_counter() - started)
            except Exception:
                log.exception("an HTTP observer failed")
        return response
