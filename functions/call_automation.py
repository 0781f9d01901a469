"""Call Automation API blueprint (ACS's `/calling/callConnections...` routes) for room calls."""
from __future__ import annotations

import json
import uuid
from typing import Callable

import azure.functions as func

from shared.automation.model import call_participant_json
from shared.automation.service import call_connection_id, check_callback_uri
from shared.core.errors import DomainError, InvalidRequest
from shared.repeatability.store import StoredResponse
from shared.bootstrap import get_services

from .errors import CALL_AUTOMATION_ERRORS, not_found
from .pipeline import ApiRequest, ApiResponse, ApiVersions, acs_operation

bp = func.Blueprint()
ANONYMOUS = func.AuthLevel.ANONYMOUS
CONNECTIONS = "calling/callConnections"
ROOM_CALL_LOCATOR = "roomCallLocator"  # the one call locator kind Connect takes

# What azure-communication-callautomation 1.x knows; 1.6.0 sends 2026-03-12 by default.
CALL_AUTOMATION_API = ApiVersions(
    advertised=("2023-03-06", "2023-10-15", "2024-04-15", "2024-09-15", "2025-05-15", "2025-06-15", "2026-03-12"),
)


def _optional_string(body: dict, key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{key} must be a string.")
    return value


def _repeatable(
    request: ApiRequest, execute: Callable[[str], StoredResponse],
    recover: Callable[[str], StoredResponse | None] = lambda key: None,
) -> ApiResponse:
    """Run `execute(key)` at most once per Repeatability-Request-ID (the SDK sends one on every action).

    `key` is a fresh id the operation gives to what it creates (connection, invitation), so a retry
    after a crash finds it; `recover(key)` answers for an operation that committed unrecorded.
    """
    repeat = request.repeatability()
    if repeat is None:
        answer = execute(str(uuid.uuid4()))
        return ApiResponse(answer.status, answer.body, answer.headers)
    answer = request.run_once(repeat, reserve=lambda: str(uuid.uuid4()), execute=execute, recover=recover)
    return ApiResponse(answer.status, answer.body, answer.headers)


def _repeatable_action(request: ApiRequest, status: int, answer: dict | None, perform: Callable[[], None]) -> ApiResponse:
    """A repeatable action that creates nothing: perform it, answer `status` with `answer`."""

    def execute(_key: str) -> StoredResponse:
        perform()
        return StoredResponse(status, answer)

    return _repeatable(request, execute)


@bp.function_name("ConnectCall")
@bp.route(route=f"{CONNECTIONS}:connect", methods=["POST"], auth_level=ANONYMOUS)
@acs_operation("ConnectCall", CALL_AUTOMATION_API, CALL_AUTOMATION_ERRORS)
def connect_call(request: ApiRequest) -> ApiResponse:
    body = request.json_object()
    locator = body.get("callLocator")
    if not isinstance(locator, dict) or not isinstance(locator.get("roomId"), str):
        raise InvalidRequest("callLocator must be a roomCallLocator with a roomId: only room calls can be connected.")
    if locator.get("kind") not in (None, ROOM_CALL_LOCATOR):
        raise InvalidRequest("Only roomCallLocator is supported.")
    room_id = locator["roomId"]
    callback_uri = check_callback_uri(body.get("callbackUri"), "callbackUri")
    context = _optional_string(body, "operationContext")
    automation = request.services.call_automation

    def execute(key: str) -> StoredResponse:
        return StoredResponse(200, automation.connect(room_id, callback_uri, context, call_connection_id(room_id, key)))

    def recover(key: str) -> StoredResponse | None:
        try:
            return StoredResponse(200, automation.properties(call_connection_id(room_id, key)))
        except DomainError:
            return None  # the first attempt never connected: run it again

    return _repeatable(request, execute, recover)


@bp.function_name("GetCallConnection")
@bp.route(route=CONNECTIONS + "/{callConnectionId}", methods=["GET"], auth_level=ANONYMOUS)
@acs_operation("GetCallConnection", CALL_AUTOMATION_API, CALL_AUTOMATION_ERRORS)
def get_call_connection(request: ApiRequest) -> ApiResponse:
    return ApiResponse(200, request.services.call_automation.properties(request.route("callConnectionId")))


@bp.function_name("HangUpCallConnection")
@bp.route(route=CONNECTIONS + "/{callConnectionId}", methods=["DELETE"], auth_level=ANONYMOUS)
@acs_operation("HangUpCallConnection", CALL_AUTOMATION_API, CALL_AUTOMATION_ERRORS)
def hang_up(request: ApiRequest) -> ApiResponse:
    request.services.call_automation.hang_up(request.route("callConnectionId"))
    return ApiResponse(204)


@bp.function_name("TerminateCall")
@bp.route(route=CONNECTIONS + "/{callConnectionId}:terminate", methods=["POST"], auth_level=ANONYMOUS)
@acs_operation("TerminateCall", CALL_AUTOMATION_API, CALL_AUTOMATION_ERRORS)
def terminate_call(request: ApiRequest) -> ApiResponse:
    return _repeatable_action(request, 204, None, lambda: request.services.call_automation.terminate(
        request.route("callConnectionId")
    ))


@bp.function_name("ListCallParticipants")
@bp.route(route=CONNECTIONS + "/{callConnectionId}/participants", methods=["GET"], auth_level=ANONYMOUS)
@acs_operation("ListCallParticipants", CALL_AUTOMATION_API, CALL_AUTOMATION_ERRORS)
def list_call_participants(request: ApiRequest) -> ApiResponse:
    endpoints = request.services.call_automation.participants(request.route("callConnectionId"))
    return ApiResponse(200, {"value": [call_participant_json(endpoint) for endpoint in endpoints]})


@bp.function_name("GetCallParticipant")
@bp.route(route=CONNECTIONS + "/{callConnectionId}/participants/{participantRawId}", methods=["GET"], auth_level=ANONYMOUS)
@acs_operation("GetCallParticipant", CALL_AUTOMATION_API, CALL_AUTOMATION_ERRORS)
def get_call_participant(request: ApiRequest) -> ApiResponse:
    endpoint = request.services.call_automation.participant(
        request.route("callConnectionId"), request.route("participantRawId")
    )
    return ApiResponse(200, call_participant_json(endpoint))


@bp.function_name("AddCallParticipant")
@bp.route(route=CONNECTIONS + "/{callConnectionId}/participants:add", methods=["POST"], auth_level=ANONYMOUS)
@acs_operation("AddCallParticipant", CALL_AUTOMATION_API, CALL_AUTOMATION_ERRORS)
def add_call_participant(request: ApiRequest) -> ApiResponse:
    body = request.json_object()
    connection_id = request.route("callConnectionId")
    context = _optional_string(body, "operationContext")
    callback = _optional_string(body, "operationCallbackUri")
    automation = request.services.call_automation

    def execute(invitation_id: str) -> StoredResponse:
        ringing = automation.add_participant(
            connection_id, body.get("participantToAdd"), body.get("sourceCallerIdNumber"), context, callback,
            invitation_id, body.get("invitationTimeoutInSeconds"),
        )
        answer = {"participant": call_participant_json(ringing), "operationContext": context, "invitationId": ringing.participant_id}
        return StoredResponse(202, answer)

    return _repeatable(request, execute, recover=execute)  # adding with the same invitation id answers it again


@bp.function_name("RemoveCallParticipant")
@bp.route(route=CONNECTIONS + "/{callConnectionId}/participants:remove", methods=["POST"], auth_level=ANONYMOUS)
@acs_operation("RemoveCallParticipant", CALL_AUTOMATION_API, CALL_AUTOMATION_ERRORS)
def remove_call_participant(request: ApiRequest) -> ApiResponse:
    body = request.json_object()
    context = _optional_string(body, "operationContext")
    callback = _optional_string(body, "operationCallbackUri")
    return _repeatable_action(request, 202, {"operationContext": context}, lambda: request.services.call_automation.remove_participant(
        request.route("callConnectionId"), body.get("participantToRemove"), context, callback
    ))


@bp.function_name("MuteCallParticipant")
@bp.route(route=CONNECTIONS + "/{callConnectionId}/participants:mute", methods=["POST"], auth_level=ANONYMOUS)
@acs_operation("MuteCallParticipant", CALL_AUTOMATION_API, CALL_AUTOMATION_ERRORS)
def mute_call_participant(request: ApiRequest) -> ApiResponse:
    body = request.json_object()
    context = _optional_string(body, "operationContext")
    return _repeatable_action(request, 200, {"operationContext": context}, lambda: request.services.call_automation.mute(
        request.route("callConnectionId"), body.get("targetParticipants"), context
    ))


@bp.function_name("CancelAddCallParticipant")
@bp.route(route=CONNECTIONS + "/{callConnectionId}/participants:cancelAddParticipant", methods=["POST"], auth_level=ANONYMOUS)
@acs_operation("CancelAddCallParticipant", CALL_AUTOMATION_API, CALL_AUTOMATION_ERRORS)
def cancel_add_call_participant(request: ApiRequest) -> ApiResponse:
    body = request.json_object()
    invitation_id = body.get("invitationId")
    if not isinstance(invitation_id, str) or not invitation_id:
        raise InvalidRequest("invitationId is required.")
    context = _optional_string(body, "operationContext")
    callback = _optional_string(body, "operationCallbackUri")
    answer = {"invitationId": invitation_id, "operationContext": context}
    return _repeatable_action(request, 202, answer, lambda: request.services.call_automation.cancel_add(
        request.route("callConnectionId"), invitation_id, context, callback
    ))


# -- callback verification keys: anonymous, like ACS's, since receivers fetch them without a key ---
def _signer_json(document: dict | None) -> func.HttpResponse:
    if document is None:
        body = not_found("Callbacks are not signed here: ANTEROOM_CALLBACK_SIGNING_KEY is not set.").to_body()
        return func.HttpResponse(json.dumps(body), status_code=404, mimetype="application/json")
    # Receivers cache the key set; an hour keeps a rotated key from going unnoticed for long.
    return func.HttpResponse(json.dumps(document), status_code=200, mimetype="application/json",
                             headers={"Cache-Control": "public, max-age=3600"})


@bp.function_name("GetCallbackOpenIdConfiguration")
@bp.route(route="calling/.well-known/acsopenidconfiguration", methods=["GET"], auth_level=ANONYMOUS)
def get_callback_openid_configuration(req: func.HttpRequest) -> func.HttpResponse:
    signer = get_services().callback_signer
    keys_url = req.url.split("?", 1)[0].rsplit("/.well-known/", 1)[0] + "/keys"
    return _signer_json(None if signer is None else signer.openid_configuration(keys_url))


@bp.function_name("GetCallbackSigningKeys")
@bp.route(route="calling/keys", methods=["GET"], auth_level=ANONYMOUS)
def get_callback_signing_keys(req: func.HttpRequest) -> func.HttpResponse:
    signer = get_services().callback_signer
    return _signer_json(None if signer is None else signer.jwks())
