"""Malformed and oversized input: each gets a clear 4xx in ACS's error shape, and nothing stored changes."""
import base64
import json

import pytest

from tests.support.hmac_client import HmacClient
from tests.support.refusals import assert_acs_error

pytestmark = pytest.mark.stack
ROOMS = "api-version=2025-03-13"
IDENTITY = "api-version=2023-10-01"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture(scope="module")
def http(hardened):
    return HmacClient(hardened)


@pytest.fixture(scope="module")
def room(http):
    """The id of a room with a small roster; `unchanged` checks it is exactly as it was."""
    body = {"participants": {f"8:acs:keep_{index}": {"role": "Presenter"} for index in range(3)}}
    created = http.send("POST", f"/rooms?{ROOMS}", body)
    assert created.status_code == 201
    return created.json()["id"]


BROKEN_JSON = [
    b"{",
    b'{"pstnDialOutEnabled": true',
    b'{"pstnDialOutEnabled": true}}',
    b'{"pstnDialOutEnabled": tru}',
    b"{'pstnDialOutEnabled': true}",
    b'{"pstnDialOutEnabled": true,}',
    b'{"validFrom": "\xff\xfe"}',  # not UTF-8
    b'{"validUntil": NaN}',
    b'{"validUntil": Infinity}',
    b'{"pstnDialOutEnabled": 1' + b"0" * 5000 + b"}",  # beyond Python's integer parsing limit
    b"[" * 100_000 + b"]" * 100_000,  # nesting deep enough to exhaust a recursive parser
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'"just a string"',
    b"null",
    b"42",
    b"\x00\x01\x02",
    # Valid JSON in another encoding (json.loads would guess it from the bytes): only UTF-8 is JSON here.
    '{"pstnDialOutEnabled": true}'.encode("utf-16-le"),
    '{"pstnDialOutEnabled": true}'.encode("utf-16"),  # with a byte order mark
    '{"pstnDialOutEnabled": true}'.encode("utf-32-be"),
    '{"pstnDialOutEnabled": true}'.encode("utf-8-sig"),  # UTF-8 behind a byte order mark
]


@pytest.mark.parametrize("raw", BROKEN_JSON, ids=range(len(BROKEN_JSON)))
def test_broken_json_is_400(http, room, unchanged, raw):
    assert_acs_error(http.send("POST", f"/rooms?{ROOMS}", raw=raw), 400, "BadRequest")
    assert_acs_error(http.send("PATCH", f"/rooms/{room}?{ROOMS}", raw=raw, headers=MERGE_PATCH), 400, "BadRequest")
    participants = f"/rooms/{room}/participants?{ROOMS}"
    assert_acs_error(http.send("PATCH", participants, raw=raw, headers=MERGE_PATCH), 400, "BadRequest")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/xml", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded",
     "application/jsonp", "", "json"],
)
def test_wrong_content_type_is_415(http, room, unchanged, content_type):
    body = json.dumps({"participants": {"8:acs:intruder_1": {"role": "Presenter"}}}).encode()
    path = f"/rooms/{room}/participants?{ROOMS}"
    answer = http.send("PATCH", path, raw=body, headers={"Content-Type": content_type})
    assert_acs_error(answer, 415, "UnsupportedMediaType")
    assert_acs_error(http.send("POST", f"/rooms?{ROOMS}", raw=body, headers={"Content-Type": content_type}), 415)


def test_huge_body_is_413_signed_or_not(http, room, unchanged):
    huge = b'{"participants": {' + b",".join(b'"8:acs:h_%d": null' % i for i in range(80_000)) + b"}}"
    assert len(huge) > 1_048_576
    for path in (f"/rooms?{ROOMS}", f"/rooms/{room}/participants?{ROOMS}", f"/identities?{IDENTITY}"):
        method = "PATCH" if "participants" in path else "POST"
        headers = MERGE_PATCH if method == "PATCH" else {}
        assert_acs_error(http.send(method, path, raw=huge, headers=headers), 413, "RequestEntityTooLarge")
        # The size is checked before the signature, so an unsigned flood is refused as cheaply.
        assert_acs_error(http.send(method, path, raw=huge, headers=headers, sign=False), 413, "RequestEntityTooLarge")


def test_body_at_the_limit_is_not_413(http, unchanged):
    padding = 1_048_576 - len(b'{"x": ""}')
    at_limit = b'{"x": "' + b" " * padding + b'"}'
    assert len(at_limit) == 1_048_576
    # Not too large; refused for what it says instead (an unknown room id), with nothing stored.
    answer = http.send("PATCH", f"/rooms/99999999999999999?{ROOMS}", raw=at_limit, headers=MERGE_PATCH)
    assert_acs_error(answer, 404)


