"""Error hierarchy raised by the domain and mapped to ACS error bodies in one place (functions/pipeline.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

MALFORMED_SYNTAX = "The request could not be understood by the server due to malformed syntax."


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
class AnteroomError(Exception):
    """Base of every error that becomes an HTTP answer.

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


def bad_request(message: str, *, target: str | None = None) -> AnteroomError:
    """A plain 400 with code BadRequest."""
    return AnteroomError(message, target=target)


def invalid_argument(message: str, target: str) -> AnteroomError:
    """ACS's validation 400: generic message, the real reason in one BadArgument detail."""
    return AnteroomError(MALFORMED_SYNTAX, details=[ErrorDetail("BadArgument", message, target)])


def not_found(message: str = "The server cannot find the requested resource.") -> AnteroomError:
    return AnteroomError(message, code="NotFound", status=404)


def unauthorized(message: str) -> AnteroomError:
    """401 as ACS answers it: code Denied."""
    return AnteroomError(message, code="Denied", status=401)


def forbidden(message: str, *, code: str = "Forbidden") -> AnteroomError:
    return AnteroomError(message, code=code, status=403)


def conflict(message: str, *, code: str = "Conflict") -> AnteroomError:
    return AnteroomError(message, code=code, status=409)


def precondition_failed(message: str) -> AnteroomError:
    return AnteroomError(message, code="PreconditionFailed", status=412)


def payload_too_large(limit: int) -> AnteroomError:
    return AnteroomError(
        f"The request body is larger than the limit of {limit} bytes.",
        code="RequestEntityTooLarge",
        status=413,
    )


def unsupported_media_type(message: str) -> AnteroomError:
    return AnteroomError(message, code="UnsupportedMediaType", status=415)


def too_many_requests(retry_after_seconds: int) -> AnteroomError:
    return AnteroomError(
        "Too many requests. Retry after the number of seconds in the Retry-After header.",
        code="TooManyRequests",
        status=429,
        headers={"Retry-After": str(retry_after_seconds)},
    )


def service_unavailable(message: str, retry_after_seconds: int = 5) -> AnteroomError:
    return AnteroomError(
        message,
        code="ServiceUnavailable",
        status=503,
        headers={"Retry-After": str(retry_after_seconds)},
    )


def call_automation_error(status: int, sub_code: int, message: str) -> AnteroomError:
    """Call Automation's error shape: ACS puts the numeric subcode, as a string, in `error.code`."""
    return AnteroomError(message, code=str(sub_code), status=status)
