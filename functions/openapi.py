"""OpenAPI 3.1 description of every HTTP route of the app, served at `GET /openapi.json`."""
from __future__ import annotations

import functools
import json
from typing import Any

import azure.functions as func

from shared.automation.model import CONNECTION_STATES
from shared.automation.service import DEFAULT_INVITATION_TIMEOUT, MAX_INVITATION_TIMEOUT
from shared.calls.model import MAX_DISPLAY_NAME_LENGTH, Capability
from shared.calls.service import REMOTE_ACTIONS, SELF_ACTIONS
from shared.identity.tokens import DEFAULT_TOKEN_MINUTES, MAX_TOKEN_MINUTES, MIN_TOKEN_MINUTES, SCOPES
from shared.calls.pstn import DialOutcome
from shared.rooms.model import Role

from .call_automation import CALL_AUTOMATION_API
from .pipeline import IDENTITY_API, ROOMS_API, ApiVersions

bp = func.Blueprint()

OPENAPI_VERSION = "3.1.0"
HMAC_SECURITY = [{"acsHmac": []}]
BEARER_SECURITY = [{"accessToken": []}]

# Patterns of what the code emits or checks; JSON Schema patterns are ECMA-262, so [0-9] and not \d.
ROOM_ID = "^[0-9]{17}$"  # shared/rooms/model.py is_room_id: exactly 17 ASCII digits
GENERATED_ROOM_ID = "^99[0-9]{15}$"  # shared/rooms/model.py new_room_id
ACS_USER_RAW_ID = "^8:(acs|dod-acs|gcch-acs|spool):[A-Za-z0-9][A-Za-z0-9._-]{0,255}$"  # shared/core/identifiers.py
E164 = r"^\+[1-9][0-9]{1,14}$"
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# shared/core/timefmt.py format_acs: UTC as +00:00, microseconds with trailing zeros trimmed, none when zero.
ACS_DATE_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{0,5}[1-9])?\+00:00$"
IMF_FIXDATE = (
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT$"
)

# Values the code writes as string literals rather than enums (shared/calls/model.py, shared/calls/service.py).
ENDPOINT_STATES = ["connected", "ringing", "disconnected"]
CALL_STATES = ["active", "ended"]
LEAVE_REASONS = ["hungUp", "phoneHungUp", "removedByParticipant", "removedFromRoom", "callEnded", "roomExpired", "roomDeleted"]
END_REASONS = ["lastParticipantLeft", "roomExpired", "roomDeleted"]


# -- small builders ------------------------------------------------------------------------------
def _ref(name: str, kind: str = "schemas") -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def _or_null(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict, required: tuple[str, ...] = (), *, closed: bool = True, **extra: Any) -> dict:
    """An object schema. Responses are closed (no undocumented keys); request bodies are left open
    because the handlers ignore keys they do not know."""
    schema: dict = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _header(schema: dict, description: str, required: bool) -> dict:
    return {"description": description, "required": required, "schema": schema}


def _common_headers(status: int) -> dict:
    # The host's own 404 (an empty path segment matches no route) comes without the pipeline's headers.
    return {
        "MS-CV": _ref("MS-CV-required" if status != 404 else "MS-CV", "headers"),
        "x-ms-client-request-id": _ref("x-ms-client-request-id", "headers"),
    }


def _success(description: str, schema: dict | None, *, versions: str | None, status: int = 200, **headers) -> dict:
    """A 2xx answer. `versions` names the api-supported-versions header component (None: unversioned API)."""
    response: dict = {"description": description, "headers": {**_common_headers(status), **headers}}
    if versions:
        response["headers"]["api-supported-versions"] = _ref(versions, "headers")
    if schema is not None:
        response["content"] = _json(schema)
    return response


def _error(status: int, codes: list[str], description: str) -> dict:
    """An error answer whose `error.code` is one of `codes`."""
    headers = _common_headers(status)
    # x-ms-error-code is left out on 400s carrying details (as ACS does) and on the host's own 404.
    headers["x-ms-error-code"] = _ref("x-ms-error-code" if status in (400, 404) else "x-ms-error-code-required", "headers")
    if status in (429, 503):
        headers["Retry-After"] = _ref("Retry-After", "headers")
    schema = {
        "allOf": [_ref("CommunicationErrorResponse")],
        "properties": {"error": {"properties": {"code": {"enum": codes}}}},
    }
    return {"description": description, "headers": headers, "content": _json(schema)}


API_VERSION_CODES = ["MissingApiVersionParameter", "UnsupportedApiVersion"]


def _errors(*, versioned: bool, **by_status: list[str]) -> dict:
    """The error answers of one pipeline operation: its own (`e400=[...]`) plus those every one has."""
    descriptions = {
        400: "The request is malformed or fails validation.",
        403: "The caller may not do this (scope, invitation, room window or role capability).",
        404: "The resource does not exist (or a path segment is empty).",
        409: "The request conflicts with the current state.",
        412: "A precondition failed.",
    }
    responses: dict = {}
    codes = {int(name[1:]): list(values) for name, values in by_status.items()}
    if versioned:
        codes[400] = codes.get(400, []) + API_VERSION_CODES
    for status in sorted(codes):
        responses[str(status)] = _error(status, codes[status], descriptions[status])
    for status, name in ((401, "Unauthorized"), (413, "PayloadTooLarge"), (415, "UnsupportedMediaType"),
                         (429, "TooManyRequests"), (500, "InternalServerError"), (503, "ServiceUnavailable")):
        responses[str(status)] = _ref(name, "responses")
    return dict(sorted(responses.items()))


def _operation(
    operation_id: str, summary: str, tag: str, responses: dict, *,
    security: list, parameters: list | None = None, body: dict | None = None, description: str | None = None,
) -> dict:
    operation: dict = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = body
    operation["security"] = security
    operation["responses"] = responses
    return operation


