"""The one place where HTTP meets the domain: auth, api-version, body parsing, errors, headers, logs."""
from __future__ import annotations

import base64
import ipaddress
import json
import logging
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit, urlunsplit

import azure.functions as func
from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind, StatusCode

from shared.core.errors import Denied, InvalidRequest
from shared.logs.operations import OPERATION_NAMES, RoomsOperationRecord, new_correlation_id
from shared.identity.tokens import TokenClaims
from shared.repeatability.guard import RepeatabilityHeaders, fingerprint
from shared.repeatability.store import StoredResponse
from shared.bootstrap import Services, get_services

from .errors import (
    ErrorTable,
    HttpError,
    internal_error,
    missing_api_version,
    payload_too_large,
    unsupported_api_version,
    unsupported_media_type,
)

log = logging.getLogger("anteroom.api")
# Each request is a server span named by its operation (CreateRoom, JoinRoomCall, ...), a child of
# the caller's traceparent when it sent one. Without telemetry configured these are no-ops.
_tracer = trace.get_tracer("anteroom.api")
# The operation log's CorrelationId (also the MS-CV header) on the request's span, to go from a
# log record to its trace and back.
CORRELATION_ID_ATTRIBUTE = "anteroom.correlation_id"

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
REPEATABILITY_ACCEPTED = "accepted"  # Repeatability-Result of every answer to a repeatable request
_JSON_MEDIA_TYPES = ("application/json", "application/merge-patch+json")
# The Rooms SDK writes the api-version of continuation requests as its enum member's repr.
_SDK_ENUM_SPELLING = re.compile(r"ApiVersion\.V(\d{4})_(\d{2})_(\d{2})((?:_[A-Z]+)?)")


@dataclass(frozen=True)
class ApiVersions:
    """The api-versions an API answers to; `advertised` goes into `api-supported-versions`."""

    advertised: tuple[str, ...]
    also_accepted: tuple[str, ...] = ()

    def accepts(self, version: str) -> bool:
        return version in self.advertised or version in self.also_accepted

    @property
    def header(self) -> str:
        return ", ".join(self.advertised)


ROOMS_API = ApiVersions(
    advertised=("2023-06-14", "2023-10-30-preview", "2024-04-15", "2025-02-28", "2025-03-07", "2025-03-13"),
)
IDENTITY_API = ApiVersions(advertised=("2021-03-07", "2022-06-01", "2022-10-01", "2023-10-01"))


