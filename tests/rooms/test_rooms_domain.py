"""Rooms domain rules on the in-memory store: validity windows, roster changes, ids, paging, what is published, the sweep."""
import threading
from datetime import datetime, timedelta, timezone

import pytest

from shared.core.clock import ManualClock
from functions.errors import ROOMS_ERRORS
from shared.core.errors import DomainError, RoomNotFound
from shared.rooms.model import (
    CreateRoomRequest,
    Role,
    UpdateRoomRequest,
    Validity,
    check_room_id,
    new_room_id,
    parse_participant_changes,
)
from shared.rooms.changes import RoomChanges, StagedWrites
from shared.rooms.service import RoomsService
from shared.rooms.memory import MemoryRoomsStore
from shared.storage.memory import MemoryTable

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


@pytest.fixture
def clock():
    return ManualClock(NOW)


@pytest.fixture
def service(clock):
    return RoomsService(MemoryRoomsStore(MemoryTable()), clock, max_participants=5)


def detail(error: DomainError):
    answer = ROOMS_ERRORS.http_error(error)
    assert answer.status == 400
    return answer.details[0].message, answer.details[0].target


def create(service, **body):
    return service.create(CreateRoomRequest.parse(body))


def test_defaults_are_now_and_180_days(service):
    room = create(service).room
    assert room.valid_from == NOW and room.valid_until == NOW + timedelta(days=180)
    assert room.created_at == NOW and room.pstn_dial_out_enabled is False
    assert len(room.id) == 17 and room.id.startswith("99")


def test_only_valid_from_gives_180_days_from_it(service):
    start = NOW + timedelta(days=3)
    room = create(service, validFrom=start.strftime(ISO)).room
    assert room.valid_until == start + timedelta(days=180)


@pytest.mark.parametrize(
    "body, message, target",
    [
        ({"validUntil": (NOW + timedelta(weeks=30)).strftime(ISO)}, "The time range is incorrect, or larger than 180 days.", "ValidUntil"),
        ({"validUntil": (NOW - timedelta(seconds=1)).strftime(ISO)}, "The time range end is in the past.", "ValidUntil"),
        ({"validFrom": (NOW + timedelta(days=211)).strftime(ISO)}, "Value is incorrect or more than 180 days in the future.", "ValidFrom"),
        (
            {"validFrom": (NOW + timedelta(days=3)).strftime(ISO), "validUntil": (NOW + timedelta(days=2)).strftime(ISO)},
            "The time range is incorrect, or larger than 180 days.",
            "ValidUntil",
        ),
    ],
)
def test_window_errors_match_acs(service, body, message, target):
    with pytest.raises(DomainError) as caught:
        create(service, **body)
    assert detail(caught.value) == (message, target)
    assert ROOMS_ERRORS.http_error(caught.value).to_body()["error"]["message"].startswith("The request could not be understood")


def test_validity_runs_from_valid_from_up_to_but_not_including_valid_until(service):
    room = create(service, validUntil=(NOW + timedelta(hours=1)).strftime(ISO)).room
    tick = timedelta(microseconds=1)
    assert room.validity_at(NOW - tick) is Validity.NOT_YET_OPEN
    assert room.validity_at(NOW) is room.validity_at(room.valid_until - tick) is Validity.OPEN
    assert room.validity_at(room.valid_until) is Validity.EXPIRED


def test_exactly_180_days_is_allowed(service):
    room = create(service, validUntil=(NOW + timedelta(days=180)).strftime(ISO)).room
    assert room.valid_until - room.valid_from == timedelta(days=180)


def test_update_is_merge_patch_and_rechecks_window(service):
    room = create(service, pstnDialOutEnabled=True).room
    until = NOW + timedelta(days=10, microseconds=123456)
    updated = service.update(room.id, UpdateRoomRequest.parse({"validFrom": None, "validUntil": until.strftime(ISO), "pstnDialOutEnabled": None})).room
    assert updated.valid_until == until and updated.pstn_dial_out_enabled is True and updated.created_at == room.created_at
    with pytest.raises(DomainError) as caught:
        service.update(room.id, UpdateRoomRequest.parse({"validUntil": (NOW + timedelta(weeks=29)).strftime(ISO)}))
    assert detail(caught.value)[0] == "The time range is incorrect, or larger than 180 days."
    assert service.get(room.id).room == updated  # the refused update changed nothing


@pytest.mark.parametrize("room_id", ["123", "invalid_id", "9" * 18, "99abcdefghijklmno"])
def test_bad_room_ids_are_400(room_id):
    with pytest.raises(DomainError) as caught:
        check_room_id(room_id)
    assert caught.value.message == "Invalid room ID length."


def test_unknown_and_deleted_rooms_are_404(service):
    with pytest.raises(DomainError) as caught:
        service.get(new_room_id(NOW))
    assert ROOMS_ERRORS.http_error(caught.value).status == 404
    room = create(service).room
    service.delete(room.id)
    with pytest.raises(DomainError):
        service.get(room.id)
    service.delete(room.id)  # a retried delete still succeeds


def test_create_rejects_bad_raw_id_and_role():
    with pytest.raises(DomainError) as caught:
        CreateRoomRequest.parse({"participants": {"wrong_mri": {"role": "Presenter"}}})
    assert caught.value.message == "Invalid format for communication identifier."
    with pytest.raises(DomainError) as caught:
        CreateRoomRequest.parse({"participants": {"8:acs:a_1": {"role": "Kafka"}}})
    assert ROOMS_ERRORS.http_error(caught.value).details[0].target == "$.participants.8:acs:a_1.role"


