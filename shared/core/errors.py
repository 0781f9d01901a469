"""The domain's refusals: one type per reason, carrying its facts and no HTTP status (functions/errors.py answers them)."""
from __future__ import annotations

from datetime import datetime

from .timefmt import format_acs


class DomainError(Exception):
    """Base of every refusal the domain raises.

    `message` says in one sentence what went wrong; subclasses keep the facts as attributes. None
    of them knows how an API answers it: each API's table in functions/errors.py does.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- the request as sent ---------------------------------------------------------------------
class InvalidRequest(DomainError):
    """A request the domain cannot take as sent: a malformed body, header, identifier or value.

    Raised by the parsers of every context (and by functions/ for what it parses itself);
    `target` names the offending field when there is one.
    """

    def __init__(self, message: str, target: str | None = None) -> None:
        super().__init__(message)
        self.target = target


class InvalidArgument(DomainError):
    """A room value that breaks ACS's validity rules: the validity window, a participant's role.

    Raised by `shared.rooms.model`. `target` is the field as ACS names it in its BadArgument
    detail (`ValidUntil`, `$.participants.<raw id>.role`).
    """

    def __init__(self, message: str, target: str) -> None:
        super().__init__(message)
        self.target = target


# -- who calls -------------------------------------------------------------------------------
class Denied(DomainError):
    """The caller is not authenticated.

    Raised by `HmacVerifier.verify` for a missing or wrong signature, a body hash or date that does
    not match, and by `TokenSigner.check` and `IdentityService.verify` for an access token that is
    malformed, expired, revoked, issued elsewhere, or whose identity is gone.
    """


class InsufficientScope(DomainError):
    """Raised by `CallsService.check_token_scopes` when the access token grants none of `required`."""

    def __init__(self, required: tuple[str, ...]) -> None:
        super().__init__(f"The access token does not grant the {' or '.join(required)} scope.")
        self.required = required


class Throttled(DomainError):
    """Raised by `Throttle.admit` when the caller has spent its budget; a token is back in `retry_after` whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"The caller's request budget is spent; it refills in {retry_after} s.")
        self.retry_after = retry_after


# -- repeatable requests ---------------------------------------------------------------------
class RepeatabilityWindowPassed(DomainError):
    """Raised by `RepeatabilityHeaders.parse` when Repeatability-First-Sent is more than `minutes` old."""

    def __init__(self, minutes: int) -> None:
        super().__init__(f"Repeatability first sent header was not in {minutes} minutes window.")
        self.minutes = minutes


class RequestIdReused(DomainError):
    """Raised by `RepeatabilityGuard.run` when a Repeatability-Request-ID comes again with another method, path or body."""

    def __init__(self) -> None:
        super().__init__("The Repeatability-Request-ID was already used with a different request.")


class OriginalRequestInProgress(DomainError):
    """Raised by `RepeatabilityGuard.run` when the first request with the id is still running after the wait."""

    def __init__(self) -> None:
        super().__init__("The original request with this Repeatability-Request-ID is still in progress.")


# -- what is looked up -------------------------------------------------------------------------
class RoomNotFound(DomainError):
    """Raised when `room_id` names no live room (never created, deleted, or purged)."""

    def __init__(self, room_id: str) -> None:
        super().__init__(f"Room {room_id} was not found.")
        self.room_id = room_id


class IdentityNotFound(DomainError):
    """Raised by `IdentityService` for a user id of another resource, or of a user never created or deleted."""

    def __init__(self, user_id: str) -> None:
        super().__init__("The identity was not found in this resource.")
        self.user_id = user_id


class ParticipantNotFound(DomainError):
    """Raised when an action names an endpoint that is not (or no longer) in the call."""

    def __init__(self, message: str = "The participant is not in the call.") -> None:
        super().__init__(message)


class CallConnectionNotFound(DomainError):
    """Raised by `CallAutomationService` for a call connection id it never issued, or whose call or connection ended."""

    def __init__(self) -> None:
        super().__init__("Call not found.")


class InvitationNotFound(DomainError):
    """Raised by `CallAutomationService.cancel_add` when `invitation_id` no longer rings."""

    def __init__(self, invitation_id: str) -> None:
        super().__init__("No pending invitation with this id.")
        self.invitation_id = invitation_id