@dataclass
class ApiResponse:
    """A use case's answer. `facts` feed the operation log (room id, counts, ...)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


class ApiRequest:
    """An authenticated request with its api-version resolved and its JSON body parsed on demand."""

    def __init__(
        self, http: func.HttpRequest, api_version: str | None, services: Services, errors: ErrorTable,
        caller: TokenClaims | None = None,
    ) -> None:
        self.http = http
        self.api_version = api_version
        self.services = services
        self.errors = errors  # how this API answers refusals (a replayed one too)
        self.caller = caller  # the verified access token's claims, on token-authenticated routes
        self.body = http.get_body() or b""

    def route(self, name: str) -> str:
        return self.http.route_params.get(name, "")

    def query(self, name: str) -> str | None:
        return self.http.params.get(name)

    def header(self, name: str) -> str | None:
        return self.http.headers.get(name)

    def json(self) -> Any:
        """The parsed body, None when empty. Raises InvalidRequest for broken JSON, duplicate keys, NaN,
        or text that is not UTF-8 without a byte order mark.

        The bytes are decoded as strict UTF-8 first: given bytes, json.loads would guess UTF-16 or
        UTF-32 from their pattern and skip a BOM, reading values a proxy or another parser never sees.
        """
        if not self.body.strip():
            return None
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("The request body is not valid JSON: it is not UTF-8 text.") from None
        try:
            parsed = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
            _check_unicode(parsed)
            return parsed
        except (ValueError, RecursionError) as problem:
            raise InvalidRequest(f"The request body is not valid JSON: {problem}") from None

    def json_object(self, *, allow_empty: bool = False) -> dict:
        """The body as a JSON object. Raises InvalidRequest for broken JSON and for any other value,
        a JSON `null` included; an empty body is `{}` with `allow_empty`, else refused the same way.
        """
        if allow_empty and not self.body.strip():
            return {}
        body = self.json()
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        return body

    def repeatability(self) -> RepeatabilityHeaders | None:
        """The Repeatability-Request-ID/-First-Sent pair, None without it; raises InvalidRequest when malformed."""
        services = self.services
        return RepeatabilityHeaders.parse(
            self.http.headers, services.clock(), services.repeatability.window, services.hmac.clock_skew
        )

    def run_once(
        self, repeat: RepeatabilityHeaders, *, reserve: Callable[[], str], execute: Callable[[str], StoredResponse],
        recover: Callable[[str], StoredResponse | None],
    ) -> StoredResponse:
        """`execute(reserve())` at most once per request id: the same id with the same method, path and
        body answers the stored response again; with another, RequestIdReused. Answers carry
        Repeatability-Result.

        A refusal `execute` raises (answered 4xx by this API's error table) is an answer like any
        other: stored and replayed. A 5xx is not stored, so a repeat runs again (ACS re-executes those).
        """
        def execute_answering_refusals(key: str) -> StoredResponse:
            try:
                return execute(key)
            except Exception as error:
                refusal = self.errors.http_error(error)
                if refusal is None or refusal.status >= 500:
                    raise
                return StoredResponse(refusal.status, refusal.to_body(), error_headers(refusal))

        path = self.http.url.split("://", 1)[-1].split("/", 1)[-1]
        answer, _replayed = self.services.repeatability.run(
            repeat.request_id, fingerprint(self.http.method, path, self.body),
            reserve=reserve, execute=execute_answering_refusals, recover=recover,
        )
        return replace(answer, headers={**answer.headers, "Repeatability-Result": REPEATABILITY_ACCEPTED})

    def link_to_next_page(self, cursor: dict) -> str:
        """An absolute nextLink to this same path carrying an opaque cursor, as ACS does."""
        token = base64.urlsafe_b64encode(json.dumps(cursor, separators=(",", ":")).encode()).decode().rstrip("=")
        parts = urlsplit(self.http.url)
        query = urlencode({"nextLink": token, "api-version": self.api_version})
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))

    def cursor(self) -> dict | None:
        """The cursor of a nextLink request, None on a first page. Raises InvalidRequest when it is garbage."""
        token = self.query("nextLink")
        if token is None:
            return None
        try:
            cursor = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            if not isinstance(cursor, dict):
                raise ValueError
            _check_unicode(cursor)
            return cursor
        except ValueError:
            raise InvalidRequest("The nextLink continuation token is not valid.") from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _check_unicode(parsed: Any) -> None:
    """Raise ValueError for a lone surrogate (a `\\ud800` escape): such text cannot be encoded for storage."""
    try:
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a string holds an unpaired UTF-16 surrogate") from None


def _resolve_api_version(http: func.HttpRequest, versions: ApiVersions) -> str:
    version = http.params.get("api-version")
    if not version:
        raise missing_api_version()
    enum_spelling = _SDK_ENUM_SPELLING.fullmatch(version)
    if enum_spelling and "nextLink" in http.params:
        suffix = enum_spelling.group(4).lower().replace("_", "-")
        version = f"{enum_spelling.group(1)}-{enum_spelling.group(2)}-{enum_spelling.group(3)}{suffix}"
    if not versions.accepts(version):
        raise unsupported_api_version(version, versions.header)
    return version


def _check_body_size(http: func.HttpRequest, services: Services) -> None:
    # Before authentication, so an oversized body is refused without hashing it for the signature.
    if len(http.get_body() or b"") > services.settings.max_body_bytes:
        raise payload_too_large(services.settings.max_body_bytes)
    # Bodies arrive as sent (neither Azure's front end nor the local host inflates them), and the
    # app does not inflate them either: a small compressed body could expand to any size.
    encoding = (http.headers.get("content-encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise unsupported_media_type(
            "Content-Encoding is not supported: send the request body uncompressed."
        )


def _check_media_type(http: func.HttpRequest) -> None:
    body = http.get_body() or b""
    if body.strip():
        media_type = (http.headers.get("content-type") or "").split(";")[0].strip().lower()
        if media_type not in _JSON_MEDIA_TYPES:
            raise unsupported_media_type(
                "The request body must be JSON (Content-Type application/json or application/merge-patch+json)."
            )


def error_headers(error: HttpError) -> dict[str, str]:
    """The headers an error answer carries besides the request's own (MS-CV, client request id)."""
    headers = dict(error.headers)
    if error.error_code_header:
        headers["x-ms-error-code"] = error.code
    return headers


def _response(status: int, body: Any, headers: dict[str, str]) -> func.HttpResponse:
    if body is None:
        return func.HttpResponse(status_code=status, headers=headers)
    headers = {**headers, "Content-Type": JSON_CONTENT_TYPE}
    return func.HttpResponse(json.dumps(body), status_code=status, headers=headers)


Handler = Callable[[ApiRequest], ApiResponse]


def caller_ip(http: func.HttpRequest) -> str | None:
    """The client address the platform vouches for: the last hop of X-Forwarded-For.

    Azure's front end appends the address it received the connection from (with its port) to
    whatever X-Forwarded-For the client sent, and the local host appends the peer address the same
    way, so only the last entry is the platform's; anything before it is the client's say. None
    when there is no such header or its last entry is not an IP address.
    """
    forwarded = http.headers.get("x-forwarded-for")
    if not forwarded:
        return None
    hop = forwarded.rsplit(",", 1)[-1].strip()
    if hop.startswith("["):  # [IPv6]:port
        hop = hop[1:].partition("]")[0]
    elif hop.count(":") == 1:  # IPv4:port
        hop = hop.partition(":")[0]
    try:
        return str(ipaddress.ip_address(hop))
    except ValueError:
        return None


def _log_rooms_operation(
    services: Services, operation: str, http: func.HttpRequest, api_version: str | None,
    status: int, facts: dict, duration_ms: float, correlation_id: str,
) -> None:
    """One ACSRoomsIncomingOperations record per Rooms request, failures included (queued, never blocks)."""
    room, counts = facts.get("room"), facts.get("counts")
    services.operation_log.write(
        RoomsOperationRecord(
            time_generated=services.clock(),
            correlation_id=correlation_id,
            operation_name=operation,
            operation_version=api_version,
            result_signature=status,
            duration_ms=duration_ms,
            caller_ip_address=caller_ip(http),
            room_id=room.id if room else facts.get("room_id") or http.route_params.get("roomId") or None,
            room_lifespan_minutes=room.lifespan_minutes if room else None,
            pstn_dial_out_enabled=room.pstn_dial_out_enabled if room else None,
            added_participants=facts.get("added"),
            upserted_participants=facts.get("upserted"),
            removed_participants=facts.get("removed"),
            participants_count=counts.total if counts else None,
            presenters=counts.presenters if counts else None,
            attendees=counts.attendees if counts else None,
            consumers=counts.consumers if counts else None,
            collaborators=counts.collaborators if counts else None,
        )
    )


HMAC = "hmac"  # ACS access-key signatures: management APIs and trusted servers
BEARER = "bearer"  # user access tokens from the Identity API: the room-call client API


@dataclass(frozen=True)
class AcsOperation:
    """What `acs_operation` wraps a handler in, kept on the function for the OpenAPI document."""

    name: str
    versions: ApiVersions | None
    errors: ErrorTable
    auth: str


def _bearer_claims(http: func.HttpRequest, services: Services) -> TokenClaims:
    scheme, _, token = (http.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Denied("An access token is required (Authorization: Bearer <token>).")
    return services.identity.verify(token.strip())


def acs_operation(
    operation: str, versions: ApiVersions | None, errors: ErrorTable, *, auth: str = HMAC
) -> Callable[[Handler], Callable]:
    """Wrap a use-case handler as an HTTP function with ACS's authentication and error shapes.

    `versions` None means the route takes no api-version (our own client API). `errors` is the
    API's table: every refusal, before the handler or from it, is answered by it.
    The wrapper's signature is `(req: func.HttpRequest) -> func.HttpResponse` on purpose: the
    Functions worker binds parameters by the signature it inspects.
    """

    def decorate(handler: Handler) -> Callable:
        def function(req: func.HttpRequest) -> func.HttpResponse:
            started = time.perf_counter()
            correlation_id = new_correlation_id()
            headers = {"MS-CV": correlation_id}
            client_request_id = req.headers.get("x-ms-client-request-id")
            if client_request_id:
                headers["x-ms-client-request-id"] = client_request_id
            api_version = req.params.get("api-version")
            facts: dict = {}
            services: Services | None = None
            try:
                # First, outside the span: the first request builds the services and, with them,
                # turns telemetry on, so that request is traced too.
                services = get_services()
            except Exception as error:
                setup_error: Exception | None = error
            else:
                setup_error = None
            with _tracer.start_as_current_span(
                operation, context=extract(req.headers), kind=SpanKind.SERVER,
                attributes={CORRELATION_ID_ATTRIBUTE: correlation_id, "http.request.method": req.method},
            ) as span:
                try:
                    if setup_error is not None:
                        raise setup_error
                    assert services is not None
                    _check_body_size(req, services)
                    caller = None
                    if auth == BEARER:
                        caller = _bearer_claims(req, services)
                        throttled_as = f"user:{caller.user_id}"
                    else:
                        key_index = services.hmac.verify(
                            req.method, req.url, req.headers, req.get_body() or b"", services.clock()
                        )
                        throttled_as = f"key:{key_index}"
                    # Only authenticated callers are counted: forged requests cannot spend someone's budget.
                    if services.throttle is not None:
                        services.throttle.admit(throttled_as)
                    if versions is not None:
                        api_version = _resolve_api_version(req, versions)
                        headers["api-supported-versions"] = versions.header
                    _check_media_type(req)
                    result = handler(ApiRequest(req, api_version, services, errors, caller))
                    status, facts = result.status, result.facts
                    if status >= 400:  # a replayed refusal: shaped as the refusal was the first time
                        headers.pop("api-supported-versions", None)
                    response = _response(status, result.body, {**headers, **result.headers})
                except Exception as error:
                    refusal = errors.http_error(error)
                    if refusal is None:
                        log.exception("%s failed (correlation id %s)", operation, correlation_id)
                        bug = internal_error()
                        status = bug.status
                        response = _response(status, bug.to_body(), {**headers, "x-ms-error-code": bug.code})
                    else:
                        status = refusal.status
                        headers.pop("api-supported-versions", None)
                        response = _response(status, refusal.to_body(), {**headers, **error_headers(refusal)})
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
            duration_ms = (time.perf_counter() - started) * 1000
            if services is not None and operation in OPERATION_NAMES:
                try:
                    _log_rooms_operation(services, operation, req, api_version, status, facts, duration_ms, correlation_id)
                except Exception:
                    log.exception("could not log %s", operation)
            return response

        function.__name__ = handler.__name__
        function.__qualname__ = handler.__qualname__
        function.__doc__ = handler.__doc__
        function.acs_operation = AcsOperation(operation, versions, errors, auth)
        return function

    return decorate
