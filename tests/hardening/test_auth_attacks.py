"""Auth attacks: forged, replayed, body-, path- and host-swapped HMAC; forged, expired, revoked and foreign access tokens; no secret in logs."""
import ast
import base64
import hashlib
import hmac
import inspect
import json
import textwrap
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
from azure.communication.identity import CommunicationIdentityClient

from shared.auth.hmac import sign_headers
from shared.core.timefmt import format_imf_fixdate
from tests.support.hmac_client import HmacClient
from tests.support.refusals import assert_acs_error

pytestmark = pytest.mark.stack
ROOMS = "api-version=2025-03-13"
IDENTITY = "api-version=2023-10-01"


def now_imf(offset=timedelta()):
    return format_imf_fixdate(datetime.now(timezone.utc) + offset)


class Secrets:
    """Everything secret the tests send or receive, to look for in the host's log at the end."""

    values: set[str] = set()

    @classmethod
    def keep(cls, *values):
        cls.values.update(value for value in values if value)


@pytest.fixture(scope="module")
def http(hardened):
    Secrets.keep(
        hardened.access_key, hardened.secondary_access_key, hardened.settings["ANTEROOM_TOKEN_SIGNING_KEY"],
        hardened.settings["ANTEROOM_STORAGE_CONNECTION_STRING"].split("AccountKey=")[1].split(";")[0],
    )
    return HmacClient(hardened)


def signed(http, method, path, body=b"", *, sign_as=None, date=None, key=None):
    """Headers for (method, path, body) as an ACS client signs them; `sign_as` overrides what is signed."""
    sign_method, sign_path, sign_body, sign_host = sign_as or (method, path, body, None)
    url = (f"https://{sign_host}" if sign_host else http.base) + sign_path
    headers = sign_headers(key or http.key, sign_method, url, sign_body, now_imf() if date is None else date)
    Secrets.keep(headers["Authorization"].rpartition("Signature=")[2])
    return headers


def send(http, method, path, body=b"", headers=None):
    sent = {"Content-Type": "application/json", **(headers or {})} if body else dict(headers or {})
    return requests.request(method, http.base + path, data=body, headers=sent, verify=http.verify, timeout=30)


@pytest.fixture(scope="module")
def room(http):
    return http.send("POST", f"/rooms?{ROOMS}", {}).json()["id"]


# -- HMAC ---------------------------------------------------------------------------------------------
def test_a_correctly_signed_request_passes(http, room):
    assert send(http, "GET", f"/rooms/{room}?{ROOMS}", headers=signed(http, "GET", f"/rooms/{room}?{ROOMS}")).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=" + base64.b64encode(b"\0" * 32).decode(),
        "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=",
        "HMAC-SHA256 SignedHeaders=x-ms-date;host&Signature=abc",
        "HMAC-SHA256 Signature=abc",
        "HMAC-SHA256",
        "hmac-sha256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=abc",
        "Bearer abc",
        "Basic " + base64.b64encode(b"admin:admin").decode(),
        "SharedKey devstoreaccount1:abc",
        # Long, but under the 8 KB a header line may have (beyond it the HTTP layer answers 400 itself).
        "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=" + "A" * 6000,
        "",
    ],
)
def test_forged_authorization_headers_are_401(http, unchanged, authorization):
    headers = signed(http, "POST", f"/rooms?{ROOMS}", b"{}")
    headers["Authorization"] = authorization
    assert_acs_error(send(http, "POST", f"/rooms?{ROOMS}", b"{}", headers), 401, "Denied")


def test_signed_with_another_key_is_401(http):
    other_key = base64.b64encode(uuid.uuid4().bytes * 2).decode()
    headers = signed(http, "GET", f"/rooms?{ROOMS}", key=base64.b64decode(other_key))
    assert_acs_error(send(http, "GET", f"/rooms?{ROOMS}", headers=headers), 401, "Denied")


@pytest.mark.parametrize("skew", [timedelta(minutes=-16), timedelta(minutes=16), timedelta(days=-365)])
def test_replayed_after_the_clock_skew_is_401(http, skew):
    # A captured request replayed later still carries its original x-ms-date: outside 15 minutes it is refused.
    headers = signed(http, "GET", f"/rooms?{ROOMS}", date=now_imf(skew))
    assert_acs_error(send(http, "GET", f"/rooms?{ROOMS}", headers=headers), 401, "Denied")