class NoCallYet(DomainError):
    """Raised by `CallsService.view` for a room that has never had a call."""

    def __init__(self, room_id: str) -> None:
        super().__init__("The room has never had a call.")
        self.room_id = room_id


# -- the room's rules ------------------------------------------------------------------------
class NotInvited(DomainError):
    """Raised by room-call use cases when `user_id` (the caller, or a user rung in) is not on the room's roster now."""

    def __init__(self, user_id: str, message: str = "The user is not invited to this room.") -> None:
        super().__init__(message)
        self.user_id = user_id


class MissingCapability(DomainError):
    """Raised by room-call actions the caller's `role` does not allow (`role` None: a phone endpoint)."""

    def __init__(self, capability: str, role: str | None) -> None:
        who = "A phone participant" if role is None else f"The {role} role"
        super().__init__(f"{who} does not have the {capability} capability.")
        self.capability = capability
        self.role = role


class DialOutDisabled(DomainError):
    """Raised when a Presenter or a Call Automation application dials out of a room whose pstnDialOutEnabled is false."""

    def __init__(self, room_id: str) -> None:
        super().__init__("PSTN dial-out is not enabled for this room (pstnDialOutEnabled is false).")
        self.room_id = room_id


class RoomNotOpenYet(DomainError):
    """Raised by room-call actions before the room's validFrom, `opens_at`."""

    def __init__(self, opens_at: datetime) -> None:
        super().__init__(f"The room is not open yet; it opens at {format_acs(opens_at)}.")
        self.opens_at = opens_at


class RoomExpired(DomainError):
    """Raised by room-call actions and Call Automation's connect from the room's validUntil, `expired_at`, on."""

    def __init__(self, expired_at: datetime) -> None:
        super().__init__(f"The room expired at {format_acs(expired_at)}.")
        self.expired_at = expired_at


# -- the call's state ------------------------------------------------------------------------
class NoActiveCall(DomainError):
    """Raised when an action needs the room's call in progress and there is none (never started, or ended)."""

    def __init__(self, message: str = "The room has no call in progress.") -> None:
        super().__init__(message)


class NotInCall(DomainError):
    """Raised by room-call actions of a roster user who is not connected to the call."""

    def __init__(self, user_id: str) -> None:
        super().__init__("The caller is not connected to the room's call.")
        self.user_id = user_id


class AlreadyInCall(DomainError):
    """Raised when ringing `user_id` into a call they are already in or being rung into."""

    def __init__(self, user_id: str) -> None:
        super().__init__("The user is already in the call or being invited.")
        self.user_id = user_id


class CallFull(DomainError):
    """Raised by `CallsService.join` when `limit` endpoints are already connected."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The call already has {limit} participants.")
        self.limit = limit


class TooManyConnections(DomainError):
    """Raised by `CallAutomationService.connect` when `limit` applications are already connected to the call."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The call already has {limit} connections.")
        self.limit = limit


class ConcurrentCallLimitReached(DomainError):
    """Raised by `PstnLines.acquire` when `number` already carries `limit` outbound calls."""

    def __init__(self, number: str, limit: int) -> None:
        super().__init__(f"The caller number {number} already has {limit} outbound calls in progress.")
        self.number = number
        self.limit = limit


# -- what the service depends on -------------------------------------------------------------
class ChangeContended(DomainError):
    """Raised by `ConflictRetry.run` when every attempt at a change lost its ETag race; `message` names what is contended."""


class StorageUnavailable(DomainError):
    """Raised by `storage_faults` when Table storage cannot be reached or fails (5xx); chained from the azure-core error."""

    def __init__(self) -> None:
        super().__init__("The storage service is unavailable; retry later.")


class IdentityUnavailable(DomainError):
    """Raised by `storage_faults` when the app's Entra identity gets no token, or storage refuses the
    token (a missing role assignment, one not propagated yet); `problem` says which, for the log."""

    def __init__(self, problem: str) -> None:
        super().__init__("The service cannot authenticate to its storage right now; retry later.")
        self.problem = problem


class GatewayUnavailable(DomainError):
    """Raised when a dial-out needs the PSTN gateway and none is configured, or it could not place the call."""
