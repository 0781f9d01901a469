"""ACS error answers: the HTTP-shaped error, the refusals only HTTP knows, and one table per API for the domain's errors."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from shared.calls.model import Capability
from shared.core.errors import (
    AlreadyInCall,
    CallConnectionNotFound,
    CallFull,
    ChangeContended,
    ConcurrentCallLimitReached,
    Denied,
    DialOutDisabled,
    DomainError,
    GatewayUnavailable,
    IdentityNotFound,
    InsufficientScope,
    InvalidArgument,
    InvalidRequest,
    IdentityUnavailable,
    InvitationNotFound,
    MissingCapability,
    NoActiveCall,
    NoCallYet,
    NotInCall,
    NotInvited,
    OriginalRequestInProgress,
    ParticipantNotFound,
    RepeatabilityWindowPassed,
    RequestIdReused,
    RoomExpired,
    RoomNotFound,
    RoomNotOpenYet,
    StorageUnavailable,
    Throttled,
    TooManyConnections,
)

MALFORMED_SYNTAX = "The request could not be understood by the server due to malformed syntax."
NOT_FOUND = "The server cannot find the requested resource."
RETRY_UNAVAILABLE_AFTER = "5"  # seconds, in Retry-After of every 503


@dataclass(frozen=True)
class ErrorDetail:
    """One entry of an ACS error's `details` array."""

    code: str
    message: str
    target: str | None = None

    def to_json(self) -> dict:
        body = {"code": self.code, "message": self.message}
        if self.target is not None:
            body["target"] = self.target
        return body


@dataclass
class HttpError(Exception):
    """An error answer as it goes on the wire.

    `status` is the HTTP status, `code`/`message` go into `{"error": {...}}`, `details` into its
    `details` array. `error_code_header` decides whether `x-ms-error-code` is sent: ACS omits it on
    its validation errors that carry details.
    """

    message: str
    code: str = "BadRequest"
    status: int = 400
    details: list[ErrorDetail] = field(default_factory=list)
    target: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def error_code_header(self) -> bool:
        return not self.details

    def to_body(self) -> dict:
        error: dict = {"code": self.code, "message": self.message}
        if self.target is not None:
            error["target"] = self.target
        if self.details:
            error["details"] = [detail.to_json() for detail in self.details]
        return {"error": error}


# -- refusals only HTTP knows (the same in every API) --------------------------------------------
def missing_api_version() -> HttpError:
    return HttpError(
        "The api-version query parameter (?api-version=) is required for all requests.",
        code="MissingApiVersionParameter",
    )


def unsupported_api_version(version: str, supported: str) -> HttpError:
    return HttpError(
        f"The api-version '{version}' is not supported. Supported versions: {supported}.",
        code="UnsupportedApiVersion",
    )


def payload_too_large(limit: int) -> HttpError:
    return HttpError(
        f"The request body is larger than the limit of {limit} bytes.", code="RequestEntityTooLarge", status=413
    )


def unsupported_media_type(message: str) -> HttpError:
    return HttpError(message, code="UnsupportedMediaType", status=415)


def not_found(message: str) -> HttpError:
    return HttpError(message, code="NotFound", status=404)


def internal_error() -> HttpError:
    """The answer to a bug: a refusal no table has a row for."""
    return HttpError("The server had an internal error.", code="InternalServerError", status=500)


# -- one table per API -----------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """How an API answers one domain error: always `status` and `code` (the OpenAPI document lists
    them from here), in the API's own `message` or else the error's, with what `extra` takes from
    the error (target, details, headers)."""

    status: int
    code: str
    message: str | None = None
    extra: Callable[[DomainError], dict] = lambda error: {}

    def __call__(self, error: DomainError) -> HttpError:
        return HttpError(self.message or error.message, code=self.code, status=self.status, **self.extra(error))


class ErrorTable:
    """How one API answers each domain error: one row per error type, nothing for the types it never meets."""

    def __init__(self, rows: Mapping[type[DomainError], Row]) -> None:
        self._rows = dict(rows)

    @property
    def error_types(self) -> frozenset[type[DomainError]]:
        return frozenset(self._rows)

    def row(self, error_type: type[DomainError]) -> Row:
        """The row answering `error_type`; KeyError when this API never meets it."""
        return self._rows[error_type]

    def http_error(self, error: Exception) -> HttpError | None:
        """The answer to a refusal: an HttpError as raised, a domain error by its row; None for
        anything else (a bug, answered as a 500)."""
        if isinstance(error, HttpError):
            return error
        row = self._rows.get(type(error))
        return row(error) if row is not None else None


def _numbered(status: int, sub_code: int, message: str | None = None) -> Row:
    """Call Automation's rows: ACS puts the numeric subcode, as a string, in `error.code`."""
    return Row(status, str(sub_code), message)


