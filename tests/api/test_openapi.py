"""The served OpenAPI document: valid OpenAPI 3, exactly the app's routes, and real answers match it."""
from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
from azure.communication.identity import CommunicationTokenScope
from azure.communication.rooms import ParticipantRole
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_spec_validator import validate

from shared.core.timefmt import format_imf_fixdate

from tests.support.calls import new_user, roster
from tests.support.hmac_client import HmacClient

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("hang_up_phones")]
ROOMS = "api-version=2025-03-13"
IDENTITY = "api-version=2023-10-01"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def served(stack):
    return requests.get(stack.base_url + "/openapi.json", verify=stack.ca_file, timeout=30)


@pytest.fixture(scope="module")
def document(served):
    return served.json()


@pytest.fixture(scope="module")
def check(document):
    """`check(response, status)`: assert the status, then validate the answer (and by default the
    request, so the document's parameters and bodies are shown to accept real traffic)."""
    # openapi-core only parses application/json on its own; the Rooms PATCHes use merge-patch.
    spec = OpenAPI.from_dict(document, config=Config(extra_media_type_deserializers={"application/merge-patch+json": json.loads}))

    def checked(response: requests.Response, status: int, *, request_too: bool = True) -> requests.Response:
        assert response.status_code == status, response.text
        request = RequestsOpenAPIRequest(response.request)
        if request_too:
            spec.validate_request(request)
        spec.validate_response(request, RequestsOpenAPIResponse(response))
        return response

    checked.spec = spec
    return checked


@pytest.fixture
def http(stack):
    return HmacClient(stack)


def test_document_is_json_and_valid_openapi(served, document):
    assert served.status_code == 200
    assert served.headers["Content-Type"].split(";")[0] == "application/json"
    assert document["openapi"].startswith("3.")
    validate(document)  # raises on any structural error, for 3.0 and 3.1 alike


