"""The OpenAPI document is built from the code's own definitions: what the code makes matches what it documents."""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

from openapi_spec_validator import validate

from functions.openapi import build_document
from shared.automation.service import call_connection_id
from shared.calls.model import new_server_call_id
from shared.core.timefmt import format_acs, format_imf_fixdate
from shared.identity.memory import MemoryUsersStore
from shared.identity.service import IdentityService
from shared.logs.operations import new_correlation_id
from shared.rooms.model import new_room_id
from shared.storage.memory import MemoryTable

DOCUMENT = build_document()
SCHEMAS, HEADERS = DOCUMENT["components"]["schemas"], DOCUMENT["components"]["headers"]
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def _matches(pattern: str, value: str) -> bool:
    return re.search(pattern, value) is not None  # JSON Schema patterns search; ours are anchored


def test_ids_and_times_the_code_makes_match_their_documented_patterns():
    assert _matches(SCHEMAS["RoomModel"]["properties"]["id"]["pattern"], new_room_id(T0))
    assert _matches(SCHEMAS["RoomCall"]["properties"]["serverCallId"]["pattern"], new_server_call_id())
    assert _matches(SCHEMAS["RoomCall"]["properties"]["correlationId"]["pattern"], str(uuid.uuid4()))
    assert _matches(HEADERS["MS-CV"]["schema"]["pattern"], new_correlation_id())
    for moment in (T0, T0 + timedelta(microseconds=120), T0 + timedelta(microseconds=999_999)):
        assert _matches(SCHEMAS["AcsDateTime"]["pattern"], format_acs(moment))
    identity = IdentityService(MemoryUsersStore(MemoryTable()), str(uuid.uuid4()), b"k" * 32, lambda: T0)
    assert _matches(SCHEMAS["CommunicationIdentity"]["properties"]["id"]["pattern"], identity.create_user())


def test_path_and_header_patterns_accept_what_the_code_makes():
    paths = DOCUMENT["paths"]
    connection = next(p for p in paths["/calling/callConnections/{callConnectionId}"]["get"]["parameters"]
                      if p["name"] == "callConnectionId")
    assert _matches(connection["schema"]["pattern"], call_connection_id(new_room_id(T0), str(uuid.uuid4())))
    first_sent = next(p for p in paths["/rooms"]["post"]["parameters"] if p["name"] == "Repeatability-First-Sent")
    assert _matches(first_sent["schema"]["pattern"], format_imf_fixdate(T0))



def test_the_built_document_is_valid_openapi():
    validate(DOCUMENT)
