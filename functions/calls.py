"""Room-call client API (our own; ACS's calling protocol is proprietary): join, act, read the call.

Clients authenticate with Identity API access tokens (Bearer, scope voip or voip.join). The PSTN
gateway reports phone-side events on `/pstn/events`, signed with the resource's access key.
"""
from __future__ import annotations

import azure.functions as func

from shared.calls.model import Call, EndpointKind, capabilities_of
from shared.core.errors import InvalidRequest
from shared.rooms.model import Role
from shared.core.timefmt import format_acs

from .errors import ROOM_CALLS_ERRORS
from .pipeline import BEARER, ApiRequest, ApiResponse, acs_operation

bp = func.Blueprint()
ANONYMOUS = func.AuthLevel.ANONYMOUS


def call_json(call: Call, roster: dict[str, Role]) -> dict:
    body = {
        "serverCallId": call.server_call_id,
        "roomId": call.room_id,
        "state": call.state,
        "startedAt": format_acs(call.started_at),
        "correlationId": call.correlation_id,
        "participants": [
            p.to_json(roster.get(p.raw_id) if p.kind is EndpointKind.VOIP else None) for p in call.participants
        ],
    }
    if call.ended_at:
        body["endedAt"] = format_acs(call.ended_at)
        body["endReason"] = call.end_reason
    return body


def _user(request: ApiRequest) -> str:
    request.services.calls.check_token_scopes(request.caller.scopes)
    return request.caller.user_id


@bp.function_name("JoinRoomCall")
@bp.route(route="roomCalls/{roomId}/join", methods=["POST"], auth_level=ANONYMOUS)
@acs_operation("JoinRoomCall", None, ROOM_CALLS_ERRORS, auth=BEARER)
def join_room_call(request: ApiRequest) -> ApiResponse:
    user_id = _user(request)
    display_name = request.json_object(allow_empty=True).get("displayName")
    call, endpoint, caller, record = request.services.calls.join(request.route("roomId"), user_id, display_name)
    roster = {user_id: caller.role}
    return ApiResponse(
        200,
        {
            "serverCallId": call.server_call_id,
            "participantId": endpoint.participant_id,
            "role": caller.role.value,
            "capabilities": sorted(c.value for c in capabilities_of(caller.role, record.room.pstn_dial_out_enabled)),
            "call": call_json(call, {**request.services.rooms.roster_of(record), **roster}),
        },
    )


@bp.function_name("GetRoomCall")
@bp.route(route="roomCalls/{roomId}", methods=["GET"], auth_level=ANONYMOUS)
@acs_operation("GetRoomCall", None, ROOM_CALLS_ERRORS, auth=BEARER)
def get_room_call(request: ApiRequest) -> ApiResponse:
    call, roster, _ = request.services.calls.view(request.route("roomId"), _user(request))
    return ApiResponse(200, call_json(call, roster))


@bp.function_name("ActOnSelf")
@bp.route(route="roomCalls/{roomId}/me/{action}", methods=["POST"], auth_level=ANONYMOUS)
@acs_operation("ActOnSelf", None, ROOM_CALLS_ERRORS, auth=BEARER)
def act_on_self(request: ApiRequest) -> ApiResponse:
    user_id = _user(request)
    endpoint = request.services.calls.act_self(request.route("roomId"), user_id, request.route("action"))
    return ApiResponse(200, endpoint.to_json(None))


@bp.function_name("ActOnParticipant")
@bp.route(route="roomCalls/{roomId}/participants/{participantId}/{action}", methods=["POST"], auth_level=ANONYMOUS)
@acs_operation("ActOnParticipant", None, ROOM_CALLS_ERRORS, auth=BEARER)
def act_on_participant(request: ApiRequest) -> ApiResponse:
    endpoint = request.services.calls.act_on(
        request.route("roomId"), _user(request), request.route("participantId"), request.route("action")
    )
    return ApiResponse(200, endpoint.to_json(None))


@bp.function_name("InviteToRoomCall")
@bp.route(route="roomCalls/{roomId}/invitations", methods=["POST"], auth_level=ANONYMOUS)
@acs_operation("InviteToRoomCall", None, ROOM_CALLS_ERRORS, auth=BEARER)
def invite_to_room_call(request: ApiRequest) -> ApiResponse:
    raw_id = request.json_object().get("rawId")
    if not isinstance(raw_id, str):
        raise InvalidRequest("rawId is required.", target="rawId")
    endpoint = request.services.calls.invite(request.route("roomId"), _user(request), raw_id)
    return ApiResponse(201, endpoint.to_json(None))


@bp.function_name("DialOutFromRoomCall")
@bp.route(route="roomCalls/{roomId}/dialOut", methods=["POST"], auth_level=ANONYMOUS)
@acs_operation("DialOutFromRoomCall", None, ROOM_CALLS_ERRORS, auth=BEARER)
def dial_out_from_room_call(request: ApiRequest) -> ApiResponse:
    body = request.json_object()
    number, caller_id = body.get("phoneNumber"), body.get("callerIdNumber")
    if not isinstance(number, str) or not isinstance(caller_id, str):
        raise InvalidRequest("phoneNumber and callerIdNumber are required strings.", target="phoneNumber")
    result = request.services.calls.dial_out(request.route("roomId"), _user(request), number, caller_id)
    answer: dict = {"outcome": result.outcome.value}
    if result.participant is not None:
        answer["participant"] = result.participant.to_json(None)
    return ApiResponse(200, answer)


@bp.function_name("PstnEvent")
@bp.route(route="pstn/events", methods=["POST"], auth_level=ANONYMOUS)
@acs_operation("PstnEvent", None, ROOM_CALLS_ERRORS)
def pstn_event(request: ApiRequest) -> ApiResponse:
    body = request.json_object()
    reference, action = body.get("reference"), body.get("action")
    if not isinstance(reference, str) or not isinstance(action, str):
        raise InvalidRequest("reference and action are required strings.")
    endpoint = request.services.calls.phone_event(reference, action)
    return ApiResponse(200, endpoint.to_json(None))