def test_replay_inside_the_skew_is_accepted_like_acs(http):
    # ACS's HMAC scheme has no nonce: inside the window a replay is a valid request. Creates are made
    # safe to replay with Repeatability-Request-ID (test_http_contract); reads and deletes are idempotent.
    headers = signed(http, "GET", f"/rooms?{ROOMS}")
    assert send(http, "GET", f"/rooms?{ROOMS}", headers=headers).status_code == 200
    assert send(http, "GET", f"/rooms?{ROOMS}", headers=headers).status_code == 200


@pytest.mark.parametrize("bad_date", ["", "yesterday", "Tue, 31 Feb 2026 10:00:00 GMT", "0" * 5000])
def test_unreadable_dates_are_401(http, bad_date):
    headers = signed(http, "GET", f"/rooms?{ROOMS}", date=bad_date)
    assert_acs_error(send(http, "GET", f"/rooms?{ROOMS}", headers=headers), 401, "Denied")


def test_body_swapped_is_401_even_with_its_hash_recomputed(http, room):
    path = f"/rooms/{room}?{ROOMS}"
    headers = {**signed(http, "PATCH", path, b"{}"), "Content-Type": "application/merge-patch+json"}
    evil = b'{"pstnDialOutEnabled": true}'
    assert_acs_error(send(http, "PATCH", path, evil, headers), 401, "Denied")
    rehashed = {**headers, "x-ms-content-sha256": base64.b64encode(hashlib.sha256(evil).digest()).decode()}
    assert_acs_error(send(http, "PATCH", path, evil, rehashed), 401, "Denied")
    assert http.send("GET", path).json()["pstnDialOutEnabled"] is False


def test_path_query_method_and_host_swaps_are_401(http, room):
    other = http.send("POST", f"/rooms?{ROOMS}", {}).json()["id"]
    signed_for_get = signed(http, "GET", f"/rooms/{room}?{ROOMS}")
    assert_acs_error(send(http, "GET", f"/rooms/{other}?{ROOMS}", headers=signed_for_get), 401, "Denied")  # path
    assert_acs_error(send(http, "GET", f"/rooms/{room}?api-version=2024-04-15", headers=signed_for_get), 401, "Denied")  # query
    assert_acs_error(send(http, "DELETE", f"/rooms/{room}?{ROOMS}", headers=signed_for_get), 401, "Denied")  # method
    assert_acs_error(send(http, "GET", f"/rooms/{room}/participants?{ROOMS}", headers=signed_for_get), 401, "Denied")
    for_evil_host = signed(http, "GET", "", sign_as=("GET", f"/rooms/{room}?{ROOMS}", b"", "evil.example"))
    assert_acs_error(send(http, "GET", f"/rooms/{room}?{ROOMS}", headers=for_evil_host), 401, "Denied")  # host
    assert http.send("GET", f"/rooms/{room}?{ROOMS}").status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1", "localhost:1"])
def test_signed_for_another_host_and_sent_with_it_is_401(http, room, unchanged, host):
    """The accepted host names are the service's own, never the ones a request brings along."""
    path, create = f"/rooms/{room}?{ROOMS}", f"/rooms?{ROOMS}"
    get = {**signed(http, "GET", path, sign_as=("GET", path, b"", host)), "Host": host}
    assert_acs_error(send(http, "GET", path, headers=get), 401, "Denied")
    body = b'{"pstnDialOutEnabled": true}'
    post = {**signed(http, "POST", create, body, sign_as=("POST", create, body, host)), "Host": host}
    assert_acs_error(send(http, "POST", create, body, headers=post), 401, "Denied")


