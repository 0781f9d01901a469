"""Property-based fuzzing with schemathesis, against our /openapi.json and Microsoft's Rooms OpenAPI file, every request signed.

What every generated request must get: no 5xx, a response matching the schema (status, headers,
content type, body), and for every refusal (4xx) an ACS error body `{"error": {"code", "message"}}`.
ANTEROOM_FUZZ_EXAMPLES sets the examples per operation (small by default so the suite stays fast).
"""
from __future__ import annotations

import base64
import copy
import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.failures import Failure
from schemathesis.specs.openapi import checks
from schemathesis.transport.prepare import get_exclude_headers

from functions.openapi import build_document
from shared.auth.hmac import sign_headers
from shared.core.timefmt import format_imf_fixdate

pytestmark = pytest.mark.stack

MAX_EXAMPLES = int(os.environ.get("ANTEROOM_FUZZ_EXAMPLES", "15"))
SPECS = Path(__file__).resolve().parent / "specs"  # vendored: CI runs on a clean clone
OFFICIAL_ROOMS_SPEC = SPECS / "acs-rooms-2025-03-13.communicationservicesrooms.json"
OFFICIAL_COMMON_SPEC = SPECS / "acs-common-2023-11-15.common.json"
COMMON_REF = "../../../Common/stable/2023-11-15/common.json#/definitions/"
# Our own webhook sink for replays: the fuzzer must never make the app call out to a generated URL.
LOOPBACK_SINK = "http://127.0.0.1:9/events"


class AcsAuth(requests.auth.AuthBase):
    """Signs the request exactly as sent (final URL and body) with ACS HMAC; room-call routes get a user token."""

    def __init__(self, key: bytes, user_token: str) -> None:
        self.key = key
        self.user_token = user_token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if "Authorization" in request.headers:
            return request  # the fuzzer chose this Authorization on purpose (a generated or invalid one)
        if urlsplit(request.url).path.startswith("/roomCalls/"):
            request.headers["Authorization"] = f"Bearer {self.user_token}"
            return request
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        date = format_imf_fixdate(datetime.now(timezone.utc))
        request.headers.update(sign_headers(self.key, request.method, request.url, body, date))
        return request


@schemathesis.check
def refusals_carry_an_acs_error_body(ctx, response, case):
    """Every 4xx answers `{"error": {"code": <non-empty string>, "message": <non-empty string>}}`."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        error = json.loads(response.content)["error"]
        valid = all(isinstance(error.get(name), str) and error[name] for name in ("code", "message"))
    except (ValueError, KeyError, TypeError, AttributeError):
        valid = False
    if not valid:
        raise Failure(
            operation=case.operation.label,
            title="Refusal without an ACS error body",
            message=f"{response.status_code} answered {response.content[:200]!r}",
        )
    return None


@pytest.fixture(scope="module")
def acs_auth(hardened):
    from azure.communication.identity import CommunicationIdentityClient

    identity = CommunicationIdentityClient.from_connection_string(hardened.connection_string)
    _, token = identity.create_user_and_token(["voip"])
    return AcsAuth(base64.b64decode(hardened.access_key), token.token)


def official_document() -> dict:
    """Microsoft's file as published, made loadable on its own; each change is named here.

    - The Common definitions it references by a relative path are inlined (same content, local refs).
    - `x-ms-parameterized-host` and `x-ms-examples` (files beside the original) are dropped, and
      `schemes` says https: we set the base URL ourselves.
    - api-version is a free string in the file; it is pinned to the file's own version so the
      examples exercise the operations instead of mostly testing the api-version check (which
      test_http_contract covers).
    """
    document = json.loads(OFFICIAL_ROOMS_SPEC.read_text())
    common = json.loads(OFFICIAL_COMMON_SPEC.read_text())["definitions"]
    document.pop("x-ms-parameterized-host")
    for name in ("CommunicationError", "CommunicationErrorResponse"):
        document["definitions"][name] = copy.deepcopy(common[name])
    text = json.dumps(document).replace(COMMON_REF, "#/definitions/")
    document = json.loads(text)
    for operations in document["paths"].values():
        for operation in operations.values():
            operation.pop("x-ms-examples", None)
    document["parameters"]["ApiVersionParameter"]["enum"] = [document["info"]["version"]]
    document["schemes"] = ["https"]
    return document


@schemathesis.hook
def map_body(ctx, body):
    # Only URLs the app would call are replaced; an invalid one stays, for the app to refuse.
    on_replay = ctx.operation is not None and ctx.operation.path == "/callEvents:replay"
    endpoint = body.get("endpoint") if on_replay and isinstance(body, dict) else None
    if isinstance(endpoint, str) and endpoint.startswith(("http://", "https://")):
        body["endpoint"] = LOOPBACK_SINK
    return body


FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
# Both documents load without a server (ours is built by the same code that serves /openapi.json,
# which test_served_document_is_the_fuzzed_one checks), so each operation is its own pytest test;
# the base URL of the running stack is given per call.
ours = schemathesis.openapi.from_dict(build_document())
official = schemathesis.openapi.from_dict(official_document())
for schema in (ours, official):
    # Deliberate: unknown query parameters are ignored, as ACS (and Azure REST APIs generally) do,
    # so requests that differ from a valid one only by extra parameters are not negative cases.
    schema.config.generation.update(allow_extra_parameters=False)


# Deliberately not run: `ignored_auth` re-sends a successful request without its credentials, but
# the signature is added below the fuzzer (it must cover the final URL and body), so that probe
# would be signed again. Authentication is attacked precisely in test_auth_attacks.py instead;
# the fuzzer's own "Authorization header missing" cases are still sent unsigned and must get 401.
EXCLUDED_CHECKS = [checks.ignored_auth]
# Deliberately not run on `/x/{id}:action` paths: `/x/0:terminate` also matches `/x/{id}` (id
# "0:terminate"), as in ASP.NET routing, so a 405's Allow truthfully names that route's methods too.
ACTION_SUFFIX = re.compile(r"\}:[A-Za-z]")


def call_and_check(case, acs_auth, stack):
    unsigned = "Authorization" in get_exclude_headers(case)
    response = case.call(
        base_url=stack.base_url, auth=None if unsigned else acs_auth, verify=stack.ca_file, timeout=30
    )
    excluded = list(EXCLUDED_CHECKS)
    if ACTION_SUFFIX.search(case.operation.path):
        excluded.append(checks.allow_header_conformance)
    case.validate_response(response, additional_checks=[refusals_carry_an_acs_error_body], excluded_checks=excluded)


def test_served_document_is_the_fuzzed_one(hardened):
    served = requests.get(f"{hardened.base_url}/openapi.json", timeout=30).json()
    assert served == build_document()


@ours.parametrize()
@FUZZ_SETTINGS
def test_our_openapi_document(case, acs_auth, hardened):
    call_and_check(case, acs_auth, hardened)


@official.parametrize()
@FUZZ_SETTINGS
def test_official_rooms_openapi_file(case, acs_auth, hardened):
    call_and_check(case, acs_auth, hardened)