@pytest.mark.parametrize("count", [1001, 5000])
def test_thousands_of_participants_in_one_patch_are_refused_whole(http, room, unchanged, count):
    body = {"participants": {f"8:acs:many_{index:05d}": {"role": "Attendee"} for index in range(count)}}
    answer = http.send("PATCH", f"/rooms/{room}/participants?{ROOMS}", body, headers=MERGE_PATCH)
    assert_acs_error(answer, 400)
    # The message names the size the roster would have: the watched room's three plus the new ones.
    assert f"would make {count + 3}." in answer.json()["error"]["message"]
    created = http.send("POST", f"/rooms?{ROOMS}", body)
    assert_acs_error(created, 400)
    assert f"would make {count}." in created.json()["error"]["message"]


def test_a_thousand_participants_in_one_patch_apply_whole(http, hardened_services):
    room_id = http.send("POST", f"/rooms?{ROOMS}", {}).json()["id"]
    body = {"participants": {f"8:acs:k_{index:04d}": {"role": "Consumer"} for index in range(1000)}}
    answer = http.send("PATCH", f"/rooms/{room_id}/participants?{ROOMS}", body, headers=MERGE_PATCH)
    assert answer.status_code == 200, answer.text
    record = hardened_services.rooms.get(room_id)
    assert record.counts.total == record.counts.consumers == 1000


def test_the_roster_limit_counts_the_roster_a_patch_leaves(http, hardened_services):
    room_id = http.send("POST", f"/rooms?{ROOMS}", {}).json()["id"]
    participants = f"/rooms/{room_id}/participants?{ROOMS}"
    full = {f"8:acs:full_{index:04d}": {"role": "Attendee"} for index in range(1000)}
    assert http.send("PATCH", participants, {"participants": full}, headers=MERGE_PATCH).status_code == 200
    # One more on a full roster: refused, naming the size the roster would have.
    one_more = http.send("PATCH", participants, {"participants": {"8:acs:extra_1": {"role": "Presenter"}}},
                         headers=MERGE_PATCH)
    assert_acs_error(one_more, 400)
    assert "1001" in one_more.json()["error"]["message"]
    # All 1,000 out and one in: 1,001 entries in the request, a roster of one.
    swap = {**{raw_id: None for raw_id in full}, "8:acs:extra_1": {"role": "Presenter"}}
    answer = http.send("PATCH", participants, {"participants": swap}, headers=MERGE_PATCH)
    assert answer.status_code == 200, answer.text
    record = hardened_services.rooms.get(room_id)
    assert (record.counts.total, record.counts.presenters) == (1, 1)


HOSTILE_IDS = [
    "8:acs:abc\u0000def",
    "8:acs:abc\u0007",
    "8:acs:\u202eevil",  # right-to-left override
    "8:acs:zero\u200bwidth",
    "8:acs:caf\u00e9",
    "8:acs:\U0001f600",
    "8:acs:" + "a" * 300,
    "8:acs:a/b",
    "8:acs:a'b",  # a quote, which would end an OData filter literal
    "8:acs:a#b",
    "8:acs:a?b",
    "8:acs:\\",
    "8:acs:\ud800",  # an unpaired surrogate, sent as a JSON escape
    "",
    " 8:acs:padded ",
    "8:ACS:upper",
    "4:+15551234567",  # a phone is not a roster member
]


