"""Wire details the SDKs do not expose: auth failures, api-versions, repeatability, headers, bad bodies."""
import base64
import threading
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from shared.auth.hmac import sign_headers
from shared.core.timefmt import format_imf_fixdate

from tests.support.hmac_client import HmacClient
from tests.support.refusals import active_room_count, assert_acs_error, identity_count

pytestmark = pytest.mark.stack
API = "api-version=2025-03-13"


@pytest.fixture
def http(stack):
    return HmacClient(stack)


def test_success_headers(http):
    response = http.send("POST", f"/rooms?{API}", {}, headers={"x-ms-client-request-id": "abc-123"})
    assert response.status_code == 201
    assert "2025-03-13" in response.headers["api-supported-versions"]
    assert response.headers["x-ms-client-request-id"] == "abc-123"
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    deleted = http.send("DELETE", f"/rooms/{response.json()['id']}?{API}")
    assert deleted.status_code == 204 and "Content-Type" not in deleted.headers and deleted.content == b""


@pytest.mark.parametrize(
    "change",
    [
        {"sign": False},
        {"key": b"z" * 32},
        {"date": format_imf_fixdate(datetime.now(timezone.utc) - timedelta(hours=1))},
    ],
)
def test_auth_failures_are_401_and_change_nothing(http, stack_services, change):
    before = active_room_count(stack_services)
    response = http.send("POST", f"/rooms?{API}", {"pstnDialOutEnabled": True}, **change)
    assert_acs_error(response, 401, "Denied")
    assert active_room_count(stack_services) == before


def test_body_swapped_after_signing_is_401(http, stack):
    url = http.base + f"/rooms?{API}"
    headers = sign_headers(http.key, "POST", url, b"{}", format_imf_fixdate(datetime.now(timezone.utc)))
    response = requests.post(url, data=b'{"pstnDialOutEnabled": true}', headers={**headers, "Content-Type": "application/json"}, verify=http.verify)
    assert_acs_error(response, 401, "Denied")
    assert "x-ms-content-sha256" in response.json()["error"]["message"]


def test_secondary_key_is_accepted(http, stack):
    response = http.send("GET", f"/rooms?{API}", key=base64.b64decode(stack.secondary_access_key))
    assert response.status_code == 200


def test_api_version_errors(http):
    assert_acs_error(http.send("GET", "/rooms?api-version=2019-01-01"), 400, "UnsupportedApiVersion")
    assert_acs_error(http.send("GET", "/rooms"), 400, "MissingApiVersionParameter")
    # The SDK's enum spelling is only understood on continuation requests.
    assert_acs_error(http.send("GET", "/rooms?api-version=ApiVersion.V2025_03_13"), 400, "UnsupportedApiVersion")


@pytest.mark.parametrize("version", ["2023-06-14", "2024-04-15", "2025-03-13"])
def test_every_api_version_returns_pstn_flag(http, version):
    response = http.send("POST", f"/rooms?api-version={version}", {"pstnDialOutEnabled": True})
    assert response.status_code == 201 and response.json()["pstnDialOutEnabled"] is True


def test_continuation_with_sdk_enum_spelling(http, stack):
    for _ in range(stack.rooms_page_size + 1):
        http.send("POST", f"/rooms?{API}", {})
    first = http.send("GET", f"/rooms?{API}").json()
    link = urlsplit(first["nextLink"])
    token = parse_qs(link.query)["nextLink"][0]
    second = http.send("GET", f"/rooms?api-version=ApiVersion.V2025_03_13&nextLink={token}")
    assert second.status_code == 200 and second.json()["value"]
    assert not {r["id"] for r in first["value"]} & {r["id"] for r in second.json()["value"]}
    assert_acs_error(http.send("GET", f"/rooms?{API}&nextLink=%%%"), 400, "BadRequest")


def validation_error_without_header(response, target):
    assert response.status_code == 400
    assert "x-ms-error-code" not in response.headers
    assert response.json()["error"]["details"][0]["target"] == target


def test_validation_errors_have_details_and_no_error_header(http):
    past = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    validation_error_without_header(http.send("POST", f"/rooms?{API}", {"validUntil": past}), "ValidUntil")
    not_found = http.send("GET", f"/rooms/99999999999999999?{API}")
    assert_acs_error(not_found, 404, "NotFound")
    assert not_found.headers["x-ms-error-code"] == "NotFound"


