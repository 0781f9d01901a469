"""OpenAPI 3.1 description of every HTTP route of the app, served at `GET /openapi.json`.

Built from what the handlers run with: the routes the blueprints register and their
acs_operation (api-version, security, error table), each route's error codes from its API's error
table, and the patterns, enums and limits of the modules that make or check each value.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

from shared.automation.service import (
    CALL_CONNECTION_ID_PATTERN, DEFAULT_INVITATION_TIMEOUT, MAX_INVITATION_TIMEOUT, MUTE_TARGETS,
)
from shared.calls.model import (
    MAX_CALL_PARTICIPANTS, MAX_DISPLAY_NAME_LENGTH, SERVER_CALL_ID_PATTERN, CallState, Capability, ConnectionState, EndReason, EndpointKind,
    EndpointState, LeaveReason,
)
from shared.config.settings import EVENT_SCHEMAS
from shared.calls.service import REMOTE_ACTIONS, SELF_ACTIONS
from shared.identity.tokens import DEFAULT_TOKEN_MINUTES, MAX_TOKEN_MINUTES, MIN_TOKEN_MINUTES, SCOPES
from shared.calls.pstn import DialOutcome
from shared.core.identifiers import ACS_USER_RAW_ID_PATTERN, E164_PATTERN, PHONE_RAW_ID_PREFIX, UUID_PATTERN
from shared.core.timefmt import ACS_DATE_TIME_PATTERN, IMF_FIXDATE_PATTERN
from shared.identity.service import user_id_pattern
from shared.logs.operations import CORRELATION_ID_PATTERN
from shared.rooms.model import GENERATED_ROOM_ID_PATTERN, MAX_VALIDITY, ROOM_ID_PATTERN, Role

from shared.core import errors as domain

from . import call_automation, calls, events, identity, rooms
from .call_automation import CALL_AUTOMATION_API, ROOM_CALL_LOCATOR
from .errors import (
    COMMON_ERRORS,
    internal_error,
    missing_api_version,
    payload_too_large,
    unsupported_api_version,
    unsupported_media_type,
)
from .pipeline import BEARER, HMAC, IDENTITY_API, REPEATABILITY_ACCEPTED, ROOMS_API, AcsOperation, ApiVersions

bp = func.Blueprint()

OPENAPI_VERSION = "3.1.0"
HMAC_SECURITY = [{"acsHmac": []}]
BEARER_SECURITY = [{"accessToken": []}]



def _whole(pattern: str) -> str:
    """A pattern of the code (a fullmatch there) anchored for JSON Schema, whose patterns search."""
    return f"^{pattern.removeprefix('^').removesuffix('$')}$"


# Written once in the modules that make or check each value, anchored here.
ROOM_ID = _whole(ROOM_ID_PATTERN)
GENERATED_ROOM_ID = _whole(GENERATED_ROOM_ID_PATTERN)
ACS_USER_RAW_ID = _whole(ACS_USER_RAW_ID_PATTERN)
E164 = _whole(E164_PATTERN)
PHONE_RAW_ID = _whole(re.escape(PHONE_RAW_ID_PREFIX) + E164_PATTERN)
UUID = _whole(UUID_PATTERN)
SERVER_CALL_ID = _whole(SERVER_CALL_ID_PATTERN)
CALL_CONNECTION_ID = _whole(CALL_CONNECTION_ID_PATTERN)
USER_ID = _whole(user_id_pattern(UUID_PATTERN))  # ANTEROOM_RESOURCE_ID is a GUID
PHONE_REFERENCE = _whole(ROOM_ID_PATTERN + re.escape("|") + UUID_PATTERN)  # shared/calls/service.py phone_event
MS_CV = _whole(CORRELATION_ID_PATTERN)


# -- small builders ------------------------------------------------------------------------------
def _ref(name: str, kind: str = "schemas") -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def _enum(values, **extra: Any) -> dict:
    """A string schema whose values are those of a code enum (or any iterable of strings)."""
    return {"type": "string", "enum": [getattr(value, "value", value) for value in values], **extra}


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


# The host answers these itself when a request never reaches the app (malformed, an empty path
# segment matching no route, a body over the host's limit): without the pipeline's headers.
HOST_REFUSED = (400, 404, 413)


def _common_headers(status: int) -> dict:
    return {
        "MS-CV": _ref("MS-CV" if status in HOST_REFUSED else "MS-CV-required", "headers"),
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
    # x-ms-error-code is left out on 400s carrying details (as ACS does) and on the host's own answers.
    headers["x-ms-error-code"] = _ref("x-ms-error-code" if status in HOST_REFUSED else "x-ms-error-code-required",
                                      "headers")
    if status in (429, 503):
        headers["Retry-After"] = _ref("Retry-After", "headers")
    schema = {
        "allOf": [_ref("CommunicationErrorResponse")],
        "properties": {"error": {"properties": {"code": {"enum": codes}}}},
    }
    return {"description": description, "headers": headers, "content": _json(schema)}


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
            "kind": {"const": EndpointKind.VOIP.value},
            "rawId": {"type": "string", "pattern": ACS_USER_RAW_ID},
            "communicationUser": _object({"id": {"type": "string", "pattern": ACS_USER_RAW_ID}}, ("id",)),
        },
        ("kind", "rawId", "communicationUser"),
    )
    phone_identifier = _object(
        {
            "kind": {"const": EndpointKind.PHONE.value},
            "rawId": {"type": "string", "pattern": PHONE_RAW_ID},
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
            "pattern": ACS_DATE_TIME_PATTERN,
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
                "validUntil": {**request_date_time, "description": f"When the room closes; default validFrom + {MAX_VALIDITY.days} days, "
                           f"at most {MAX_VALIDITY.days} days after validFrom."},
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
        "CommunicationIdentityTokenScope": _enum(SCOPES),
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
            {"id": {"type": "string", "pattern": USER_ID, "description": "8:acs:<resource id>_<user id>"}},
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
                "participantId": {"type": "string", "format": "uuid", "pattern": UUID},
                "identifier": _ref("CommunicationIdentifier"),
                "role": {**_or_null(_ref("Role")),
                         "description": "The live roster role; null for phones, users off the roster, and in the "
                         "answers of actions."},
                "state": _enum(EndpointState),
                "isMuted": {"type": "boolean"},
                "isVideoOn": {"type": "boolean"},
                "isScreenSharing": {"type": "boolean"},
                "displayName": display_name,
                "joinedAt": acs_date_time,
                "leftAt": acs_date_time,
                "leaveReason": _enum(LeaveReason),
            },
            ("participantId", "identifier", "role", "state", "isMuted", "isVideoOn", "isScreenSharing"),
            dependentRequired={"leftAt": ["leaveReason"], "leaveReason": ["leftAt"]},
        ),
        "RoomCall": _object(
            {
                "serverCallId": {"type": "string", "pattern": SERVER_CALL_ID},
                "roomId": {"type": "string", "pattern": GENERATED_ROOM_ID},
                "state": _enum(CallState),
                "startedAt": acs_date_time,
                "correlationId": {"type": "string", "format": "uuid", "pattern": UUID},
                "participants": {"type": "array", "items": _ref("CallParticipant"),
                                 "description": "Every endpoint of the call, ringing and disconnected ones included."},
                "endedAt": acs_date_time,
                "endReason": _enum(EndReason),
            },
            ("serverCallId", "roomId", "state", "startedAt", "correlationId", "participants"),
            dependentRequired={"endedAt": ["endReason"], "endReason": ["endedAt"]},
        ),
        "Capability": _enum(Capability),
        "JoinRoomCallResult": _object(
            {
                "serverCallId": {"type": "string", "pattern": SERVER_CALL_ID},
                "participantId": {"type": "string", "format": "uuid", "pattern": UUID},
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
                "outcome": _enum(DialOutcome),
                "participant": _ref("CallParticipant"),
            },
            ("outcome",),
            description="`participant` (the phone, now in the call) only when the outcome is answered.",
        ),
        "PstnEventRequest": _object(
            {
                "reference": {"type": "string", "pattern": PHONE_REFERENCE,
                              "description": "`<roomId>|<participantId>` as given to the gateway when dialling."},
                "action": _enum(SELF_ACTIONS),
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
                "schema": {"type": ["string", "null"], "enum": [*EVENT_SCHEMAS, None],
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
    ms_cv = {"type": "string", "pattern": MS_CV}
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


def _shared_codes() -> dict[int, str]:
    """The code of each answer every pipeline operation may give, from where the pipeline makes it."""
    return {
        401: COMMON_ERRORS.row(domain.Denied).code,
        413: payload_too_large(0).code,
        415: unsupported_media_type("").code,
        429: COMMON_ERRORS.row(domain.Throttled).code,
        500: internal_error().code,
        503: COMMON_ERRORS.row(domain.StorageUnavailable).code,
    }


def _shared_responses() -> dict:
    code = _shared_codes()
    return {
        "Unauthorized": _error(401, [code[401]], "Authentication failed (HMAC signature, or access token)."),
        "PayloadTooLarge": _error(413, [code[413]], "The body exceeds ANTEROOM_MAX_BODY_BYTES."),
        "UnsupportedMediaType": _error(
            415, [code[415]], "A body that is not application/json or application/merge-patch+json."
        ),
        "TooManyRequests": _error(
            429, [code[429]], "The caller (access key or token user) is over ANTEROOM_THROTTLE_REQUESTS per "
            "ANTEROOM_THROTTLE_WINDOW_SECONDS on this instance; retry after Retry-After seconds."
        ),
        "InternalServerError": _error(500, [code[500]], "An unexpected failure."),
        "ServiceUnavailable": _error(503, [code[503]], "Storage or the PSTN gateway is unavailable, or "
                                     "contention did not settle; retry after Retry-After seconds."),
    }


# -- Call Automation (communicationservicescallautomation 2024-09-15 shapes, room calls only) ---------
def _call_automation_schemas() -> dict:
    identifier = _object(
        {
            "kind": _enum(EndpointKind),
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
                "callConnectionState": _enum(ConnectionState),
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
                    {"roomId": {"type": "string"}, "kind": {"type": "string", "const": ROOM_CALL_LOCATOR}},
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
                                    "minItems": MUTE_TARGETS, "maxItems": MUTE_TARGETS},
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


# -- paths: the registered routes, each described once ---------------------------------------------
# The room-call API has no api-version; the others name their header component by API.
VERSION_HEADERS = {
    ROOMS_API: "rooms-api-supported-versions",
    IDENTITY_API: "identity-api-supported-versions",
    CALL_AUTOMATION_API: "call-automation-api-supported-versions",
}
SECURITY = {HMAC: HMAC_SECURITY, BEARER: BEARER_SECURITY}
STATUS_DESCRIPTIONS = {
    400: "The request is malformed or fails validation.",
    403: "The caller may not do this (scope, invitation, room window or role capability).",
    404: "The resource does not exist (or a path segment is empty).",
    409: "The request conflicts with the current state.",
    412: "A precondition failed.",
}
# Statuses every pipeline operation may answer, described once in components/responses.
SHARED_STATUSES = {401: "Unauthorized", 413: "PayloadTooLarge", 415: "UnsupportedMediaType",
                   429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}
REPEATABLE = (domain.RequestIdReused, domain.RepeatabilityWindowPassed, domain.OriginalRequestInProgress)
ROOM_GATE = (domain.InsufficientScope, domain.RoomNotFound, domain.RoomNotOpenYet, domain.RoomExpired,
             domain.NotInvited)
ACTING = (domain.InvalidRequest, *ROOM_GATE, domain.MissingCapability, domain.NoCallYet, domain.NoActiveCall,
          domain.NotInCall)
CONNECTION_GONE = (domain.CallConnectionNotFound, domain.RoomNotFound, domain.NoActiveCall)


@dataclass(frozen=True)
class Described:
    """What the document says about one registered function beyond its route and its acs_operation.

    `refusals` are the domain errors the use case may raise: their status and code come from the
    API's error table. Functions outside the pipeline give their `responses` themselves.
    """

    operation_id: str
    summary: str
    tag: str
    status: int = 200
    result: dict | None = None
    success: str = ""
    refusals: tuple[type[domain.DomainError], ...] = ()
    body: dict | None = None
    description: str | None = None
    parameters: tuple[dict, ...] = ()  # besides the route's and api-version
    path_parameters: dict[str, dict] = field(default_factory=dict)  # instead of _path_parameters()'s
    headers: dict[str, dict] = field(default_factory=dict)  # of the success answer
    responses: dict | None = None  # functions outside the pipeline only


def _path_parameters() -> dict[str, dict]:
    return {
        "roomId": _path_parameter("roomId", {"type": "string", "pattern": ROOM_ID}, "The room id (17 digits)."),
        "id": _path_parameter("id", {"type": "string"},
                              "The user's raw id, 8:acs:<resource id>_<user id> (URL-encoded); others answer 404."),
        "participantId": _path_parameter("participantId", {"type": "string", "format": "uuid"},
                                         "The target endpoint's participantId."),
        "callConnectionId": _path_parameter("callConnectionId", {"type": "string", "pattern": CALL_CONNECTION_ID},
                                            "The call connection id Connect answered."),
        "participantRawId": _path_parameter("participantRawId", {"type": "string"},
                                            "The participant's raw id (`4:+1...`, `8:acs:...`)."),
    }


def _repeatability(first_sent_required: bool, purpose: str) -> tuple[dict, ...]:
    first_sent = "IMF-fixdate of the first attempt" + ("; required with Repeatability-Request-ID." if first_sent_required else ".")
    return (
        {"name": "Repeatability-Request-ID", "in": "header", "required": False,
         "schema": {"type": "string", "format": "uuid"}, "description": purpose},
        {"name": "Repeatability-First-Sent", "in": "header", "required": False,
         "schema": {"type": "string", "pattern": IMF_FIXDATE_PATTERN}, "description": first_sent},
    )


def _described() -> dict[str, Described]:
    """Keyed by the function name each route is registered under."""
    next_link = ({
        "name": "nextLink", "in": "query", "required": False, "schema": {"type": "string"},
        "description": "Opaque continuation token, as found in the previous page's nextLink URL.",
    },)
    merge_patch = "application/merge-patch+json"
    action_repeat = _repeatability(False, "The SDK sends one on every action: a repeat gets the first answer again.")
    self_action = {"action": _path_parameter("action", _enum(SELF_ACTIONS), "What to do to oneself.")}
    remote_action = {"action": _path_parameter("action", _enum(REMOTE_ACTIONS), "What to do to the participant.")}
    ca = "CallAutomation"

    def ca_action(operation_id: str, summary: str, status: int, result: str | None, body: str, *refusals) -> Described:
        return Described(operation_id, summary, ca, status, _ref(result) if result else None, summary,
                         (domain.InvalidRequest, *REPEATABLE, *CONNECTION_GONE, *refusals),
                         _body(_ref(body), required=True) if body else None, parameters=action_repeat)

    unsigned = {"description": "Callbacks are not signed here (no ANTEROOM_CALLBACK_SIGNING_KEY).",
                "content": _json(_ref("CommunicationErrorResponse"))}
    cache = {"Cache-Control": {"description": "Receivers may keep the answer an hour.", "schema": {"type": "string"}}}
    jwk = _object({
        "kty": {"const": "RSA"}, "n": {"type": "string"}, "e": {"type": "string"}, "use": {"const": "sig"},
        "alg": {"const": "RS256"}, "kid": {"type": "string", "description": "RFC 7638 thumbprint of the key."},
    }, ("kty", "n", "e", "use", "alg", "kid"))
    return {
        # ---- Rooms ----
        "CreateRoom": Described(
            "Rooms_Create", "Creates a new room.", "Rooms", 201, _ref("RoomModel"), "The new room.",
            (domain.InvalidRequest, domain.InvalidArgument, *REPEATABLE),
            _body(_ref("CreateRoomRequest"), required=False, description="An empty body creates a room with defaults."),
            parameters=_repeatability(True, "Makes the create repeatable: a repeat gets the first answer again."),
            headers={
                "Location": _header({"type": "string", "format": "uri"}, "URL of the new room.", True),
                "Repeatability-Result": _header({"type": "string", "const": REPEATABILITY_ACCEPTED},
                                                "Sent when the request carried repeatability headers.", False),
            },
        ),
        "ListRooms": Described("Rooms_List", "Lists the active rooms, newest first.", "Rooms",
                               result=_ref("RoomsCollection"), success="One page of rooms.",
                               refusals=(domain.InvalidRequest,), parameters=next_link),
        "GetRoom": Described("Rooms_Get", "Gets a room.", "Rooms", result=_ref("RoomModel"), success="The room.",
                             refusals=(domain.InvalidRequest, domain.RoomNotFound)),
        "UpdateRoom": Described("Rooms_Update", "Updates a room (merge-patch).", "Rooms", result=_ref("RoomModel"),
                                success="The updated room.",
                                refusals=(domain.InvalidRequest, domain.InvalidArgument, domain.RoomNotFound),
                                body=_body(_ref("UpdateRoomRequest"), required=True, media_type=merge_patch)),
        "DeleteRoom": Described("Rooms_Delete", "Deletes a room (again and again until it is purged).", "Rooms", 204,
                                success="The room is deleted.", refusals=(domain.InvalidRequest, domain.RoomNotFound)),
        "ListParticipants": Described("Participants_List", "Lists the room's participants.", "Rooms",
                                      result=_ref("ParticipantsCollection"), success="One page of participants.",
                                      refusals=(domain.InvalidRequest, domain.RoomNotFound), parameters=next_link),
        "UpdateParticipants": Described(
            "Participants_Update", "Adds, updates or removes participants, all or nothing.", "Rooms",
            result=_ref("UpdateParticipantsResult"), success="The roster changed.",
            refusals=(domain.InvalidRequest, domain.InvalidArgument, domain.RoomNotFound),
            body=_body(_ref("UpdateParticipantsRequest"), required=True, media_type=merge_patch),
        ),
        # ---- Identity ----
        "CreateIdentity": Described(
            "CommunicationIdentity_Create", "Creates a user, and optionally a token for it.", "Identity", 201,
            _ref("CommunicationIdentityAccessTokenResult"), "The new user.", (domain.InvalidRequest,),
            _body(_ref("CommunicationIdentityCreateRequest"), required=False),
        ),
        "DeleteIdentity": Described("CommunicationIdentity_Delete", "Deletes a user; its tokens stop working.", "Identity",
                                    204, success="The user is deleted.", refusals=(domain.IdentityNotFound,)),
        "IssueAccessToken": Described(
            "CommunicationIdentity_IssueAccessToken", "Issues an access token for a user.", "Identity",
            result=_ref("CommunicationIdentityAccessToken"), success="The token.",
            refusals=(domain.InvalidRequest, domain.IdentityNotFound),
            body=_body(_ref("CommunicationIdentityAccessTokenRequest"), required=True),
        ),
        "RevokeAccessTokens": Described("CommunicationIdentity_RevokeAccessTokens",
                                        "Revokes every token issued to a user so far.", "Identity", 204,
                                        success="The tokens are revoked.", refusals=(domain.IdentityNotFound,)),
        # ---- room-call client API ----
        "JoinRoomCall": Described(
            "JoinRoomCall", "Joins (or starts) the room's call.", "RoomCalls", result=_ref("JoinRoomCallResult"),
            success="The caller is in the call (joining again changes nothing).",
            refusals=(domain.InvalidRequest, *ROOM_GATE, domain.CallFull),
            body=_body(_ref("JoinRoomCallRequest"), required=False),
            description="Only users on the room's roster, only between validFrom and validUntil; "
            f"at most {MAX_CALL_PARTICIPANTS} connected endpoints (CallFull).",
        ),
        "GetRoomCall": Described("GetRoomCall", "Gets the room's current or last call.", "RoomCalls",
                                 result=_ref("RoomCall"), success="The call.",
                                 refusals=(domain.InvalidRequest, domain.InsufficientScope, domain.RoomNotFound,
                                           domain.NoCallYet, domain.NotInvited),
                                 description="Also a deleted room's last call (endReason roomDeleted), to the users "
                                 "on its roster, until the room is purged (ANTEROOM_EXPIRED_ROOM_GRACE_HOURS after "
                                 "the deletion)."),
        "ActOnSelf": Described(
            "ActOnSelf", "Leaves, or changes one's own microphone, video or screen sharing.", "RoomCalls",
            result=_ref("CallParticipant"), success="The caller's endpoint after the action.", refusals=ACTING,
            path_parameters=self_action,
        ),
        "ActOnParticipant": Described(
            "ActOnParticipant", "Mutes or removes another endpoint (Presenter).", "RoomCalls",
            result=_ref("CallParticipant"), success="The target endpoint after the action.",
            refusals=(*ACTING, domain.ParticipantNotFound), path_parameters=remote_action,
        ),
        "InviteToRoomCall": Described(
            "InviteToRoomCall", "Rings a roster user into the call.", "RoomCalls", 201, _ref("CallParticipant"),
            "The invited endpoint, ringing.", (*ACTING, domain.AlreadyInCall), _body(_ref("InvitationRequest"), required=True),
        ),
        "DialOutFromRoomCall": Described(
            "DialOutFromRoomCall", "Dials a phone into the call (Presenter, room with pstnDialOutEnabled).",
            "RoomCalls", result=_ref("DialOutResult"), success="How the dial went.",
            refusals=(*ACTING, domain.DialOutDisabled, domain.ConcurrentCallLimitReached, domain.GatewayUnavailable),
            body=_body(_ref("DialOutRequest"), required=True),
        ),
        "PstnEvent": Described(
            "PstnEvent", "The PSTN gateway reports a phone-side action (hang-up, mute).", "PstnGateway",
            result=_ref("CallParticipant"), success="The phone endpoint after the action.",
            refusals=(domain.InvalidRequest, domain.RoomNotFound, domain.RoomNotOpenYet, domain.RoomExpired,
                      domain.MissingCapability, domain.NoCallYet, domain.ParticipantNotFound, domain.NoActiveCall,
                      domain.NotInCall),
            body=_body(_ref("PstnEventRequest"), required=True),
            description="Signed with the resource's access key like the management APIs; no api-version.",
        ),
        # ---- call events ----
        "ReplayCallEvents": Described(
            "ReplayCallEvents", "Delivers stored call events again, with their original ids, to one webhook.",
            "CallEvents", result=_ref("ReplayCallEventsResult"),
            success="How many events the webhook accepted and refused.", refusals=(domain.InvalidRequest,),
            body=_body(_ref("ReplayCallEventsRequest"), required=True),
            description="One event per POST, as Event Grid delivers; signed like the management APIs.",
        ),
        # ---- Call Automation ----
        "ConnectCall": Described(
            "ConnectCall", "Connects to a room's active call (roomCallLocator only).", ca,
            result=_ref("CallConnectionProperties"), success="The connection; CallConnected and ParticipantsUpdated follow.",
            refusals=(domain.InvalidRequest, *REPEATABLE, domain.RoomNotFound, domain.NoActiveCall, domain.RoomExpired,
                      domain.TooManyConnections),
            body=_body(_ref("ConnectRequest"), required=True), parameters=action_repeat,
            description="8522 for an unknown room or one without an active call; 8528 for an expired room.",
        ),
        "GetCallConnection": Described("GetCallConnection", "Gets the connection's properties.", ca,
                                       result=_ref("CallConnectionProperties"), success="The connection.",
                                       refusals=CONNECTION_GONE),
        "HangUpCallConnection": Described("HangUpCallConnection", "This application leaves the call; the others stay.", ca,
                                          204, success="Left (again, for a repeat); CallDisconnected follows.",
                                          refusals=CONNECTION_GONE),
        "TerminateCall": ca_action("TerminateCall", "Ends the call for everyone.", 204, None, ""),
        "ListCallParticipants": Described("ListCallParticipants", "Lists the endpoints connected to the call.", ca,
                                          result=_ref("CallAutomationParticipants"), success="The participants.",
                                          refusals=CONNECTION_GONE),
        "GetCallParticipant": Described("GetCallParticipant", "Gets one connected endpoint by raw id.", ca,
                                        result=_ref("CallAutomationParticipant"), success="The participant.",
                                        refusals=(*CONNECTION_GONE, domain.ParticipantNotFound)),
        "AddCallParticipant": ca_action(
            "AddCallParticipant", "Rings a phone number (dial-out) or a roster user into the call.", 202,
            "AddParticipantResult", "AddParticipantRequest",
            domain.DialOutDisabled, domain.NotInvited, domain.AlreadyInCall, domain.ConcurrentCallLimitReached,
            domain.GatewayUnavailable,
        ),
        "RemoveCallParticipant": ca_action("RemoveCallParticipant", "Takes an endpoint off the call.", 202,
                                           "OperationContextResult", "RemoveParticipantRequest", domain.ParticipantNotFound),
        "MuteCallParticipant": ca_action("MuteCallParticipant", "Mutes one endpoint.", 200, "OperationContextResult",
                                         "MuteParticipantsRequest", domain.ParticipantNotFound),
        "CancelAddCallParticipant": ca_action("CancelAddCallParticipant", "Stops ringing a pending invitation.", 202,
                                              "CancelAddParticipantResult", "CancelAddParticipantRequest",
                                              domain.InvitationNotFound),
        # ---- outside the pipeline: anonymous ----
        "GetCallbackOpenIdConfiguration": Described(
            "GetCallbackOpenIdConfiguration", "Where to find the keys that verify callback tokens.", ca,
            description="Each callback POST carries `Authorization: Bearer <JWT>`, RS256, issuer as here, audience "
            "the resource id, valid five minutes, with a `jti` of its own.",
            responses={"200": {"description": "The OpenID discovery document.", "headers": cache, "content": _json(_object({
                "issuer": {"type": "string", "description": "The `iss` of every callback token (ACS's by default)."},
                "jwks_uri": {"type": "string", "format": "uri"},
                "id_token_signing_alg_values_supported": {"type": "array", "items": {"const": "RS256"}},
            }, ("issuer", "jwks_uri", "id_token_signing_alg_values_supported")))}, "404": unsigned},
        ),
        "GetCallbackSigningKeys": Described(
            "GetCallbackSigningKeys", "The JSON Web Key Set that verifies callback tokens.", ca,
            responses={"200": {"description": "The key set.", "headers": cache,
                               "content": _json(_object({"keys": {"type": "array", "items": jwk}}, ("keys",)))},
                       "404": unsigned},
        ),
        "GetOpenApiDocument": Described(
            "GetOpenApiDocument", "This document.", "Meta",
            responses={"200": {"description": "The OpenAPI document.", "content": _json({"type": "object"})}},
        ),
    }


def _refusals(acs: AcsOperation, refusals: tuple[type[domain.DomainError], ...]) -> dict:
    """The error answers of a pipeline operation: its refusals by the API's table, the api-version
    refusals of a versioned API, and those every operation has."""
    codes: dict[int, list[str]] = {}
    # Any request may be malformed: the host refuses it with the pipeline's plain BadRequest.
    answers = [COMMON_ERRORS.row(domain.InvalidRequest), *(acs.errors.row(kind) for kind in refusals)]
    if acs.versions is not None:
        answers += [missing_api_version(), unsupported_api_version("", "")]
    for answer in answers:
        listed = codes.setdefault(answer.status, [])
        if answer.code not in listed:
            listed.append(answer.code)
    shared = _shared_codes()
    responses: dict = {}
    for status, listed in sorted(codes.items()):
        if status in SHARED_STATUSES:
            if set(listed) != {shared[status]}:  # a code the shared answer does not document
                raise ValueError(f"{acs.name}: {status} {listed} differs from the shared {shared[status]}")
        else:
            responses[str(status)] = _error(status, listed, STATUS_DESCRIPTIONS[status])
    for status, name in SHARED_STATUSES.items():
        responses[str(status)] = _ref(name, "responses")
    return dict(sorted(responses.items()))


def _registered_routes():
    """(path, method, function name, the function) of every HTTP route of the blueprints described here."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)  # only to list them, as the host does
    for blueprint in (rooms.bp, identity.bp, calls.bp, call_automation.bp, events.bp, bp):
        app.register_functions(blueprint)
    for function in app.get_functions():
        trigger = function.get_trigger()
        if getattr(trigger, "route", None) is None:
            continue  # timers
        for method in trigger.methods:
            yield "/" + trigger.route.strip("/"), str(getattr(method, "value", method)).lower(), \
                function.get_function_name(), function.get_user_function()