@pytest.mark.parametrize("raw_id", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
def test_unicode_and_control_characters_in_participant_ids_are_400(http, room, unchanged, raw_id):
    body = json.dumps({"participants": {raw_id: {"role": "Presenter"}}}).encode()
    answer = http.send("PATCH", f"/rooms/{room}/participants?{ROOMS}", raw=body, headers=MERGE_PATCH)
    assert_acs_error(answer, 400)
    assert_acs_error(http.send("POST", f"/rooms?{ROOMS}", raw=body), 400)


ROOM_ID_SEGMENTS = [
    "%00" * 17,
    "%EF%BC%91" * 17,  # fullwidth digit one: a digit, but not ASCII
    "%E2%80%AE" + "1" * 16,
    "1" * 16 + "%0A",
    "1" * 18,
    "99999999999999999%27",
    "%F0%9F%98%80",
    "..%2F..%2Fidentities",
    "%ED%A0%80" * 3,  # an encoded surrogate: not valid UTF-8
    "%FF%FE",
]


@pytest.mark.parametrize("segment", ROOM_ID_SEGMENTS, ids=range(len(ROOM_ID_SEGMENTS)))
def test_hostile_room_ids_in_paths_are_4xx(http, room, unchanged, segment):
    for method, suffix, body in (
        ("GET", "", None), ("DELETE", "", None), ("PATCH", "", {"pstnDialOutEnabled": True}),
        ("GET", "/participants", None), ("PATCH", "/participants", {"participants": {"8:acs:x_1": None}}),
    ):
        headers = MERGE_PATCH if body is not None else {}
        answer = http.send(method, f"/rooms/{segment}{suffix}?{ROOMS}", body, headers=headers)
        assert answer.status_code in (400, 404), (method, suffix, answer.status_code, answer.text[:200])
        assert_acs_error(answer, answer.status_code)


@pytest.mark.parametrize(
    "segment", ["8:acs:%00", "%F0%9F%98%80", "8:acs:x%0D%0Ay", "%FF", "8:acs:" + "a" * 2000]
)
def test_hostile_identity_ids_are_404(http, unchanged, segment):
    for method, suffix, body in (
        ("DELETE", "", None), ("POST", "/:issueAccessToken", {"scopes": ["voip"]}), ("POST", "/:revokeAccessTokens", None),
    ):
        assert_acs_error(http.send(method, f"/identities/{segment}{suffix}?{IDENTITY}", body), 404, "NotFound")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"pstnDialOutEnabled": true, "pstnDialOutEnabled": false}',
        b'{"participants": {"8:acs:dup_1": {"role": "Presenter"}, "8:acs:dup_1": null}}',
        b'{"participants": {"8:acs:dup_2": {"role": "Presenter", "role": "Consumer"}}}',
        b'{"participants": {}, "participants": {"8:acs:dup_3": null}}',
    ],
)
def test_duplicate_keys_are_refused_like_a_strict_parser(http, room, unchanged, raw):
    # Decided: refuse with 400 rather than let the last value win, since two parsers (a proxy's
    # and ours) picking different values is how smuggled payloads get through.
    participants = f"/rooms/{room}/participants?{ROOMS}"
    for method, path in (("PATCH", participants), ("PATCH", f"/rooms/{room}?{ROOMS}"), ("POST", f"/rooms?{ROOMS}")):
        headers = MERGE_PATCH if method == "PATCH" else {}
        answer = http.send(method, path, raw=raw, headers=headers)
        assert_acs_error(answer, 400)
        assert "duplicate key" in answer.json()["error"]["message"]


OUT_OF_RANGE_DATES = [
    "0001-01-01T00:00:00+01:00",  # before the first instant Python (and .NET) can hold, once in UTC
    "9999-12-31T23:59:59-01:00",  # after the last one
    "0000-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "1601-01-01T00:00:00Z",
    "2024-02-30T00:00:00Z",
    "2024-13-01T00:00:00Z",
    "2024-01-01T24:00:00Z",
    "2024-01-01T23:59:60Z",
    "2030-01-01T00:00:00+24:00",
    "2030-01-01T00:00:00+23:60",
    "2030-01-01",
    "2030-01-01T00:00:00",
    "\uff12\uff10\uff13\uff10-01-01T00:00:00Z",  # fullwidth digits
    "2030-01-01T00:00:00." + "9" * 5000 + "Z",
    "",
]


@pytest.mark.parametrize("value", OUT_OF_RANGE_DATES, ids=range(len(OUT_OF_RANGE_DATES)))
def test_out_of_range_dates_are_400(http, room, unchanged, value):
    for field in ("validFrom", "validUntil"):
        assert_acs_error(http.send("POST", f"/rooms?{ROOMS}", {field: value}), 400)
        answer = http.send("PATCH", f"/rooms/{room}?{ROOMS}", {field: value}, headers=MERGE_PATCH)
        assert_acs_error(answer, 400)


@pytest.mark.parametrize(
    "link",
    [
        "%%%",
        base64.urlsafe_b64encode(b'{"a": "\\ud800"}').decode(),  # a cursor with an unpaired surrogate
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        base64.urlsafe_b64encode(b"[]").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        "A" * 5000,
    ],
)
def test_forged_continuation_tokens_are_400(http, room, link):
    for path in (f"/rooms?{ROOMS}", f"/rooms/{room}/participants?{ROOMS}"):
        assert_acs_error(http.send("GET", f"{path}&nextLink={link}"), 400, "BadRequest")


def test_wrong_types_in_a_valid_shape_are_400(http, room, unchanged):
    for body in (
        {"pstnDialOutEnabled": "true"},
        {"pstnDialOutEnabled": 1},
        {"validFrom": 1700000000},
        {"participants": []},
        {"participants": {"8:acs:t_1": {"role": "Owner"}}},
        {"participants": {"8:acs:t_1": {"role": ["Presenter"]}}},
        {"participants": {"8:acs:t_1": "Presenter"}},
    ):
        assert_acs_error(http.send("POST", f"/rooms?{ROOMS}", body), 400)
        path = f"/rooms/{room}/participants?{ROOMS}" if "participants" in body else f"/rooms/{room}?{ROOMS}"
        assert_acs_error(http.send("PATCH", path, body, headers=MERGE_PATCH), 400)