@pytest.mark.parametrize(
    "raw, content_type, status, code",
    [
        (b"{not json", "application/json", 400, "BadRequest"),
        (b'{"pstnDialOutEnabled": true, "pstnDialOutEnabled": false}', "application/json", 400, "BadRequest"),
        (b"[]", "application/json", 400, "BadRequest"),
        (b'{"pstnDialOutEnabled": "yes"}', "application/json", 400, "BadRequest"),
        (b'{"validFrom": "tomorrow"}', "application/json", 400, "BadRequest"),
        (b'{"validFrom": "9999-12-31T23:59:59Z"}', "application/json", 400, "BadRequest"),
        (b"{}", "text/plain", 415, "UnsupportedMediaType"),
    ],
)
def test_bad_bodies_are_refused_and_store_nothing(http, stack_services, raw, content_type, status, code):
    before = active_room_count(stack_services)
    response = http.send("POST", f"/rooms?{API}", raw=raw, headers={"Content-Type": content_type})
    assert_acs_error(response, status, code)
    assert active_room_count(stack_services) == before


def test_oversized_body_is_413(http, stack):
    big = b'{"participants": {' + b",".join(f'"8:acs:x_{i}": null'.encode() for i in range(60000)) + b"}}"
    assert len(big) > 1_048_576
    assert_acs_error(http.send("POST", f"/rooms?{API}", raw=big), 413, "RequestEntityTooLarge")


def repeat_headers(request_id=None, first_sent=None):
    return {
        "Repeatability-Request-ID": request_id or str(uuid.uuid4()),
        "Repeatability-First-Sent": first_sent or format_imf_fixdate(datetime.now(timezone.utc)),
    }


def test_repeatable_create_replays_the_first_answer(http, stack_services):
    headers = repeat_headers()
    before = active_room_count(stack_services)
    first = http.send("POST", f"/rooms?{API}", {"pstnDialOutEnabled": True}, headers=headers)
    again = http.send("POST", f"/rooms?{API}", {"pstnDialOutEnabled": True}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert first.headers["Repeatability-Result"] == again.headers["Repeatability-Result"] == "accepted"
    assert active_room_count(stack_services) == before + 1
    different = http.send("POST", f"/rooms?{API}", {"pstnDialOutEnabled": False}, headers=headers)
    assert_acs_error(different, 400, "BadRequest")
    assert active_room_count(stack_services) == before + 1


@pytest.mark.parametrize("body", [{"validUntil": "2000-01-01T00:00:00Z"}, {"pstnDialOutEnabled": "yes"}])
def test_repeatable_failure_is_replayed_too(http, stack_services, body):
    headers = repeat_headers()
    before = active_room_count(stack_services)
    first = http.send("POST", f"/rooms?{API}", body, headers=headers)
    again = http.send("POST", f"/rooms?{API}", body, headers=headers)
    assert first.status_code == again.status_code == 400 and first.json() == again.json()
    assert first.headers["Repeatability-Result"] == again.headers["Repeatability-Result"] == "accepted"
    assert first.headers.get("x-ms-error-code") == again.headers.get("x-ms-error-code")
    # The id is spent on the refused request: another body under it is refused, and creates nothing.
    valid = http.send("POST", f"/rooms?{API}", {}, headers=headers)
    assert_acs_error(valid, 400, "BadRequest")
    assert "Repeatability-Request-ID" in valid.json()["error"]["message"]
    assert active_room_count(stack_services) == before


def test_concurrent_repeats_create_one_room(http, stack_services):
    headers = repeat_headers()
    before = active_room_count(stack_services)
    answers = []
    threads = [
        threading.Thread(target=lambda: answers.append(http.send("POST", f"/rooms?{API}", {}, headers=headers)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = {answer.json()["id"] for answer in answers if answer.status_code == 201}
    assert len(ids) == 1 and all(answer.status_code in (201, 409) for answer in answers)
    assert active_room_count(stack_services) == before + 1


@pytest.mark.parametrize(
    "headers, status, code",
    [
        ({"Repeatability-Request-ID": "not-a-uuid", "Repeatability-First-Sent": format_imf_fixdate(datetime.now(timezone.utc))}, 400, "BadRequest"),
        ({"Repeatability-Request-ID": str(uuid.uuid4()), "Repeatability-First-Sent": "yesterday"}, 400, "BadRequest"),
        ({"Repeatability-Request-ID": str(uuid.uuid4())}, 400, "BadRequest"),
        (
            {"Repeatability-Request-ID": str(uuid.uuid4()), "Repeatability-First-Sent": format_imf_fixdate(datetime.now(timezone.utc) - timedelta(minutes=30))},
            412,
            "PreconditionFailed",
        ),
    ],
)
def test_bad_repeatability_headers(http, stack_services, headers, status, code):
    before = active_room_count(stack_services)
    assert_acs_error(http.send("POST", f"/rooms?{API}", {}, headers=headers), status, code)
    assert active_room_count(stack_services) == before


def test_create_identity_refuses_a_json_null_body_but_takes_no_body(http, stack_services):
    users_before = identity_count(stack_services)
    assert_acs_error(http.send("POST", "/identities?api-version=2023-10-01", raw=b"null"), 400, "BadRequest")
    assert identity_count(stack_services) == users_before
    created = http.send("POST", "/identities?api-version=2023-10-01")
    assert created.status_code == 201 and created.json()["identity"]["id"].startswith("8:acs:")