def test_participant_changes_parse():
    changes = parse_participant_changes(
        {"participants": {"8:acs:a_1": {"role": "Presenter"}, "8:acs:a_2": None, "8:acs:a_3": {}, "8:acs:a_4": {"role": None}}}
    )
    assert changes == {"8:acs:a_1": Role.PRESENTER, "8:acs:a_2": None, "8:acs:a_3": Role.ATTENDEE, "8:acs:a_4": Role.ATTENDEE}
    with pytest.raises(DomainError) as caught:
        parse_participant_changes({"participants": {"wrong_mri": None}})
    assert caught.value.message == "Communication identifier wrong_mri is not supported."


def test_roster_upsert_remove_and_noop(service):
    room = create(service, participants={"8:acs:a_1": {"role": "Presenter"}}).room
    result = service.update_participants(room.id, {"8:acs:a_1": Role.CONSUMER, "8:acs:a_2": Role.ATTENDEE, "8:acs:gone_1": None})
    assert (result.upserted, result.removed) == (2, 1)
    page, _ = service.list_participants(room.id, None, None, 10)
    assert dict(page.items) == {"8:acs:a_1": Role.CONSUMER, "8:acs:a_2": Role.ATTENDEE}
    assert result.record.counts.consumers == 1 and result.record.counts.total == 2


def test_roster_limit_rejects_whole_request(service):
    room = create(service, participants={f"8:acs:a_{i}": {"role": "Attendee"} for i in range(4)}).room
    with pytest.raises(DomainError):
        service.update_participants(room.id, {"8:acs:b_1": Role.ATTENDEE, "8:acs:b_2": Role.ATTENDEE})
    page, _ = service.list_participants(room.id, None, None, 10)
    assert len(page.items) == 4


def test_concurrent_roster_updates_lose_nothing(clock):
    service = RoomsService(MemoryRoomsStore(MemoryTable()), clock, max_participants=100)
    room = create(service).room
    threads = [
        threading.Thread(target=service.update_participants, args=(room.id, {f"8:acs:u_{i}": Role.ATTENDEE}))
        for i in range(30)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    page, _ = service.list_participants(room.id, None, None, 100)
    assert len(page.items) == 30


def test_list_pages_newest_first(service, clock):
    ids = []
    for _ in range(5):
        clock.advance(timedelta(seconds=1))
        ids.append(create(service).room.id)
    seen, after = [], None
    while True:
        page = service.list_active(after, 2)
        seen += [room.id for room in page.items]
        after = page.after
        if after is None:
            break
    assert seen == list(reversed(ids))


def test_room_ids_sort_newest_first():
    assert new_room_id(NOW + timedelta(seconds=1)) < new_room_id(NOW)


def test_room_ids_made_within_one_centisecond_still_sort_newest_first():
    ids = [new_room_id(NOW) for _ in range(200)]  # more than one centisecond's suffixes can hold
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    assert new_room_id(NOW + timedelta(seconds=1)) < ids[-1]


class Followers:
    """A RoomObserver noting what it was told."""

    def __init__(self) -> None:
        self.told: list[tuple] = []

    def roster_changing(self, record, old, new):
        return StagedWrites()

    def room_deleted(self, room_id):
        self.told.append(("deleted", room_id))

    def users_removed(self, room_id, raw_ids):
        self.told.append(("removed", room_id, raw_ids))


def test_deletions_and_roster_removals_are_published_once_committed(clock):
    changes, followers = RoomChanges(), Followers()
    changes.subscribe(followers)
    service = RoomsService(MemoryRoomsStore(MemoryTable()), clock, max_participants=5, changes=changes)
    room = create(service, participants={"8:acs:a_1": {"role": "Presenter"}, "8:acs:a_2": {}}).room
    service.update_participants(room.id, {"8:acs:a_3": Role.ATTENDEE, "8:acs:gone_1": None})
    service.update_participants(room.id, {"8:acs:a_2": None, "8:acs:gone_1": None})
    with pytest.raises(DomainError):
        service.update_participants(room.id, {f"8:acs:b_{index}": Role.ATTENDEE for index in range(5)})
    service.delete(room.id)
    service.delete(room.id)
    assert followers.told == [("removed", room.id, {"8:acs:a_2"}), ("deleted", room.id)]


def test_the_sweep_purges_deleted_rooms_and_rooms_past_validity_plus_grace(service, clock):
    grace = timedelta(hours=24)
    deleted = create(service).room
    service.delete(deleted.id)
    ending = create(service, validUntil=(NOW + timedelta(days=1)).strftime(ISO)).room
    lasting = create(service).room
    clock.set(NOW + grace)
    assert service.sweep(grace) == 0  # a deleted room stays as long as an expired one
    clock.set(NOW + timedelta(days=1) + grace)
    assert service.sweep(grace) == 1
    assert service.find(ending.id) is not None
    clock.advance(timedelta(microseconds=1))
    assert service.sweep(grace) == 1
    assert service.find(ending.id) is None and service.find(lasting.id).room == lasting
    with pytest.raises(RoomNotFound):
        service.delete(deleted.id)  # purged: now as unknown as an id that never existed
