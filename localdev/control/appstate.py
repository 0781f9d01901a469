"""The app's own state, read and written in-process: the ONE module of the console and control plane
that imports `shared/`.

Everything a person or a test suite *does* goes through the real HTTP API (localdev/control/api.py).
This module is for what the API cannot do or should not be asked: reading state without leaving
requests in the operation log (rooms, rosters, calls, Call Automation connections and callbacks,
the operation log itself), writing identities and rooms with the ids a seed names, minting tokens
with any lifetime, emptying the tables. It uses the app's own services and domain rules, so what
it writes is what the app would have written.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from azure.data.tables import TableServiceClient

from functions.errors import IDENTITY_ERRORS, ROOMS_ERRORS, HttpError
from shared.auth.hmac import sign_headers
from shared.automation.model import cloud_event
from shared.bootstrap import Services, get_services
from shared.calls.model import EndpointKind
from shared.calls.store import TableCallsStore
from shared.config.settings import Settings
from shared.core.errors import DomainError
from shared.core.identifiers import is_acs_user
from shared.core.timefmt import format_acs, format_imf_fixdate
from shared.events.outbox import CALLBACK_PREFIX, events_from_entity
from shared.identity.store import TableUsersStore
from shared.identity.tokens import parse_scopes
from shared.logs.operations import OPERATIONS_TABLE_SUFFIX
from shared.rooms.model import CreateRoomRequest, check_window, default_window, is_room_id
from shared.rooms.store import ROOM_ROW, RoomIdTaken, TableRoomsStore

__all__ = [
    "HttpError", "RoomSpec", "acs_time", "callbacks", "check_room", "create_identity", "create_room",
    "delete_identity", "dispatch_pending", "identities", "identity_exists", "is_acs_user", "mint_token",
    "operations", "purge_room", "reset_tables", "room_exists", "rooms", "settings", "sign", "user_id_for",
]

IDENTITIES_SUFFIX = "Identities"
ROOMS_SUFFIX = "Rooms"
_USER_ROW = "user"


def _services() -> Services:
    return get_services()


def settings() -> Settings:
    return _services().settings


def sign(access_key: bytes, method: str, url: str, body: bytes) -> dict[str, str]:
    """The ACS HMAC headers for a request, as an SDK sends them."""
    return sign_headers(access_key, method, url, body, format_imf_fixdate(datetime.now(timezone.utc)))


def acs_time(moment: datetime | None) -> str | None:
    return format_acs(moment) if moment is not None else None


def _table(suffix: str):
    services = _services()
    return services.tables.table(services.settings.table_name(suffix))


def _rooms_store() -> TableRoomsStore:
    services = _services()
    return TableRoomsStore(services.tables, services.settings.table_name(ROOMS_SUFFIX))


def _calls_store() -> TableCallsStore:
    services = _services()
    return TableCallsStore(services.tables, services.settings.table_name(ROOMS_SUFFIX))


# -- identities ----------------------------------------------------------------------------------
def user_id_for(local_part: str) -> str:
    return f"8:acs:{settings().resource_id}_{local_part}"


def identities() -> list[dict[str, Any]]:
    """Every user of this resource, oldest first."""
    rows = list(_table(IDENTITIES_SUFFIX).query_entities("RowKey eq @user", parameters={"user": _USER_ROW}))
    rows.sort(key=lambda e: e.get("CreatedAt") or datetime.min.replace(tzinfo=timezone.utc))
    return [{"id": user_id_for(e["PartitionKey"]), "createdAt": acs_time(e.get("CreatedAt")),
             "revokedBefore": acs_time(e.get("RevokedBefore"))} for e in rows]


def _users() -> TableUsersStore:
    services = _services()
    return TableUsersStore(services.tables, services.settings.table_name(IDENTITIES_SUFFIX))


def identity_exists(local_part: str) -> bool:
    return _users().get(local_part) is not None


def create_identity(local_part: str) -> None:
    """The user `8:acs:<resource>_<local_part>`, stored as the Identity API stores one."""
    _users().create(local_part, _services().clock())


def delete_identity(local_part: str) -> None:
    _users().delete(local_part)


def mint_token(user_id: str, seconds: int, scopes: Any) -> dict[str, Any]:
    """A token for an existing user, lasting `seconds`: signed by the app's identity code with the
    instance's ANTEROOM_TOKEN_SIGNING_KEY, so the app accepts it and revoking still applies.
    Raises HttpError (ACS's 400 for bad scopes, 404 for an unknown user)."""
    try:
        checked = parse_scopes(scopes, field_name="scopes")
        token = _services().identity.issue_token(user_id, checked, timedelta(seconds=seconds))
    except DomainError as error:
        raise IDENTITY_ERRORS.http_error(error) from None
    return {"userId": user_id, "token": token.token, "expiresOn": format_acs(token.expires_on),
            "scopes": list(checked)}


# -- rooms -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RoomSpec:
    """A room a seed asks for, checked by the API's own rules."""

    room_id: str
    request: CreateRoomRequest
    valid_from: datetime
    valid_until: datetime

    @property
    def roster(self) -> dict[str, str]:
        return {raw_id: role.value for raw_id, role in self.request.participants.items()}


def check_room(room_id: Any, body: dict[str, Any], now: datetime | None = None,
               max_participants: int | None = None) -> RoomSpec:
    """Parse a create-room body and its window as POST /rooms does; raises HttpError with ACS's body.

    `max_participants` defaults to the running app's setting (pass it when no app is running yet)."""
    if not is_room_id(room_id):
        raise HttpError("Invalid room ID length.", target="id")
    try:
        request = CreateRoomRequest.parse(body)
        now = now or datetime.now(timezone.utc)
        valid_from, valid_until = default_window(request.valid_from, request.valid_until, now)
        check_window(valid_from, valid_until, now)
    except DomainError as error:
        raise ROOMS_ERRORS.http_error(error) from None
    limit = max_participants if max_participants is not None else settings().max_room_participants
    if len(request.participants) > limit:
        raise HttpError(f"A room can have at most {limit} participants; this request would make "
                        f"{len(request.participants)}.")
    return RoomSpec(room_id, request, valid_from, valid_until)


def room_exists(room_id: str) -> bool:
    """A live room has this id (a deleted one, kept for its last call until the sweep, does not count)."""
    record = _rooms_store().get(room_id)
    return record is not None and not record.deleted


def create_room(spec: RoomSpec) -> None:
    """Create the room with its pinned id through the app's rooms service (the API's rules).

    A deleted room with that id is purged first, so nothing of it (its last call, events,
    roster) is read as the new room's.
    """
    existing = _rooms_store().get(spec.room_id)
    if existing is not None and existing.deleted:
        purge_room(spec.room_id)
    try:
        _services().rooms.create(spec.request, room_id=spec.room_id)
    except RoomIdTaken:
        raise HttpError(f"Room {spec.room_id} already exists.", code="Conflict", status=409) from None
    except DomainError as error:
        raise ROOMS_ERRORS.http_error(error) from None


def purge_room(room_id: str) -> None:
    """Every row of the room's partition: room, roster, call, endpoints, events, callbacks."""
    _rooms_store().purge(room_id)


def dispatch_pending(room_id: str) -> None:
    """Publish the room's pending call events and callbacks now (before a purge removes them)."""
    services = _services()
    for dispatcher in (services.dispatcher, services.callbacks):
        if dispatcher is not None:
            try:
                dispatcher.dispatch_room(room_id)
            except Exception:  # the receiver is down: the purge drops what it could not take
                pass


def _participant_json(participant, roster: dict[str, str]) -> dict[str, Any]:
    phone = participant.kind is EndpointKind.PHONE
    return {
        "participantId": participant.participant_id,
        "rawId": participant.raw_id,
        "kind": "phone" if phone else "user",
        "phoneNumber": participant.raw_id.removeprefix("4:") if phone else None,
        "callerNumber": participant.source_number,
        "role": None if phone else roster.get(participant.raw_id),
        "joinedRole": participant.joined_role.value if participant.joined_role else None,
        "state": participant.state,
        "isMuted": participant.muted,
        "isVideoOn": participant.video_on,
        "isScreenSharing": participant.screen_sharing,
        "joinedAt": acs_time(participant.joined_at),
        "leftAt": acs_time(participant.left_at),
        "leaveReason": participant.leave_reason,
        "automation": participant.automation.call_connection_id if participant.automation else None,
    }


def rooms(limit: int = 50) -> list[dict[str, Any]]:
    """The newest `limit` rooms not deleted (expired ones too, until purged), each with its roster,
    its current or last call (every endpoint, live roles) and its Call Automation connections."""
    store, calls = _rooms_store(), _calls_store()
    table = _table(ROOMS_SUFFIX)
    now = _services().clock()
    ids = []
    for entity in table.query_entities("RowKey eq @room and Deleted eq false", parameters={"room": ROOM_ROW},
                                       select=["PartitionKey"], results_per_page=limit):
        ids.append(entity["PartitionKey"])
        if len(ids) >= limit:
            break
    result = []
    for room_id in ids:
        record = store.get(room_id)
        if record is None or record.deleted:
            continue
        room = record.room
        roster = {raw_id: role.value for raw_id, role in store.roster(record).items()}
        call = calls.current(room.id)
        state = room.validity_at(now).value  # notYetOpen, open or expired
        entry = {**room.to_json(), "state": state,
                 "roster": [{"rawId": raw_id, "role": role} for raw_id, role in sorted(roster.items())],
                 "call": None}
        if call is not None:
            entry["call"] = {
                "serverCallId": call.server_call_id, "state": call.state, "startedAt": acs_time(call.started_at),
                "startedBy": call.started_by, "endedAt": acs_time(call.ended_at), "endReason": call.end_reason,
                "correlationId": call.correlation_id,
                "participants": [_participant_json(p, roster) for p in call.participants],
                "connections": [{"callConnectionId": c.call_connection_id, "callbackUri": c.callback_uri,
                                 "connectedAt": acs_time(c.connected_at), "state": c.state,
                                 "operationContext": c.operation_context} for c in call.connections],
            }
        result.append(entry)
    return result


def callbacks(limit: int = 200) -> list[dict[str, Any]]:
    """Call Automation callback batches, newest first: destination, state, attempts, the exact payload."""
    low, high = CALLBACK_PREFIX, CALLBACK_PREFIX[:-1] + "}"
    rows = list(_table(ROOMS_SUFFIX).query_entities("RowKey gt @low and RowKey lt @high",
                                                    parameters={"low": low, "high": high}))
    rows.sort(key=lambda e: (e.get("EventTime") or datetime.min.replace(tzinfo=timezone.utc), e["RowKey"]),
              reverse=True)
    answer = []
    for row in rows[:limit]:
        events = [cloud_event(event) for event in events_from_entity(row)]
        answer.append({
            "roomId": row["PartitionKey"], "id": row["RowKey"], "destination": row.get("Destination"),
            "state": row.get("State"), "attempts": row.get("Attempts", 0),
            "nextAttemptAt": acs_time(row.get("NextAttemptAt")) if row.get("State") == "pending" else None,
            "deliveredAt": acs_time(row.get("DeliveredAt")), "time": acs_time(row.get("EventTime")),
            "types": [e["type"].removeprefix("Microsoft.Communication.") for e in events],
            "callConnectionIds": sorted({(e.get("data") or {}).get("callConnectionId", "") for e in events} - {""}),
            "payload": events,
        })
    return answer


def operations(limit: int = 100, hours: int = 2) -> list[dict[str, Any]]:
    """The newest operation-log records (ACSRoomsIncomingOperations columns) of the last `hours`."""
    now = datetime.now(timezone.utc)
    first = f"{now - timedelta(hours=hours):%Y%m%d%H}"
    rows = list(_table(OPERATIONS_TABLE_SUFFIX).query_entities("PartitionKey ge @first",
                                                               parameters={"first": first}))
    rows.sort(key=lambda e: (e["PartitionKey"], e["RowKey"]), reverse=True)
    return [{key: (acs_time(value) if isinstance(value, datetime) else value)
             for key, value in row.items() if key not in ("PartitionKey", "RowKey")} for row in rows[:limit]]


# -- reset ---------------------------------------------------------------------------------------
def reset_tables() -> int:
    """Delete every entity of every table of the app (the tables stay: the app caches their clients)."""
    services = _services()
    prefix = services.settings.table_prefix.lower()
    with TableServiceClient.from_connection_string(services.settings.storage_connection_string) as client:
        names = [t.name for t in client.list_tables() if t.name.lower().startswith(prefix)]
    deleted = 0
    for name in names:
        table = services.tables.table(name)
        keys: dict[str, list[str]] = {}
        for entity in table.list_entities(select=["PartitionKey", "RowKey"]):
            keys.setdefault(entity["PartitionKey"], []).append(entity["RowKey"])
        for partition, rows in keys.items():
            for start in range(0, len(rows), 100):
                chunk = [("delete", {"PartitionKey": partition, "RowKey": row}) for row in rows[start:start + 100]]
                try:
                    table.submit_transaction(chunk)
                except Exception:  # a row went meanwhile: one by one, which tolerates that
                    for _, entity in chunk:
                        try:
                            table.delete_entity(entity["PartitionKey"], entity["RowKey"])
                        except Exception:
                            pass
                deleted += len(chunk)
    return deleted