def test_signature_checks_run_in_constant_time():
    """Signatures, hashes and keys are compared with hmac.compare_digest, never with == or !=.

    Access tokens are verified by PyJWT pinned to HS256, so its HMAC verification is inspected
    with ours, and TokenSigner.check for comparing anything secret itself.
    """
    import jwt
    from jwt.algorithms import HMACAlgorithm

    from localdev.http_trigger import HttpTriggerAdapter
    from shared.auth.hmac import HmacVerifier
    from shared.identity.tokens import ALGORITHM, TokenSigner

    assert isinstance(jwt.get_algorithm_by_name(ALGORITHM), HMACAlgorithm)
    comparers = (HmacVerifier.verify, HMACAlgorithm.verify, HttpTriggerAdapter._authorized)
    for function in (*comparers, TokenSigner.check):
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        calls = {node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}
        assert ("compare_digest" if function in comparers else "decode") in calls, function.__qualname__
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
                names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
                    n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
                }
                secret_like = {
                    n for n in names
                    if not n.isupper()  # constants such as SIGNED_HEADERS are public
                    and any(part in n.lower() for part in ("sig", "expected", "hash", "key", "given"))
                }
                assert not secret_like, f"{function.__qualname__} compares {secret_like} with ==/!="


# -- access tokens on the room-call routes --------------------------------------------------------------
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(claims: dict, key: bytes, alg: str = "HS256") -> str:
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    signature = b64url(hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()) if alg == "HS256" else ""
    token = f"{header}.{payload}.{signature}"
    Secrets.keep(token, signature)
    return token


@pytest.fixture(scope="module")
def member(hardened, http, room):
    """A roster member with a valid voip token, and what a forger would copy from it."""
    identity = CommunicationIdentityClient.from_connection_string(hardened.connection_string)
    user, token = identity.create_user_and_token(["voip"])
    Secrets.keep(token.token, token.token.rpartition(".")[2])
    patch = http.send("PATCH", f"/rooms/{room}/participants?{ROOMS}", {"participants": {user.raw_id: {"role": "Presenter"}}},
                      headers={"Content-Type": "application/merge-patch+json"})
    assert patch.status_code == 200
    return identity, user, token.token


def claims_for(hardened, user_id, **changes):
    now = time.time()
    claims = {"skypeid": user_id.removeprefix("8:"), "sub": user_id, "acsScope": "voip",
              "resourceId": hardened.resource_id, "iat": now, "exp": int(now + 3600), "jti": uuid.uuid4().hex}
    return {**claims, **changes}


def join(http, room, authorization):
    return send(http, "POST", f"/roomCalls/{room}/join", headers={"Authorization": authorization})


def test_a_valid_token_joins(http, room, member):
    answer = join(http, room, f"Bearer {member[2]}")
    assert answer.status_code == 200, answer.text
    leave = send(http, "POST", f"/roomCalls/{room}/me/leave", headers={"Authorization": f"Bearer {member[2]}"})
    assert leave.status_code == 200, leave.text


def test_forged_tokens_are_401(hardened, http, room, member):
    _, user, valid = member
    signing_key = base64.b64decode(hardened.settings["ANTEROOM_TOKEN_SIGNING_KEY"])
    header, payload, signature = valid.split(".")
    someone_else = f"8:acs:{hardened.resource_id}_{uuid.uuid4()}"
    forgeries = {
        "another key": make_token(claims_for(hardened, user.raw_id), uuid.uuid4().bytes * 2),
        "alg none": make_token(claims_for(hardened, user.raw_id), b"", alg="none"),
        "payload swapped": f"{header}.{b64url(json.dumps(claims_for(hardened, someone_else)).encode())}.{signature}",
        "signature dropped": f"{header}.{payload}.",
        "signature of another token": f"{header}.{payload}.{b64url(b'x' * 32)}",
        "not a JWT": "abc",
        "empty": "",
        "long": "a." * 3000 + "b",
        "unknown user": make_token(claims_for(hardened, someone_else), signing_key),
        "claims missing": make_token({"sub": user.raw_id}, signing_key),
        "claims of the wrong types": make_token(claims_for(hardened, user.raw_id, iat="soon", exp=[1]), signing_key),
        "absurd times": make_token(claims_for(hardened, user.raw_id, iat=1e300, exp=10**30), signing_key),
    }
    for name, token in forgeries.items():
        answer = join(http, room, f"Bearer {token}")
        assert answer.status_code == 401, (name, answer.status_code, answer.text[:200])
        assert_acs_error(answer, 401, "Denied")


