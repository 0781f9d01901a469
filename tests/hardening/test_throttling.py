"""Throttling like ACS: 429 with Retry-After and an ACS error body per caller, and the official SDKs back off and succeed."""
import base64
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.rooms import RoomsClient

from tests.support.hmac_client import HmacClient

from .conftest import hardening_stack

pytestmark = pytest.mark.stack
API = "api-version=2025-03-13"
LIMIT, WINDOW_SECONDS = 5, 2  # 5 requests at once, then one every 0.4 s


@pytest.fixture(scope="module")
def throttled():
    env = {"ANTEROOM_THROTTLE_REQUESTS": str(LIMIT), "ANTEROOM_THROTTLE_WINDOW_SECONDS": str(WINDOW_SECONDS)}
    with hardening_stack(env) as stack:
        yield stack


def wait_for_full_budget():
    time.sleep(WINDOW_SECONDS + 0.5)


def in_parallel(count, call, workers=None):
    """`count` calls from `workers` threads (all at once by default), so a loaded machine cannot
    spread them over the refill time."""
    with ThreadPoolExecutor(max_workers=workers or count) as pool:
        return list(pool.map(lambda _: call(), range(count)))


# Two SDK clients at once: enough to outrun the refill on any machine, few enough that each one's
# retries (3 on 429, after Retry-After) always find a token; a herd of 15 would exhaust them.
SDK_CLIENTS = 2


def burst(client, count, **send):
    return in_parallel(count, lambda: client.send("GET", f"/rooms?{API}", **send))


def test_over_the_limit_is_429_with_retry_after_and_acs_error(throttled):
    wait_for_full_budget()
    answers = burst(HmacClient(throttled), 3 * LIMIT)
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) == {200, 429} and statuses.count(200) >= LIMIT, statuses
    refused = [answer for answer in answers if answer.status_code == 429]
    for answer in refused:
        assert answer.headers["Retry-After"] == "1"
        assert answer.headers["x-ms-error-code"] == "TooManyRequests"
        error = answer.json()["error"]
        assert error["code"] == "TooManyRequests" and error["message"]
        assert answer.headers["MS-CV"]
    time.sleep(int(refused[-1].headers["Retry-After"]))
    assert HmacClient(throttled).send("GET", f"/rooms?{API}").status_code == 200


def test_each_access_key_has_its_own_budget(throttled):
    wait_for_full_budget()
    client = HmacClient(throttled)
    assert 429 in [answer.status_code for answer in burst(client, 3 * LIMIT)]
    secondary = base64.b64decode(throttled.secondary_access_key)
    assert [answer.status_code for answer in burst(client, LIMIT, key=secondary)] == [200] * LIMIT


def test_failed_authentication_does_not_spend_the_budget(throttled):
    wait_for_full_budget()
    client = HmacClient(throttled)
    forged = burst(client, 3 * LIMIT, key=b"f" * 32)
    assert {answer.status_code for answer in forged} == {401}
    assert [answer.status_code for answer in burst(client, LIMIT)] == [200] * LIMIT


def test_token_callers_are_throttled_per_user(throttled):
    wait_for_full_budget()
    identity = CommunicationIdentityClient.from_connection_string(throttled.connection_string)
    room = HmacClient(throttled)
    wait_for_full_budget()
    tokens = [identity.create_user_and_token(["voip"])[1].token for _ in range(2)]
    wait_for_full_budget()
    room_id = room.send("POST", f"/rooms?{API}", {}).json()["id"]
    client = HmacClient(throttled)

    def call_as(token):
        return client.send("GET", f"/roomCalls/{room_id}", sign=False, headers={"Authorization": f"Bearer {token}"})

    first = [answer.status_code for answer in in_parallel(3 * LIMIT, lambda: call_as(tokens[0]))]
    assert 429 in first and len(first) - first.count(429) >= LIMIT, first
    assert call_as(tokens[1]).status_code != 429  # another user's budget is untouched


def test_official_rooms_sdk_backs_off_on_429_and_succeeds(throttled):
    wait_for_full_budget()
    statuses = []
    rooms = RoomsClient.from_connection_string(
        throttled.connection_string, raw_response_hook=lambda response: statuses.append(response.http_response.status_code)
    )
    started = time.monotonic()
    created = in_parallel(3 * LIMIT, rooms.create_room, SDK_CLIENTS)
    elapsed = time.monotonic() - started
    assert len({room.id for room in created}) == 3 * LIMIT
    assert 429 in statuses, statuses  # the SDK met the limit ...
    assert statuses.count(201) == 3 * LIMIT  # ... and every room was still created, once
    # Retry-After was honoured: the 2 * LIMIT requests past the burst took at least their refill time.
    assert elapsed >= (2 * LIMIT - 1) * WINDOW_SECONDS / LIMIT
    rooms.close()


def test_official_identity_sdk_backs_off_on_429_and_succeeds(throttled):
    wait_for_full_budget()
    statuses = []
    identity = CommunicationIdentityClient.from_connection_string(
        throttled.connection_string, raw_response_hook=lambda response: statuses.append(response.http_response.status_code)
    )
    users = in_parallel(3 * LIMIT, identity.create_user, SDK_CLIENTS)
    assert len({user.raw_id for user in users}) == 3 * LIMIT
    assert 429 in statuses and statuses.count(201) == 3 * LIMIT, statuses
