"""Rooms API blueprint (ACS Rooms data plane: /rooms and /rooms/{roomId}/participants)."""
from __future__ import annotations

import azure.functions as func

from shared.core.errors import InvalidRequest
from shared.repeatability.store import StoredResponse
from shared.rooms.model import (
    CreateRoomRequest,
    Room,
    RosterCounts,
    UpdateRoomRequest,
    new_room_id,
    parse_participant_changes,
)
from shared.rooms.store import RoomIdTaken, RoomRecord
from shared.core.timefmt import parse_rfc3339

from .errors import ROOMS_ERRORS
from .pipeline import ROOMS_API, ApiRequest, ApiResponse, acs_operation

bp = func.Blueprint()
ANONYMOUS = func.AuthLevel.ANONYMOUS


def _room_facts(record: RoomRecord, **extra) -> dict:
    return {"room": record.room, "counts": record.counts, **extra}


def _created(record: RoomRecord, request: ApiRequest) -> StoredResponse:
    location = request.http.url.split("?")[0].rstrip("/") + f"/{record.room.id}"
    return StoredResponse(201, record.room.to_json(), {"Location": location})


@bp.function_name("CreateRoom")
@bp.route(route="rooms", methods=["POST"], auth_level=ANONYMOUS)
@acs_operation("CreateRoom", ROOMS_API, ROOMS_ERRORS)
def create_room(request: ApiRequest) -> ApiResponse:
    services = request.services
    now = services.clock()
    repeat = request.repeatability()
    if repeat is None:
        body = CreateRoomRequest.parse(request.json_object(allow_empty=True))
        record = services.rooms.create(body)
        created = _created(record, request)
        return ApiResponse(created.status, created.body, created.headers, _creation_facts(body, record))

    def execute(room_id: str) -> StoredResponse:
        # Parsed here, inside the repeatable part: a refused body is the first answer, replayed too.
        body = CreateRoomRequest.parse(request.json_object(allow_empty=True))
        try:
            return _created(services.rooms.create(body, room_id=room_id), request)
        except RoomIdTaken:
            return recover(room_id)

    def recover(room_id: str) -> StoredResponse | None:
        record = services.rooms.find(room_id)
        return _created(record, request) if record else None

    answer = request.run_once(repeat, reserve=lambda: new_room_id(now), execute=execute, recover=recover)
    if answer.status != 201:
        return ApiResponse(answer.status, answer.body, answer.headers)
    body = CreateRoomRequest.parse(request.json_object(allow_empty=True))  # valid: it made the room
    # A replay did not read the room again: what was created is in the stored answer and the request.
    created = Room(
        id=answer.body["id"],
        created_at=parse_rfc3339(answer.body["createdAt"]),
        valid_from=parse_rfc3339(answer.body["validFrom"]),
        valid_until=parse_rfc3339(answer.body["validUntil"]),
        pstn_dial_out_enabled=answer.body["pstnDialOutEnabled"],
    )
    return ApiResponse(answer.status, answer.body, answer.headers, _creation_facts(body, created))


def _creation_facts(body: CreateRoomRequest, created: RoomRecord | Room) -> dict:
    room = created.room if isinstance(created, RoomRecord) else created
    return {"room": room, "counts": RosterCounts.of(body.participants.values()), "added": len(body.participants)}


@bp.function_name("ListRooms")
@bp.route(route="rooms", methods=["GET"], auth_level=ANONYMOUS)
@acs_operation("ListRooms", ROOMS_API, ROOMS_ERRORS)
def list_rooms(request: ApiRequest) -> ApiResponse:
    cursor = request.cursor() or {}
    after = cursor.get("a")
    if after is not None and not isinstance(after, str):
        raise InvalidRequest("The nextLink continuation token is not valid.")
    page = request.services.rooms.list_active(after, request.services.settings.rooms_page_size)
    body = {"value": [room.to_json() for room in page.items]}
    if page.after:
        body["nextLink"] = request.link_to_next_page({"a": page.after})
    return ApiResponse(200, body)


@bp.function_name("GetRoom")
@bp.route(route="rooms/{roomId}", methods=["GET"], auth_level=ANONYMOUS)
@acs_operation("GetRoom", ROOMS_API, ROOMS_ERRORS)
def get_room(request: ApiRequest) -> ApiResponse:
    record = request.services.rooms.get(request.route("roomId"))
    return ApiResponse(200, record.room.to_json(), facts=_room_facts(record))


@bp.function_name("UpdateRoom")
@bp.route(route="rooms/{roomId}", methods=["PATCH"], auth_level=ANONYMOUS)
@acs_operation("UpdateRoom", ROOMS_API, ROOMS_ERRORS)
def update_room(request: ApiRequest) -> ApiResponse:
    room_id = request.route("roomId")
    as_read = request.services.rooms.get(room_id)  # a bad or unknown id answers before a bad body does
    record = request.services.rooms.update(room_id, UpdateRoomRequest.parse(request.json()), as_read)
    return ApiResponse(200, record.room.to_json(), facts=_room_facts(record))


@bp.function_name("DeleteRoom")
@bp.route(route="rooms/{roomId}", methods=["DELETE"], auth_level=ANONYMOUS)
@acs_operation("DeleteRoom", ROOMS_API, ROOMS_ERRORS)
def delete_room(request: ApiRequest) -> ApiResponse:
    record = request.services.rooms.delete(request.route("roomId"))
    return ApiResponse(204, facts=_room_facts(record))


@bp.function_name("ListParticipants")
@bp.route(route="rooms/{roomId}/participants", methods=["GET"], auth_level=ANONYMOUS)
@acs_operation("GetParticipants", ROOMS_API, ROOMS_ERRORS)
def list_participants(request: ApiRequest) -> ApiResponse:
    room_id = request.route("roomId")
    cursor = request.cursor() or {}
    generation, after = cursor.get("g"), cursor.get("a")
    if not all(value is None or isinstance(value, str) for value in (generation, after)):
        raise InvalidRequest("The nextLink continuation token is not valid.")
    page, generation = request.services.rooms.list_participants(
        room_id, generation, after, request.services.settings.participants_page_size
    )
    body = {"value": [{"rawId": raw_id, "role": role.value} for raw_id, role in page.items]}
    if page.after:
        body["nextLink"] = request.link_to_next_page({"g": generation, "a": page.after})
    return ApiResponse(200, body, facts={"room_id": room_id})


@bp.function_name("UpdateParticipants")
@bp.route(route="rooms/{roomId}/participants", methods=["PATCH"], auth_level=ANONYMOUS)
@acs_operation("UpdateParticipants", ROOMS_API, ROOMS_ERRORS)
def update_participants(request: ApiRequest) -> ApiResponse:
    room_id = request.route("roomId")
    as_read = request.services.rooms.get(room_id)  # a bad or unknown id answers before a bad body does
    result = request.services.rooms.update_participants(room_id, parse_participant_changes(request.json()), as_read)
    return ApiResponse(
        200, {}, facts=_room_facts(result.record, upserted=result.upserted, removed=result.removed)
    )