def test_document_has_exactly_the_app_routes_and_methods(document):
    import function_app

    # get_functions() indexes the app and may run only once per app object: this is its only caller here.
    registered = set()
    for function in function_app.app.get_functions():
        trigger = function.get_trigger()
        if getattr(trigger, "route", None) is None:
            continue  # timers
        for method in trigger.methods:
            registered.add(("/" + trigger.route.strip("/"), str(getattr(method, "value", method)).upper()))
    documented = {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert documented == registered, {"undocumented": registered - documented, "extra": documented - registered}


def test_validation_rejects_answers_off_the_document(http, check):
    """Guards the other tests: a wrong body, a missing required header or an undocumented status fails."""
    room = check(http.send("POST", f"/rooms?{ROOMS}", {}), 201)
    request = RequestsOpenAPIRequest(room.request)

    def fails(response):
        with pytest.raises(Exception):
            check.spec.validate_response(request, RequestsOpenAPIResponse(response))

    wrong_date = copy.copy(room)
    wrong_date._content = json.dumps({**room.json(), "validFrom": "2025-01-01T00:00:00Z"}).encode()
    fails(wrong_date)
    extra_key = copy.copy(room)
    extra_key._content = json.dumps({**room.json(), "participants": {}}).encode()
    fails(extra_key)
    no_location = copy.copy(room)
    no_location.headers = requests.structures.CaseInsensitiveDict(
        {k: v for k, v in room.headers.items() if k.lower() != "location"}
    )
    fails(no_location)
    undocumented_status = copy.copy(room)
    undocumented_status.status_code = 202
    fails(undocumented_status)


def test_rooms_answers_match(http, check, stack):
    created = check(
        http.send(
            "POST", f"/rooms?{ROOMS}",
            {"validFrom": None, "validUntil": None, "pstnDialOutEnabled": True,
             "participants": {"8:acs:openapi_1": {"role": "Presenter"}, "8:acs:openapi_2": None}},
            headers={"Repeatability-Request-ID": str(uuid.uuid4()),
                     "Repeatability-First-Sent": format_imf_fixdate(datetime.now(timezone.utc))},
        ),
        201,
    )
    assert created.headers["Repeatability-Result"] == "accepted"
    room = created.json()["id"]
    for _ in range(stack.rooms_page_size):
        http.send("POST", f"/rooms?{ROOMS}", {})
    first = check(http.send("GET", f"/rooms?{ROOMS}"), 200).json()
    continuation = first["nextLink"].removeprefix(http.base)
    check(http.send("GET", continuation), 200)
    check(http.send("GET", f"/rooms/{room}?{ROOMS}"), 200)
    merge_patch = {"Content-Type": "application/merge-patch+json"}
    until = (datetime.now(timezone.utc) + timedelta(days=3, microseconds=120)).isoformat()
    check(http.send("PATCH", f"/rooms/{room}?{ROOMS}", {"validUntil": until, "pstnDialOutEnabled": None}, merge_patch), 200)
    many = {f"8:acs:openapi_{i:03d}": {"role": "Attendee"} for i in range(stack.participants_page_size + 1)}
    assert check(http.send("PATCH", f"/rooms/{room}/participants?{ROOMS}", {"participants": many}, merge_patch), 200).json() == {}
    page = check(http.send("GET", f"/rooms/{room}/participants?{ROOMS}"), 200).json()
    check(http.send("GET", page["nextLink"].removeprefix(http.base)), 200)
    check(http.send("DELETE", f"/rooms/{room}?{ROOMS}"), 204)
    check(http.send("GET", f"/rooms/{room}?{ROOMS}"), 404)


def test_rooms_error_answers_match(http, check):
    def error(response, status, *, request_too=False):
        return check(response, status, request_too=request_too).json()["error"]

    assert error(http.send("GET", f"/rooms/123?{ROOMS}"), 400)["code"] == "BadRequest"
    past = {"validUntil": "2020-01-01T00:00:00Z"}
    detailed = http.send("POST", f"/rooms?{ROOMS}", past)
    assert error(detailed, 400, request_too=True)["details"][0]["target"] == "ValidUntil"
    assert "x-ms-error-code" not in detailed.headers
    assert error(http.send("GET", "/rooms"), 400)["code"] == "MissingApiVersionParameter"
    assert error(http.send("GET", "/rooms?api-version=2019-01-01"), 400)["code"] == "UnsupportedApiVersion"
    assert error(http.send("GET", f"/rooms?{ROOMS}", sign=False), 401)["code"] == "Denied"
    assert error(http.send("GET", f"/rooms?{ROOMS}&nextLink=%%%"), 400)["code"] == "BadRequest"
    plain = {"Content-Type": "text/plain"}
    assert error(http.send("POST", f"/rooms?{ROOMS}", raw=b"hello", headers=plain), 415)["code"] == "UnsupportedMediaType"
    huge = b'{"x": "' + b"a" * 1_100_000 + b'"}'
    assert error(http.send("POST", f"/rooms?{ROOMS}", raw=huge), 413)["code"] == "RequestEntityTooLarge"
    stale = {"Repeatability-Request-ID": str(uuid.uuid4()),
             "Repeatability-First-Sent": format_imf_fixdate(datetime.now(timezone.utc) - timedelta(hours=1))}
    assert error(http.send("POST", f"/rooms?{ROOMS}", {}, stale), 412, request_too=True)["code"] == "PreconditionFailed"
    role = {"participants": {"8:acs:openapi_x": {"role": "Kafka"}}}
    assert error(http.send("PATCH", f"/rooms/{'9' * 17}/participants?{ROOMS}", role,
                           {"Content-Type": "application/merge-patch+json"}), 404)["code"] == "NotFound"


def test_identity_answers_match(http, check):
    user = check(http.send("POST", f"/identities?{IDENTITY}"), 201).json()["identity"]["id"]
    with_token = check(http.send("POST", f"/identities?{IDENTITY}", {"createTokenWithScopes": ["chat"], "expiresInMinutes": 60}), 201)
    assert "accessToken" in with_token.json()
    path = f"/identities/{requests.utils.quote(user, safe='')}"
    check(http.send("POST", f"{path}/:issueAccessToken?{IDENTITY}", {"scopes": ["voip", "chat"]}), 200)
    assert check(http.send("POST", f"{path}/:issueAccessToken?{IDENTITY}", {"scopes": ["voip"], "expiresInMinutes": 59}),
                 400, request_too=False).json()["error"]["target"] == "expiresInMinutes"
    check(http.send("POST", f"{path}/:revokeAccessTokens?{IDENTITY}"), 204)
    check(http.send("DELETE", f"{path}?{IDENTITY}"), 204)
    check(http.send("POST", f"{path}/:issueAccessToken?{IDENTITY}", {"scopes": ["voip"]}), 404)
    check(http.send("DELETE", f"{path}?api-version=2025-03-13"), 400, request_too=False)


def test_room_call_answers_match(stack, rooms_client, identity_client, http, check):
    presenter, attendee, invitee = (new_user(stack, identity_client) for _ in range(3))
    outsider = new_user(stack, identity_client)
    chat_only = new_user(stack, identity_client, scopes=(CommunicationTokenScope.CHAT,))
    room = rooms_client.create_room(
        pstn_dial_out_enabled=True,
        participants=roster((presenter, ParticipantRole.PRESENTER), (attendee, ParticipantRole.ATTENDEE),
                            (invitee, ParticipantRole.COLLABORATOR), (chat_only, ParticipantRole.PRESENTER)),
    ).id
    base = f"/roomCalls/{room}"

    assert check(presenter.call(room), 404).json()["error"]["code"] == "NotFound"
    check(presenter.join(room), 200)
    joined = check(attendee.join(room), 200).json()
    check(presenter.call(room), 200)
    check(attendee.me(room, "muteMic"), 200)
    assert check(attendee.me(room, "startScreenShare"), 403).json()["error"]["code"] == "MissingCapability"
    assert check(attendee.me(room, "dance"), 400, request_too=False).json()["error"]["code"] == "BadRequest"
    check(presenter.on(room, joined["participantId"], "mute"), 200)
    check(presenter.request("POST", f"{base}/invitations", {"rawId": invitee.raw_id}), 201)
    assert check(presenter.request("POST", f"{base}/invitations", {"rawId": invitee.raw_id}), 409).json()["error"]["code"] == "AlreadyInCall"
    assert check(invitee.me(room, "muteMic"), 409).json()["error"]["code"] == "NotInCall"
    assert check(outsider.join(room), 403).json()["error"]["code"] == "NotInvited"
    assert check(chat_only.join(room), 403).json()["error"]["code"] == "InsufficientScope"
    unsigned = requests.post(stack.base_url + f"{base}/join", verify=stack.ca_file, timeout=30)
    assert check(unsigned, 401, request_too=False).json()["error"]["code"] == "Denied"

    dialled = check(
        presenter.request("POST", f"{base}/dialOut", {"phoneNumber": "+14255550199", "callerIdNumber": stack.caller_number}), 200
    ).json()
    assert dialled["outcome"] == "answered"  # the simulated network answers every number without a rule
    event = {"reference": f"{room}|{dialled['participant']['participantId']}", "action": "muteMic"}
    check(http.send("POST", "/pstn/events", event), 200)
    event["action"] = "startVideo"
    assert check(http.send("POST", "/pstn/events", event), 403).json()["error"]["code"] == "MissingCapability"
    check(attendee.me(room, "leave"), 200)
    call = check(presenter.call(room), 200).json()
    assert any("leftAt" in participant for participant in call["participants"])


def test_openapi_route_answer_matches(served, check):
    check(served, 200)


def test_callback_key_answers_match(stack, check):
    for path in ("/calling/.well-known/acsopenidconfiguration", "/calling/keys"):
        check(requests.get(stack.base_url + path, verify=stack.ca_file, timeout=10), 200)


def test_call_automation_answers_match(stack, rooms_client, identity_client, http, check):
    version = "api-version=2026-03-12"
    presenter, guest = new_user(stack, identity_client), new_user(stack, identity_client)
    room = rooms_client.create_room(
        pstn_dial_out_enabled=True,
        participants=roster((presenter, ParticipantRole.PRESENTER), (guest, ParticipantRole.ATTENDEE)),
    ).id
    check(presenter.join(room), 200)
    connect = {"callLocator": {"roomId": room, "kind": "roomCallLocator"}, "callbackUri": "http://127.0.0.1:9/callbacks"}
    repeatable = {"Repeatability-Request-ID": str(uuid.uuid4()),
                  "Repeatability-First-Sent": format_imf_fixdate(datetime.now(timezone.utc))}
    connection = check(http.send("POST", f"/calling/callConnections:connect?{version}", connect, repeatable), 200).json()
    base = f"/calling/callConnections/{connection['callConnectionId']}"
    check(http.send("GET", f"{base}?{version}"), 200)
    check(http.send("GET", f"{base}/participants?{version}"), 200)
    check(http.send("GET", f"{base}/participants/{requests.utils.quote(presenter.raw_id, safe='')}?{version}"), 200)
    phone = {"participantToAdd": {"rawId": "4:+14255550177", "phoneNumber": {"value": "+14255550177"}},
             "sourceCallerIdNumber": {"value": stack.caller_number}, "operationContext": "dial"}
    check(http.send("POST", f"{base}/participants:add?{version}", phone), 202)
    user = {"participantToAdd": {"rawId": guest.raw_id, "communicationUser": {"id": guest.raw_id}}}
    invitation = check(http.send("POST", f"{base}/participants:add?{version}", user), 202).json()["invitationId"]
    check(http.send("POST", f"{base}/participants:cancelAddParticipant?{version}", {"invitationId": invitation}), 202)
    me = {"rawId": presenter.raw_id, "communicationUser": {"id": presenter.raw_id}}
    check(http.send("POST", f"{base}/participants:mute?{version}", {"targetParticipants": [me]}), 200)
    assert check(http.send("POST", f"{base}/participants:add?{version}", {"participantToAdd": {"rawId": "x"}}),
                 400, request_too=False).json()["error"]["code"] == "8523"
    assert check(http.send("POST", f"/calling/callConnections:connect?{version}", {**connect, "callLocator": {"roomId": "9" * 17}}),
                 404).json()["error"]["code"] == "8522"
    check(http.send("POST", f"{base}/participants:remove?{version}", {"participantToRemove": me}), 202)
    check(http.send("DELETE", f"{base}?{version}"), 204)
    assert check(http.send("POST", f"{base}:terminate?{version}"), 404).json()["error"]["code"] == "8522"