def _paths() -> dict:
    described, path_parameters = _described(), _path_parameters()
    paths: dict[str, dict] = {}
    registered = set()
    for path, method, name, function in _registered_routes():
        about = described[name]  # a route not described here fails the document, and its test
        registered.add(name)
        acs: AcsOperation | None = getattr(function, "acs_operation", None)
        names = re.findall(r"{(\w+)}", path)
        parameters = [about.path_parameters.get(n) or path_parameters[n] for n in names]
        if acs is not None and acs.versions is not None:
            parameters.append(_api_version_parameter(acs.versions))
        parameters += about.parameters
        if about.responses is not None:
            responses, security = about.responses, []
        else:
            versions = VERSION_HEADERS[acs.versions] if acs.versions is not None else None
            success = _success(about.success or about.summary, about.result, versions=versions, status=about.status,
                               **about.headers)
            responses, security = {str(about.status): success, **_refusals(acs, about.refusals)}, SECURITY[acs.auth]
        paths.setdefault(path, {})[method] = _operation(
            about.operation_id, about.summary, about.tag, responses, security=security, parameters=parameters,
            body=about.body, description=about.description,
        )
    if set(described) - registered:
        raise ValueError(f"described but not registered: {sorted(set(described) - registered)}")
    return paths


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
        "paths": _paths(),
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