def test_expired_token_is_401(hardened, http, room, member):
    signing_key = base64.b64decode(hardened.settings["ANTEROOM_TOKEN_SIGNING_KEY"])
    past = time.time() - 7200
    expired = make_token(claims_for(hardened, member[1].raw_id, iat=past, exp=int(past + 3600)), signing_key)
    answer = join(http, room, f"Bearer {expired}")
    assert_acs_error(answer, 401, "Denied")
    assert "expired" in answer.json()["error"]["message"]


def test_token_for_another_resource_is_401(hardened, http, room, member):
    signing_key = base64.b64decode(hardened.settings["ANTEROOM_TOKEN_SIGNING_KEY"])
    foreign = make_token(claims_for(hardened, member[1].raw_id, resourceId=str(uuid.uuid4())), signing_key)
    answer = join(http, room, f"Bearer {foreign}")
    assert_acs_error(answer, 401, "Denied")
    assert "another resource" in answer.json()["error"]["message"]


def test_token_without_a_calling_scope_is_403(hardened, http, room, member):
    identity, user, _ = member
    chat = identity.get_token(user, ["chat"]).token
    Secrets.keep(chat)
    assert_acs_error(join(http, room, f"Bearer {chat}"), 403, "InsufficientScope")


def test_revoked_and_deleted_users_tokens_are_401(hardened, http, room):
    identity = CommunicationIdentityClient.from_connection_string(hardened.connection_string)
    user, token = identity.create_user_and_token(["voip"])
    Secrets.keep(token.token)
    added = http.send("PATCH", f"/rooms/{room}/participants?{ROOMS}", {"participants": {user.raw_id: {"role": "Attendee"}}},
                      headers={"Content-Type": "application/merge-patch+json"})
    assert added.status_code == 200, added.text
    # The token works until it is revoked, so the refusals below are the revocation's doing.
    joined = join(http, room, f"Bearer {token.token}")
    assert joined.status_code == 200, joined.text
    left = send(http, "POST", f"/roomCalls/{room}/me/leave", headers={"Authorization": f"Bearer {token.token}"})
    assert left.status_code == 200, left.text
    identity.revoke_tokens(user)
    assert_acs_error(join(http, room, f"Bearer {token.token}"), 401, "Denied")
    fresh = identity.get_token(user, ["voip"]).token
    Secrets.keep(fresh)
    identity.delete_user(user)
    assert_acs_error(join(http, room, f"Bearer {fresh}"), 401, "Denied")


def test_each_scheme_only_where_it_belongs(http, room, member):
    token = member[2]
    # A user token does not open the management API, nor an access-key signature the client API.
    assert_acs_error(send(http, "GET", f"/rooms/{room}?{ROOMS}", headers={"Authorization": f"Bearer {token}"}), 401, "Denied")
    assert_acs_error(send(http, "POST", f"/roomCalls/{room}/join", headers=signed(http, "POST", f"/roomCalls/{room}/join")), 401, "Denied")
    assert_acs_error(send(http, "POST", f"/roomCalls/{room}/join"), 401, "Denied")
    assert_acs_error(join(http, room, f"Basic {token}"), 401, "Denied")
    assert_acs_error(join(http, room, token), 401, "Denied")


# -- logs ---------------------------------------------------------------------------------------------------
def test_no_key_token_or_signature_reaches_the_log(hardened, http, room, member):
    """Runs last in this module: every secret used above, and a few leaked on purpose into odd places."""
    token = member[2]
    # Secrets where a careless log line would pick them up: a header the parser rejects, a query
    # string, an error path.
    for headers in ({"Authorization": f"Bearer {token}\x01"}, {"x-ms-client-request-id": token}):
        try:
            send(http, "POST", f"/roomCalls/{room}/join", headers=headers)
        except requests.RequestException:
            pass
    send(http, "GET", f"/rooms/{room}?{ROOMS}", headers={"Authorization": f"HMAC-SHA256 Signature={token}"})
    time.sleep(1)  # the host's log is read from its output pipe
    log = hardened.log()
    assert "POST /roomCalls/" in log and "GET /rooms/" in log  # the log really holds the traffic
    secrets = {value for value in Secrets.values if len(value) >= 16}
    assert len(secrets) >= 10
    leaked = [value[:12] + "..." for value in secrets if value in log]
    assert not leaked, f"secrets in the host log: {leaked}"