UNAVAILABLE = Row(503, "ServiceUnavailable", extra=lambda error: {"headers": {"Retry-After": RETRY_UNAVAILABLE_AFTER}})


# What every API answers alike: authentication, throttling, plain invalid requests, repeatability, outages.
_EVERY_API: dict[type[DomainError], Row] = {
    InvalidRequest: Row(400, "BadRequest", extra=lambda error: {"target": error.target}),
    Denied: Row(401, "Denied"),
    Throttled: Row(
        429, "TooManyRequests", "Too many requests. Retry after the number of seconds in the Retry-After header.",
        extra=lambda error: {"headers": {"Retry-After": str(error.retry_after)}},
    ),
    RepeatabilityWindowPassed: Row(412, "PreconditionFailed"),
    RequestIdReused: Row(400, "BadRequest"),
    OriginalRequestInProgress: Row(409, "Conflict"),
    ChangeContended: UNAVAILABLE,
    StorageUnavailable: UNAVAILABLE,
    IdentityUnavailable: UNAVAILABLE,
}

ROOMS_ERRORS = ErrorTable({
    **_EVERY_API,
    # ACS's validation answer: a generic message, the reason in one BadArgument detail.
    InvalidArgument: Row(
        400, "BadRequest", MALFORMED_SYNTAX,
        extra=lambda error: {"details": [ErrorDetail("BadArgument", error.message, error.target)]},
    ),
    RoomNotFound: Row(404, "NotFound", NOT_FOUND),
})

IDENTITY_ERRORS = ErrorTable({
    **_EVERY_API,
    IdentityNotFound: Row(404, "NotFound"),
})

ROOM_CALLS_ERRORS = ErrorTable({
    **_EVERY_API,
    RoomNotFound: Row(404, "NotFound", NOT_FOUND),
    NoCallYet: Row(404, "NotFound"),
    ParticipantNotFound: Row(404, "NotFound"),
    InsufficientScope: Row(403, "InsufficientScope"),
    NotInvited: Row(403, "NotInvited"),
    RoomNotOpenYet: Row(403, "RoomNotOpenYet"),
    RoomExpired: Row(403, "RoomExpired"),
    CallFull: Row(403, "CallFull"),
    MissingCapability: Row(403, "MissingCapability", extra=lambda error: {"target": error.capability}),
    DialOutDisabled: Row(403, "MissingCapability", extra=lambda error: {"target": Capability.ADD_PHONE_NUMBER.value}),
    NoActiveCall: Row(409, "NoActiveCall"),
    NotInCall: Row(409, "NotInCall"),
    AlreadyInCall: Row(409, "AlreadyInCall"),
    ConcurrentCallLimitReached: Row(409, "ConcurrentCallLimitReached"),
    GatewayUnavailable: UNAVAILABLE,
})

# Subcodes from ACS's Call Automation troubleshooting table.
CALL_AUTOMATION_ERRORS = ErrorTable({
    **_EVERY_API,
    InvalidRequest: _numbered(400, 8523),  # invalid argument
    RequestIdReused: _numbered(400, 8523),
    RoomExpired: _numbered(400, 8528, "The room has expired, so its call was terminated."),
    DialOutDisabled: _numbered(403, 7504),
    NotInvited: _numbered(403, 7602),  # invalid ACS target identity
    RoomNotFound: _numbered(404, 8522),  # call not found
    CallConnectionNotFound: _numbered(404, 8522),
    NoActiveCall: _numbered(404, 8522),
    ParticipantNotFound: _numbered(404, 8522),
    InvitationNotFound: _numbered(404, 8522),
    AlreadyInCall: _numbered(409, 8519),  # conflict
    TooManyConnections: _numbered(409, 8519),
    ConcurrentCallLimitReached: _numbered(409, 8530),  # call throttled: active calls limit reached
    GatewayUnavailable: UNAVAILABLE,
})

EVENTS_ERRORS = ErrorTable(_EVERY_API)
COMMON_ERRORS = ErrorTable(_EVERY_API)  # what every API answers alike: the OpenAPI document's shared answers