def _body(schema: dict, *, required: bool, media_type: str = "application/json", description: str = "") -> dict:
    body: dict = {"required": required, "content": {media_type: {"schema": schema}}}
    if description:
        body["description"] = description
    return body


def _path_parameter(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


def _api_version_parameter(versions: ApiVersions) -> dict:
    return {
        "name": "api-version",
        "in": "query",
        "required": True,
        "description": "Version of the API to invoke. On nextLink continuation requests the Rooms SDK's "
        "enum spelling (`ApiVersion.V2025_03_13`) is accepted too.",
        "schema": {"type": "string", "enum": list(versions.advertised)},
    }


# -- components ------------------------------------------------------------------------------------
def _schemas() -> dict:
    acs_date_time = {"$ref": "#/components/schemas/AcsDateTime"}
    display_name = {"type": "string", "minLength": 1, "maxLength": MAX_DISPLAY_NAME_LENGTH}
    request_date_time = {"type": ["string", "null"], "format": "date-time"}
    participant_map = {
        "type": "object",
        "propertyNames": {"pattern": ACS_USER_RAW_ID},
        "additionalProperties": _or_null(_ref("ParticipantProperties")),
        "description": "Keyed by the participant's raw id (ACS users only).",
    }
    user_identifier = _object(
        {
            "kind": {"const": "communicationUser"},
            "rawId": {"type": "string", "pattern": ACS_USER_RAW_ID},
            "communicationUser": _object({"id": {"type": "string", "pattern": ACS_USER_RAW_ID}}, ("id",)),
        },
        ("kind", "rawId", "communicationUser"),
    )
    phone_identifier = _object(
        {
            "kind": {"const": "phoneNumber"},
            "rawId": {"type": "string", "pattern": "^4:" + E164[1:]},
            "phoneNumber": _object({"value": {"type": "string", "pattern": E164}}, ("value",)),
        },
        ("kind", "rawId", "phoneNumber"),
    )
    return {
        # ---- common (acs-common 2023-11-15) ----
        "CommunicationErrorResponse": _object(
            {"error": _ref("CommunicationError")}, ("error",), description="The Communication Services error."
        ),
        "CommunicationError": _object(
            {
                "code": {"type": "string", "description": "The error code."},
                "message": {"type": "string", "description": "The error message."},
                "target": {"type": "string", "description": "The error target."},
                "details": {"type": "array", "items": _ref("CommunicationError"),
                            "description": "Further details about specific errors that led to this error."},
                "innererror": _ref("CommunicationError"),
            },
            ("code", "message"),
        ),
        "AcsDateTime": {
            "type": "string",
            "format": "date-time",
            "pattern": ACS_DATE_TIME,
            "description": "RFC 3339 in UTC written as `+00:00`; microseconds with trailing zeros trimmed, "
            "no fraction when zero.",
            "examples": ["2023-06-26T05:46:17.815913+00:00", "2023-06-30T00:00:00+00:00"],
        },
        # ---- Rooms (communicationservicesrooms 2025-03-13) ----
        "Role": {
            "type": "string",
            "enum": [role.value for role in Role],
            "description": "The role of a room participant. The default value is Attendee. Requests may use any letter case.",
        },
        "ParticipantProperties": _object(
            {"role": _or_null(_ref("Role"))},
            closed=False,
            description="`role` missing or null means Attendee (the official model requires `role`).",
        ),
        "CreateRoomRequest": _object(
            {
                "validFrom": {**request_date_time, "description": "When the room opens; default now."},
                "validUntil": {**request_date_time, "description": "When the room closes; default validFrom + 180 days."},
                "pstnDialOutEnabled": {"type": ["boolean", "null"], "description": "Default false."},
                "participants": _or_null(participant_map),
            },
            closed=False,
            description="All properties optional; null means the default. A null participant entry is ignored.",
        ),
        "UpdateRoomRequest": _object(
            {
                "validFrom": request_date_time,
                "validUntil": request_date_time,
                "pstnDialOutEnabled": {"type": ["boolean", "null"]},
            },
            closed=False,
            description="Merge-patch: a property left out or null keeps its stored value.",
        ),
        "UpdateParticipantsRequest": _object(
            {"participants": {**participant_map, "description": "A role upserts the participant; null removes it."}},
            ("participants",),
            closed=False,
        ),
        "RoomModel": _object(
            {
                "id": {"type": "string", "pattern": GENERATED_ROOM_ID, "description": "Server-generated room id."},
                "createdAt": acs_date_time,
                "validFrom": acs_date_time,
                "validUntil": acs_date_time,
                "pstnDialOutEnabled": {"type": "boolean"},
            },
            ("createdAt", "id", "validFrom", "validUntil", "pstnDialOutEnabled"),
            description="The meeting room. Participants are not part of it.",
        ),
        "RoomsCollection": _object(
            {
                "value": {"type": "array", "items": _ref("RoomModel")},
                "nextLink": {"type": "string", "format": "uri", "description": "Absolute URL of the next page."},
            },
            ("value",),
        ),
        "RoomParticipant": _object(
            {"rawId": {"type": "string", "pattern": ACS_USER_RAW_ID}, "role": _ref("Role")}, ("rawId", "role")
        ),
        "ParticipantsCollection": _object(
            {
                "value": {"type": "array", "items": _ref("RoomParticipant")},
                "nextLink": {"type": "string", "format": "uri", "description": "Absolute URL of the next page."},
            },
            ("value",),
        ),
        "UpdateParticipantsResult": _object({}, description="Always the empty object."),
        # ---- Identity (communicationservicesidentity 2023-10-01) ----
        "CommunicationIdentityTokenScope": {"type": "string", "enum": list(SCOPES)},
        "CommunicationIdentityCreateRequest": _object(
            {
                "createTokenWithScopes": {
                    "type": ["array", "null"], "items": _ref("CommunicationIdentityTokenScope"), "minItems": 1,
                    "description": "Also issue a token with these scopes.",
                },
                "expiresInMinutes": _expires_in_minutes(),
            },
            closed=False,
        ),
        "CommunicationIdentityAccessTokenRequest": _object(
            {
                "scopes": {"type": "array", "items": _ref("CommunicationIdentityTokenScope"), "minItems": 1},
                "expiresInMinutes": _expires_in_minutes(),
            },
            ("scopes",),
            closed=False,
        ),
        "CommunicationIdentity": _object(
            {"id": {"type": "string", "pattern": f"^8:acs:{UUID}_{UUID}$", "description": "8:acs:<resource id>_<user id>"}},
            ("id",),
        ),
        "CommunicationIdentityAccessToken": _object(
            {
                "token": {"type": "string", "pattern": "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$",
                          "description": "A signed JWT."},
                "expiresOn": acs_date_time,
            },
            ("token", "expiresOn"),
        ),
        "CommunicationIdentityAccessTokenResult": _object(
            {"identity": _ref("CommunicationIdentity"), "accessToken": _ref("CommunicationIdentityAccessToken")},
            ("identity",),
            description="`accessToken` only when `createTokenWithScopes` was given.",
        ),
        # ---- room-call client API (ours) ----
        "CommunicationIdentifier": {"oneOf": [user_identifier, phone_identifier],
                                    "description": "A CommunicationIdentifierModel with kind and rawId."},
        "CallParticipant": _object(
            {
                "participantId": {"type": "string", "format": "uuid", "pattern": f"^{UUID}$"},
                "identifier": _ref("CommunicationIdentifier"),
                "role": {**_or_null(_ref("Role")),
                         "description": "The live roster role; null for phones, users off the roster, and in the "
                         "answers of actions."},
                "state": {"type": "string", "enum": ENDPOINT_STATES},
                "isMuted": {"type": "boolean"},
                "isVideoOn": {"type": "boolean"},
                "isScreenSharing": {"type": "boolean"},
                "displayName": display_name,
                "joinedAt": acs_date_time,
                "leftAt": acs_date_time,
                "leaveReason": {"type": "string", "enum": LEAVE_REASONS},
            },
            ("participantId", "identifier", "role", "state", "isMuted", "isVideoOn", "isScreenSharing"),
            dependentRequired={"leftAt": ["leaveReason"], "leaveReason": ["leftAt"]},
        ),
        "RoomCall": _object(
            {
                "serverCallId": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
                "roomId": {"type": "string", "pattern": GENERATED_ROOM_ID},
                "state": {"type": "string", "enum": CALL_STATES},
                "startedAt": acs_date_time,
                "correlationId": {"type": "string", "format": "uuid", "pattern": f"^{UUID}$"},
                "participants": {"type": "array", "items": _ref("CallParticipant"),
                                 "description": "Every endpoint of the call, ringing and disconnected ones included."},
                "endedAt": acs_date_time,
                "endReason": {"type": "string", "enum": END_REASONS},
            },
            ("serverCallId", "roomId", "state", "startedAt", "correlationId", "participants"),
            dependentRequired={"endedAt": ["endReason"], "endReason": ["endedAt"]},
        ),
        "Capability": {"type": "string", "enum": [capability.value for capability in Capability]},
        "JoinRoomCallResult": _object(
            {
                "serverCallId": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
                "participantId": {"type": "string", "format": "uuid", "pattern": f"^{UUID}$"},
                "role": _ref("Role"),
                "capabilities": {"type": "array", "items": _ref("Capability"), "uniqueItems": True,
                                 "description": "What the caller may do now, sorted."},
                "call": _ref("RoomCall"),
            },
            ("serverCallId", "participantId", "role", "capabilities", "call"),
        ),
        "JoinRoomCallRequest": _object(
            {"displayName": {**display_name, "description": "The name others see (optional; at most "
                             f"{MAX_DISPLAY_NAME_LENGTH} characters, no control characters)."}},
            closed=False,
        ),
        "InvitationRequest": _object(
            {"rawId": {"type": "string", "pattern": ACS_USER_RAW_ID, "description": "A user on the room's roster."}},
            ("rawId",),
            closed=False,
        ),
        "DialOutRequest": _object(
            {
                "phoneNumber": {"type": "string", "pattern": E164},
                "callerIdNumber": {"type": "string", "pattern": E164,
                                   "description": "One of the resource's numbers (ANTEROOM_PSTN_CALLER_NUMBERS)."},
            },
            ("phoneNumber", "callerIdNumber"),
            closed=False,
        ),
        "DialOutResult": _object(
            {
                "outcome": {"type": "string", "enum": [outcome.value for outcome in DialOutcome]},
                "participant": _ref("CallParticipant"),
            },
            ("outcome",),
            description="`participant` (the phone, now in the call) only when the outcome is answered.",
        ),
        "PstnEventRequest": _object(
            {
                "reference": {"type": "string", "pattern": f"^[0-9]{{17}}\\|{UUID}$",
                              "description": "`<roomId>|<participantId>` as given to the gateway when dialling."},
                "action": {"type": "string", "enum": list(SELF_ACTIONS)},
            },
            ("reference", "action"),
            closed=False,
        ),
        "ReplayCallEventsRequest": _object(
            {
                "endpoint": {"type": "string", "format": "uri", "description": "The webhook to deliver to (http or https)."},
                "roomId": {"type": ["string", "null"]},
                "serverCallId": {"type": ["string", "null"]},
                "from": request_date_time,
                "until": request_date_time,
                "schema": {"type": ["string", "null"], "enum": ["EventGridSchema", "CloudEventSchemaV1_0", None],
                           "description": "Defaults to the app's ANTEROOM_EVENTGRID_SCHEMA."},
            },
            ("endpoint",),
            closed=False,
            description="Name at least one selector: roomId, serverCallId or a time range.",
        ),
        "ReplayCallEventsResult": _object(
            {"replayed": {"type": "integer", "minimum": 0}, "failed": {"type": "integer", "minimum": 0}},
            ("replayed", "failed"),
        ),
    }


def _expires_in_minutes() -> dict:
    return {
        "type": ["integer", "null"],
        "minimum": MIN_TOKEN_MINUTES,
        "maximum": MAX_TOKEN_MINUTES,
        "default": DEFAULT_TOKEN_MINUTES,
        "description": "Token lifetime in minutes.",
    }


def _headers() -> dict:
    ms_cv = {"type": "string", "pattern": "^[A-Za-z0-9+/]{22}$"}
    error_code = {"type": "string"}
    return {
        "MS-CV": _header(ms_cv, "Correlation id of the request (the operation log's CorrelationId).", False),
        "MS-CV-required": _header(ms_cv, "Correlation id of the request (the operation log's CorrelationId).", True),
        "x-ms-client-request-id": _header({"type": "string"}, "Echo of the request's x-ms-client-request-id.", False),
        "x-ms-error-code": _header(error_code, "The error code; absent on validation errors carrying details.", False),
        "x-ms-error-code-required": _header(error_code, "The error code, as in the body.", True),
        "Retry-After": _header({"type": "integer", "minimum": 0}, "Seconds to wait before retrying.", True),
        "rooms-api-supported-versions": _header({"type": "string", "const": ROOMS_API.header}, "The Rooms api-versions served.", True),
        "identity-api-supported-versions": _header({"type": "string", "const": IDENTITY_API.header}, "The Identity api-versions served.", True),
        "call-automation-api-supported-versions": _header(
            {"type": "string", "const": CALL_AUTOMATION_API.header}, "The Call Automation api-versions served.", True
        ),
    }


def _shared_responses() -> dict:
    return {
        "Unauthorized": _error(401, ["Denied"], "Authentication failed (HMAC signature, or access token)."),
        "PayloadTooLarge": _error(413, ["RequestEntityTooLarge"], "The body exceeds ANTEROOM_MAX_BODY_BYTES."),
        "UnsupportedMediaType": _error(
            415, ["UnsupportedMediaType"], "A body that is not application/json or application/merge-patch+json."
        ),
        "TooManyRequests": _error(
            429, ["TooManyRequests"], "The caller (access key or token user) is over ANTEROOM_THROTTLE_REQUESTS per "
            "ANTEROOM_THROTTLE_WINDOW_SECONDS on this instance; retry after Retry-After seconds."
        ),
        "InternalServerError": _error(500, ["InternalServerError"], "An unexpected failure."),
        "ServiceUnavailable": _error(503, ["ServiceUnavailable"], "Storage or the PSTN gateway is unavailable, or "
                                     "contention did not settle; retry after Retry-After seconds."),
    }


# -- paths -------------------------------------------------------------------------------------------
def _rooms_paths() -> dict:
    version = _api_version_parameter(ROOMS_API)
    room_id = _path_parameter("roomId", {"type": "string", "pattern": ROOM_ID}, "The room id (17 digits).")
    next_link = {
        "name": "nextLink", "in": "query", "required": False, "schema": {"type": "string"},
        "description": "Opaque continuation token, as found in the previous page's nextLink URL.",
    }
    repeatability = [
        {"name": "Repeatability-Request-ID", "in": "header", "required": False,
         "schema": {"type": "string", "format": "uuid"},
         "description": "Makes the create repeatable: a repeat gets the first answer again."},
        {"name": "Repeatability-First-Sent", "in": "header", "required": False,
         "schema": {"type": "string", "pattern": IMF_FIXDATE},
         "description": "IMF-fixdate of the first attempt; required with Repeatability-Request-ID."},
    ]
    versions = "rooms-api-supported-versions"
    hmac = HMAC_SECURITY
    merge_patch = "application/merge-patch+json"
    return {
        "/rooms": {
            "post": _operation(
                "Rooms_Create", "Creates a new room.", "Rooms",
                {
                    "201": _success(
                        "The new room.", _ref("RoomModel"), versions=versions, status=201,
                        Location=_header({"type": "string", "format": "uri"}, "URL of the new room.", True),
                        **{"Repeatability-Result": _header(
                            {"type": "string", "const": "accepted"}, "Sent when the request carried repeatability headers.", False
                        )},
                    ),
                    **_errors(versioned=True, e400=["BadRequest"], e409=["Conflict"], e412=["PreconditionFailed"]),
                },
                security=hmac, parameters=[version, *repeatability],
                body=_body(_ref("CreateRoomRequest"), required=False, description="An empty body creates a room with defaults."),
            ),
            "get": _operation(
                "Rooms_List", "Lists the active rooms, newest first.", "Rooms",
                {
                    "200": _success("One page of rooms.", _ref("RoomsCollection"), versions=versions),
                    **_errors(versioned=True, e400=["BadRequest"]),
                },
                security=hmac, parameters=[version, next_link],
            ),
        },
        "/rooms/{roomId}": {
            "get": _operation(
                "Rooms_Get", "Gets a room.", "Rooms",
                {
                    "200": _success("The room.", _ref("RoomModel"), versions=versions),
                    **_errors(versioned=True, e400=["BadRequest"], e404=["NotFound"]),
                },
                security=hmac, parameters=[room_id, version],
            ),
            "patch": _operation(
                "Rooms_Update", "Updates a room (merge-patch).", "Rooms",
                {
                    "200": _success("The updated room.", _ref("RoomModel"), versions=versions),
                    **_errors(versioned=True, e400=["BadRequest"], e404=["NotFound"]),
                },
                security=hmac, parameters=[room_id, version],
                body=_body(_ref("UpdateRoomRequest"), required=True, media_type=merge_patch),
            ),
            "delete": _operation(
                "Rooms_Delete", "Deletes a room (again and again until it is purged).", "Rooms",
                {
                    "204": _success("The room is deleted.", None, versions=versions, status=204),
                    **_errors(versioned=True, e400=["BadRequest"], e404=["NotFound"]),
                },
                security=hmac, parameters=[room_id, version],
            ),
        },
        "/rooms/{roomId}/participants": {
            "get": _operation(
                "Participants_List", "Lists the room's participants.", "Rooms",
                {
                    "200": _success("One page of participants.", _ref("ParticipantsCollection"), versions=versions),
                    **_errors(versioned=True, e400=["BadRequest"], e404=["NotFound"]),
                },
                security=hmac, parameters=[room_id, version, next_link],
            ),
            "patch": _operation(
                "Participants_Update", "Adds, updates or removes participants, all or nothing.", "Rooms",
                {
                    "200": _success("The roster changed.", _ref("UpdateParticipantsResult"), versions=versions),
                    **_errors(versioned=True, e400=["BadRequest"], e404=["NotFound"]),
                },
                security=hmac, parameters=[room_id, version],
                body=_body(_ref("UpdateParticipantsRequest"), required=True, media_type=merge_patch),
            ),
        },
    }


def _identity_paths() -> dict:
    version = _api_version_parameter(IDENTITY_API)
    identity_id = _path_parameter(
        "id", {"type": "string"}, "The user's raw id, 8:acs:<resource id>_<user id> (URL-encoded); others answer 404."
    )
    versions = "identity-api-supported-versions"
    hmac = HMAC_SECURITY
    return {
        "/identities": {
            "post": _operation(
                "CommunicationIdentity_Create", "Creates a user, and optionally a token for it.", "Identity",
                {
                    "201": _success("The new user.", _ref("CommunicationIdentityAccessTokenResult"),
                                    versions=versions, status=201),
                    **_errors(versioned=True, e400=["BadRequest"]),
                },
                security=hmac, parameters=[version],
                body=_body(_ref("CommunicationIdentityCreateRequest"), required=False),
            ),
        },
        "/identities/{id}": {
            "delete": _operation(
                "CommunicationIdentity_Delete", "Deletes a user; its tokens stop working.", "Identity",
                {
                    "204": _success("The user is deleted.", None, versions=versions, status=204),
                    **_errors(versioned=True, e404=["NotFound"]),
                },
                security=hmac, parameters=[identity_id, version],
            ),
        },
        "/identities/{id}/:issueAccessToken": {
            "post": _operation(
                "CommunicationIdentity_IssueAccessToken", "Issues an access token for a user.", "Identity",
                {
                    "200": _success("The token.", _ref("CommunicationIdentityAccessToken"), versions=versions),
                    **_errors(versioned=True, e400=["BadRequest"], e404=["NotFound"]),
                },
                security=hmac, parameters=[identity_id, version],
                body=_body(_ref("CommunicationIdentityAccessTokenRequest"), required=True),
            ),
        },
        "/identities/{id}/:revokeAccessTokens": {
            "post": _operation(
                "CommunicationIdentity_RevokeAccessTokens", "Revokes every token issued to a user so far.", "Identity",
                {
                    "204": _success("The tokens are revoked.", None, versions=versions, status=204),
                    **_errors(versioned=True, e404=["NotFound"]),
                },
                security=hmac, parameters=[identity_id, version],
            ),
        },
    }


def _room_call_paths() -> dict:
    room_id = _path_parameter("roomId", {"type": "string", "pattern": ROOM_ID}, "The room id (17 digits).")
    participant_id = _path_parameter("participantId", {"type": "string", "format": "uuid"},
                                     "The target endpoint's participantId.")
    self_action = _path_parameter("action", {"type": "string", "enum": list(SELF_ACTIONS)}, "What to do to oneself.")
    remote_action = _path_parameter("action", {"type": "string", "enum": list(REMOTE_ACTIONS)}, "What to do to the participant.")
    bearer = BEARER_SECURITY
    room_gate = ["InsufficientScope", "RoomNotOpenYet", "RoomExpired", "NotInvited"]
    acting = room_gate + ["MissingCapability"]
    in_call = ["NoActiveCall", "NotInCall"]
    return {
        "/roomCalls/{roomId}/join": {
            "post": _operation(
                "JoinRoomCall", "Joins (or starts) the room's call.", "RoomCalls",
                {
                    "200": _success("The caller is in the call (joining again changes nothing).",
                                    _ref("JoinRoomCallResult"), versions=None),
                    **_errors(versioned=False, e400=["BadRequest"], e403=room_gate + ["CallFull"], e404=["NotFound"]),
                },
                security=bearer, parameters=[room_id], body=_body(_ref("JoinRoomCallRequest"), required=False),
                description="Only users on the room's roster, only between validFrom and validUntil.",
            ),
        },
        "/roomCalls/{roomId}": {
            "get": _operation(
                "GetRoomCall", "Gets the room's current or last call.", "RoomCalls",
                {
                    "200": _success("The call.", _ref("RoomCall"), versions=None),
                    **_errors(versioned=False, e400=["BadRequest"], e403=["InsufficientScope", "NotInvited"],
                              e404=["NotFound"]),
                },
                security=bearer, parameters=[room_id],
                description="Also a deleted room's last call (endReason roomDeleted), to the users on its roster, "
                            "until the room is purged (ANTEROOM_EXPIRED_ROOM_GRACE_HOURS after the deletion).",
            ),
        },
        "/roomCalls/{roomId}/me/{action}": {
            "post": _operation(
                "ActOnSelf", "Leaves, or changes one's own microphone, video or screen sharing.", "RoomCalls",
                {
                    "200": _success("The caller's endpoint after the action.", _ref("CallParticipant"), versions=None),
                    **_errors(versioned=False, e400=["BadRequest"], e403=acting, e404=["NotFound"], e409=in_call),
                },
                security=bearer, parameters=[room_id, self_action],
            ),
        },
        "/roomCalls/{roomId}/participants/{participantId}/{action}": {
            "post": _operation(
                "ActOnParticipant", "Mutes or removes another endpoint (Presenter).", "RoomCalls",
                {
                    "200": _success("The target endpoint after the action.", _ref("CallParticipant"), versions=None),
                    **_errors(versioned=False, e400=["BadRequest"], e403=acting, e404=["NotFound"], e409=in_call),
                },
                security=bearer, parameters=[room_id, participant_id, remote_action],
            ),
        },
        "/roomCalls/{roomId}/invitations": {
            "post": _operation(
                "InviteToRoomCall", "Rings a roster user into the call.", "RoomCalls",
                {
                    "201": _success("The invited endpoint, ringing.", _ref("CallParticipant"), versions=None, status=201),
                    **_errors(versioned=False, e400=["BadRequest"], e403=acting, e404=["NotFound"],
                              e409=in_call + ["AlreadyInCall"]),
                },
                security=bearer, parameters=[room_id], body=_body(_ref("InvitationRequest"), required=True),
            ),
        },
        "/roomCalls/{roomId}/dialOut": {
            "post": _operation(
                "DialOutFromRoomCall", "Dials a phone into the call (Presenter, room with pstnDialOutEnabled).",
                "RoomCalls",
                {
                    "200": _success("How the dial went.", _ref("DialOutResult"), versions=None),
                    **_errors(versioned=False, e400=["BadRequest"], e403=acting, e404=["NotFound"],
                              e409=in_call + ["ConcurrentCallLimitReached"]),
                },
                security=bearer, parameters=[room_id], body=_body(_ref("DialOutRequest"), required=True),
            ),
        },
        "/pstn/events": {
            "post": _operation(
                "PstnEvent", "The PSTN gateway reports a phone-side action (hang-up, mute).", "PstnGateway",
                {
                    "200": _success("The phone endpoint after the action.", _ref("CallParticipant"), versions=None),
                    **_errors(versioned=False, e400=["BadRequest"], e403=["RoomNotOpenYet", "RoomExpired", "MissingCapability"],
                              e404=["NotFound"], e409=in_call),
                },
                security=HMAC_SECURITY, body=_body(_ref("PstnEventRequest"), required=True),
                description="Signed with the resource's access key like the management APIs; no api-version.",
            ),
        },
    }


def _event_paths() -> dict:
    return {
        "/callEvents:replay": {
            "post": _operation(
                "ReplayCallEvents", "Delivers stored call events again, with their original ids, to one webhook.",
                "CallEvents",
                {
                    "200": _success("How many events the webhook accepted and refused.",
                                    _ref("ReplayCallEventsResult"), versions=None),
                    **_errors(versioned=False, e400=["BadRequest"]),
                },
                security=HMAC_SECURITY, body=_body(_ref("ReplayCallEventsRequest"), required=True),
                description="One event per POST, as Event Grid delivers; signed like the management APIs.",
            ),
        },
    }


# -- Call Automation (communicationservicescallautomation 2024-09-15 shapes, room calls only) ---------
def _call_automation_schemas() -> dict:
    identifier = _object(
        {
            "kind": {"type": "string", "enum": ["communicationUser", "phoneNumber"]},
            "rawId": {"type": "string"},
            "communicationUser": _object({"id": {"type": "string", "pattern": ACS_USER_RAW_ID}}, ("id",)),
            "phoneNumber": _object({"value": {"type": "string", "pattern": E164}}, ("value",)),
        },
        ("kind", "rawId"),
        description="CommunicationIdentifierModel: kind and rawId, plus the property of its kind.",
    )
    # Requests carry the SDK's identifiers: rawId and one kind property; the handlers read what they know.
    identifier_in = _object(
        {"rawId": {"type": "string"}, "kind": {"type": "string"},
         "communicationUser": {"type": "object"}, "phoneNumber": {"type": "object"}},
        closed=False, description="A phone number or an ACS user, as the SDK serialises identifiers.",
    )
    context = {"type": ["string", "null"], "description": "Echoed in the answer and the callbacks."}
    callback = {"type": ["string", "null"], "format": "uri", "description": "Callbacks of this action go here instead."}
    return {
        "CallAutomationIdentifier": identifier,
        "CallAutomationIdentifierInput": identifier_in,
        "CallConnectionProperties": _object(
            {
                "callConnectionId": {"type": "string"},
                "serverCallId": {"type": "string"},
                "targets": {"type": "array", "items": _ref("CallAutomationIdentifier"), "maxItems": 0},
                "callConnectionState": {"type": "string", "enum": list(CONNECTION_STATES)},
                "callbackUri": {"type": "string"},
                "correlationId": {"type": "string"},
            },
            ("callConnectionId", "serverCallId", "targets", "callConnectionState", "callbackUri", "correlationId"),
        ),
        "CallAutomationParticipant": _object(
            {"identifier": _ref("CallAutomationIdentifier"), "isMuted": {"type": "boolean"}, "isOnHold": {"type": "boolean"}},
            ("identifier", "isMuted", "isOnHold"),
        ),
        "CallAutomationParticipants": _object(
            {"value": {"type": "array", "items": _ref("CallAutomationParticipant")}}, ("value",),
            description="Every endpoint connected now, in one page.",
        ),
        "ConnectRequest": _object(
            {
                "callLocator": _object(
                    {"roomId": {"type": "string"}, "kind": {"type": "string", "const": "roomCallLocator"}},
                    ("roomId",), closed=False,
                ),
                "callbackUri": {"type": "string", "format": "uri"},
                "operationContext": context,
            },
            ("callLocator", "callbackUri"), closed=False,
        ),
        "AddParticipantRequest": _object(
            {
                "participantToAdd": _ref("CallAutomationIdentifierInput"),
                "sourceCallerIdNumber": _or_null(_object({"value": {"type": "string"}}, ("value",), closed=False)),
                "invitationTimeoutInSeconds": {
                    "type": ["integer", "null"], "minimum": 1, "maximum": MAX_INVITATION_TIMEOUT,
                    "description": f"How long the invitation rings (default {DEFAULT_INVITATION_TIMEOUT}).",
                },
                "operationContext": context,
                "operationCallbackUri": callback,
            },
            ("participantToAdd",), closed=False,
        ),
        "AddParticipantResult": _object(
            {"participant": _ref("CallAutomationParticipant"), "operationContext": context,
             "invitationId": {"type": "string", "format": "uuid"}},
            ("participant", "operationContext", "invitationId"),
        ),
        "RemoveParticipantRequest": _object(
            {"participantToRemove": _ref("CallAutomationIdentifierInput"), "operationContext": context,
             "operationCallbackUri": callback},
            ("participantToRemove",), closed=False,
        ),
        "MuteParticipantsRequest": _object(
            {"targetParticipants": {"type": "array", "items": _ref("CallAutomationIdentifierInput"),
                                    "minItems": 1, "maxItems": 1},
             "operationContext": context},
            ("targetParticipants",), closed=False,
        ),
        "CancelAddParticipantRequest": _object(
            {"invitationId": {"type": "string"}, "operationContext": context, "operationCallbackUri": callback},
            ("invitationId",), closed=False,
        ),
        "CancelAddParticipantResult": _object(
            {"invitationId": {"type": "string"}, "operationContext": context}, ("invitationId", "operationContext"),
        ),
        "OperationContextResult": _object({"operationContext": context}, ("operationContext",)),
    }


def _call_automation_paths() -> dict:
    version = _api_version_parameter(CALL_AUTOMATION_API)
    connection = _path_parameter("callConnectionId", {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
                                 "The call connection id Connect answered.")
    raw_id = _path_parameter("participantRawId", {"type": "string"}, "The participant's raw id (`4:+1...`, `8:acs:...`).")
    repeatability = [
        {"name": "Repeatability-Request-ID", "in": "header", "required": False, "schema": {"type": "string", "format": "uuid"},
         "description": "The SDK sends one on every action: a repeat gets the first answer again."},
        {"name": "Repeatability-First-Sent", "in": "header", "required": False,
         "schema": {"type": "string", "pattern": IMF_FIXDATE}, "description": "IMF-fixdate of the first attempt."},
    ]
    versions = "call-automation-api-supported-versions"
    not_found = {"e404": ["8522"]}
    tag = "CallAutomation"

    def action(operation_id: str, summary: str, status: int, result: str | None, body: str, **errors) -> dict:
        answer = _success(summary, _ref(result) if result else None, versions=versions, status=status)
        return {
            "post": _operation(
                operation_id, summary, tag,
                {str(status): answer, **_errors(versioned=True, e400=["8523"], e412=["PreconditionFailed"], **not_found, **errors)},
                security=HMAC_SECURITY, parameters=[connection, version, *repeatability],
                body=_body(_ref(body), required=True) if body else None,
            ),
        }

    base = "/calling/callConnections/{callConnectionId}"
    return {
        "/calling/callConnections:connect": {
            "post": _operation(
                "ConnectCall", "Connects to a room's active call (roomCallLocator only).", tag,
                {
                    "200": _success("The connection; CallConnected and ParticipantsUpdated follow.",
                                    _ref("CallConnectionProperties"), versions=versions),
                    **_errors(versioned=True, e400=["8523", "8528"], e404=["8522"], e409=["8519"], e412=["PreconditionFailed"]),
                },
                security=HMAC_SECURITY, parameters=[version, *repeatability],
                body=_body(_ref("ConnectRequest"), required=True),
                description="404 8522 for an unknown room or one without an active call; 400 8528 for an expired room.",
            ),
        },
        base: {
            "get": _operation(
                "GetCallConnection", "Gets the connection's properties.", tag,
                {"200": _success("The connection.", _ref("CallConnectionProperties"), versions=versions),
                 **_errors(versioned=True, **not_found)},
                security=HMAC_SECURITY, parameters=[connection, version],
            ),
            "delete": _operation(
                "HangUpCallConnection", "This application leaves the call; the others stay.", tag,
                {"204": _success("Left (again, for a repeat); CallDisconnected follows.", None, versions=versions, status=204),
                 **_errors(versioned=True, **not_found)},
                security=HMAC_SECURITY, parameters=[connection, version],
            ),
        },
        base + ":terminate": action("TerminateCall", "Ends the call for everyone.", 204, None, ""),
        base + "/participants": {
            "get": _operation(
                "ListCallParticipants", "Lists the endpoints connected to the call.", tag,
                {"200": _success("The participants.", _ref("CallAutomationParticipants"), versions=versions),
                 **_errors(versioned=True, **not_found)},
                security=HMAC_SECURITY, parameters=[connection, version],
            ),
        },
        base + "/participants/{participantRawId}": {
            "get": _operation(
                "GetCallParticipant", "Gets one connected endpoint by raw id.", tag,
                {"200": _success("The participant.", _ref("CallAutomationParticipant"), versions=versions),
                 **_errors(versioned=True, **not_found)},
                security=HMAC_SECURITY, parameters=[connection, raw_id, version],
            ),
        },
        base + "/participants:add": action(
            "AddCallParticipant", "Rings a phone number (dial-out) or a roster user into the call.", 202,
            "AddParticipantResult", "AddParticipantRequest", e403=["7504", "7602"], e409=["8519", "8530"],
        ),
        base + "/participants:remove": action(
            "RemoveCallParticipant", "Takes an endpoint off the call.", 202, "OperationContextResult", "RemoveParticipantRequest",
        ),
        base + "/participants:mute": action(
            "MuteCallParticipant", "Mutes one endpoint.", 200, "OperationContextResult", "MuteParticipantsRequest",
        ),
        base + "/participants:cancelAddParticipant": action(
            "CancelAddCallParticipant", "Stops ringing a pending invitation.", 202, "CancelAddParticipantResult",
            "CancelAddParticipantRequest",
        ),
    }


def _callback_key_paths() -> dict:
    unsigned = {"description": "Callbacks are not signed here (no ANTEROOM_CALLBACK_SIGNING_KEY).",
                "content": _json(_ref("CommunicationErrorResponse"))}
    cache = {"Cache-Control": {"description": "Receivers may keep the answer an hour.", "schema": {"type": "string"}}}
    jwk = _object({
        "kty": {"const": "RSA"}, "n": {"type": "string"}, "e": {"type": "string"}, "use": {"const": "sig"},
        "alg": {"const": "RS256"}, "kid": {"type": "string", "description": "RFC 7638 thumbprint of the key."},
    }, ("kty", "n", "e", "use", "alg", "kid"))
    return {
        "/calling/.well-known/acsopenidconfiguration": {
            "get": _operation(
                "GetCallbackOpenIdConfiguration", "Where to find the keys that verify callback tokens.", "CallAutomation",
                {"200": {"description": "The OpenID discovery document.", "headers": cache, "content": _json(_object({
                    "issuer": {"type": "string", "description": "The `iss` of every callback token (ACS's by default)."},
                    "jwks_uri": {"type": "string", "format": "uri"},
                    "id_token_signing_alg_values_supported": {"type": "array", "items": {"const": "RS256"}},
                }, ("issuer", "jwks_uri", "id_token_signing_alg_values_supported")))},
                 "404": unsigned},
                security=[],
                description="Each callback POST carries `Authorization: Bearer <JWT>`, RS256, issuer as here, audience "
                "the resource id, valid five minutes, with a `jti` of its own.",
            ),
        },
        "/calling/keys": {
            "get": _operation(
                "GetCallbackSigningKeys", "The JSON Web Key Set that verifies callback tokens.", "CallAutomation",
                {"200": {"description": "The key set.", "headers": cache,
                         "content": _json(_object({"keys": {"type": "array", "items": jwk}}, ("keys",)))},
                 "404": unsigned},
                security=[],
            ),
        },
    }


def _meta_paths() -> dict:
    return {
        "/openapi.json": {
            "get": _operation(
                "GetOpenApiDocument", "This document.", "Meta",
                {"200": {"description": "The OpenAPI document.", "content": _json({"type": "object"})}},
                security=[],
            ),
        },
    }


def build_document() -> dict:
    """The whole document, as a fresh dict."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Anteroom",
            "summary": "Self-hostable Azure Communication Services Rooms and Identity, plus room calls.",
            "description": "Rooms and Identity follow the ACS data-plane contracts (Rooms 2025-03-13, Identity "
            "2023-10-01). The room-call client API and the PSTN gateway webhook are Anteroom's own.",
            # The newest Rooms api-version: the contract this document mainly describes.
            "version": ROOMS_API.advertised[-1],
        },
        "tags": [
            {"name": "Rooms", "description": "ACS Rooms data plane."},
            {"name": "Identity", "description": "ACS Identity data plane: users and access tokens."},
            {"name": "RoomCalls", "description": "Room-call client API, authenticated with user access tokens."},
            {"name": "PstnGateway", "description": "Webhook the PSTN gateway calls."},
            {"name": "CallEvents", "description": "Stored call events (Event Grid schema or CloudEvents)."},
            {"name": "CallAutomation", "description": "ACS Call Automation on room calls, with callbacks as CloudEvents."},
            {"name": "Meta", "description": "About the API itself."},
        ],
        "paths": {**_rooms_paths(), **_identity_paths(), **_room_call_paths(), **_event_paths(), **_call_automation_paths(), **_callback_key_paths(), **_meta_paths()},
        "components": {
            "schemas": {**_schemas(), **_call_automation_schemas()},
            "responses": _shared_responses(),
            "headers": _headers(),
            "securitySchemes": {
                "acsHmac": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=<base64>` "
                    "over VERB, path and query, x-ms-date, host and x-ms-content-sha256 (base64 SHA-256 of the "
                    "body), keyed with the resource's access key; the request also carries x-ms-date and "
                    "x-ms-content-sha256.",
                },
                "accessToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A user access token from the Identity API with scope voip or voip.join.",
                },
            },
        },
    }


@functools.cache
def document_bytes() -> bytes:
    """The serialized document, built on first use and kept for the process's life."""
    return json.dumps(build_document(), indent=1).encode()


@bp.function_name("GetOpenApiDocument")
@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def get_openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    """Anonymous on purpose: the document describes the API and holds no secrets."""
    return func.HttpResponse(document_bytes(), status_code=200, mimetype="application/json")
