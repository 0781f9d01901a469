"""HMAC-SHA256 signing and verification against ACS's published test vectors."""
import base64
from datetime import datetime, timedelta, timezone

import pytest

from functions.errors import ROOMS_ERRORS
from shared.core.errors import Denied
from shared.config.settings import Settings, SettingsError
from shared.auth.hmac import HmacVerifier, content_hash, sign_headers, signature, string_to_sign

KEY = base64.b64decode("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
DATE = "Tue, 24 Nov 2026 12:34:06 GMT"
NOW = datetime(2026, 11, 24, 12, 34, 6, tzinfo=timezone.utc)


class Headers(dict):
    """Case-insensitive lookups like func.HttpRequest's headers."""

    def __init__(self, values):
        super().__init__({key.lower(): value for key, value in values.items()})

    def get(self, key, default=None):
        return super().get(key.lower(), default)


@pytest.mark.parametrize(
    "key, message, expected",
    [
        ("pw==", "banana", "88EC05aAS9iXnaimtNO78JLjiPtfWryQB/5QYEzEsu8="),
        ("pw==", "😀", "1rudJKjn2Zi+3hRrBG29wIF6pD6YyAeQR1ZcFtXoKAU="),
    ],
)
def test_sdk_vectors(key, message, expected):
    assert signature(base64.b64decode(key), message) == expected


def test_rooms_request_vector():
    body = b'{"participants": {"8:acs:abc_123": null}}'
    assert content_hash(body) == "7IMiyQHKn8quvBUxHmVKT9dbHNfJZurZ5mlOUqoNv2A="
    message = string_to_sign(
        "PATCH", "/rooms/99199690362660524/participants?api-version=2025-03-13", DATE, "127.0.0.1:8765", content_hash(body)
    )
    assert signature(KEY, message) == "mxrPlJfQv2XxvnmqY7MYKwdCgAiQsLsbKLPn0rfu4cI="


def test_identity_encoded_path_vector():
    body = b'{"scopes": ["voip"]}'
    path = "/identities/8%3Aacs%3Ares_abc/:issueAccessToken?api-version=2023-10-01"
    message = string_to_sign("POST", path, DATE, "contoso.communication.azure.com", content_hash(body))
    assert signature(KEY, message) == "+y/+XdyUk0dS26bWvg7TTauavXNHEZzF6Vs729YM9Gw="


def verifier(*keys):
    return HmacVerifier(keys=keys or (KEY,), clock_skew=timedelta(minutes=15), hosts=("127.0.0.1:8765", "h"))


def signed(method="PATCH", url="https://127.0.0.1:8765/rooms/1?api-version=2025-03-13", body=b"{}", key=KEY, date=DATE):
    headers = sign_headers(key, method, url, body, date)
    headers["Host"] = url.split("/")[2]
    return method, url, Headers(headers), body


def test_valid_request_passes_with_either_key():
    other = b"x" * 32
    verifier(other, KEY).verify(*signed(), NOW)
    verifier(KEY, other).verify(*signed(key=other), NOW)


def test_decoded_and_encoded_paths_are_both_accepted():
    url = "https://h/identities/8%3Aacs%3Ax/:issueAccessToken?api-version=2023-10-01"
    method, _, headers, body = signed("POST", url)
    verifier().verify(method, url, headers, body, NOW)
    # The Rooms SDK signs the decoded path while sending the encoded one.
    decoded = sign_headers(KEY, "POST", "https://h/identities/8:acs:x/:issueAccessToken?api-version=2023-10-01", body, DATE)
    verifier().verify("POST", url, Headers({**decoded, "Host": "h"}), body, NOW)


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda m, u, h, b: (m, u, h, b + b" "), "differs from generated content hash"),
        (lambda m, u, h, b: ("DELETE", u, h, b), "Denied by the resource provider"),
        (lambda m, u, h, b: (m, u.replace("/rooms/1", "/rooms/2"), h, b), "Denied by the resource provider"),
        (lambda m, u, h, b: (m, u, Headers({**h, "authorization": "Bearer x"}), b), "Denied by the resource provider"),
        (lambda m, u, h, b: (m, u, Headers({**h, "x-ms-date": "yesterday"}), b), "x-ms-date"),
    ],
)
def test_tampered_requests_are_refused(tamper, message):
    with pytest.raises(Denied) as caught:
        verifier().verify(*tamper(*signed()), NOW)
    answer = ROOMS_ERRORS.http_error(caught.value)
    assert answer.status == 401 and answer.code == "Denied"
    assert message in answer.message


def test_only_this_services_host_names_are_accepted():
    signed_elsewhere = sign_headers(KEY, "GET", "https://other.example/rooms/1?api-version=2025-03-13", b"", DATE)
    for sent_host in ("other.example", "127.0.0.1:8765"):
        with pytest.raises(Denied) as caught:
            verifier().verify("GET", "https://127.0.0.1:8765/rooms/1?api-version=2025-03-13",
                              Headers({**signed_elsewhere, "Host": sent_host}), b"", NOW)
        answer = ROOMS_ERRORS.http_error(caught.value)
        assert answer.status == 401 and answer.code == "Denied"
    # A public name in front of the service (a custom domain behind a proxy) is one of its own.
    behind_proxy = HmacVerifier(keys=(KEY,), clock_skew=timedelta(minutes=15), hosts=("h", "rooms.contoso.com"))
    public = sign_headers(KEY, "GET", "https://rooms.contoso.com/rooms/1?api-version=2025-03-13", b"", DATE)
    behind_proxy.verify("GET", "https://h/rooms/1?api-version=2025-03-13", Headers({**public, "Host": "h"}), b"", NOW)


def test_settings_name_the_service_hosts():
    base = {"ANTEROOM_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true", "ANTEROOM_ACCESS_KEY": "a" * 24,
            "ANTEROOM_RESOURCE_ID": "6b2f3c1e-1d2a-4f55-9a0e-0f8a3c1d2b4e", "ANTEROOM_TOKEN_SIGNING_KEY": "b" * 24}
    with pytest.raises(SettingsError, match="WEBSITE_HOSTNAME"):
        Settings.from_env(base)
    hosts = Settings.from_env({**base, "WEBSITE_HOSTNAME": "App.AzureWebsites.net",
                               "ANTEROOM_PUBLIC_HOSTS": "rooms.contoso.com, app.azurewebsites.net"}).service_hosts
    assert hosts == ("app.azurewebsites.net", "rooms.contoso.com")
    assert Settings.from_env(base, served_at="https://127.0.0.1:7071").service_hosts == ("127.0.0.1:7071",)


def test_clock_skew_is_enforced():
    with pytest.raises(Denied) as caught:
        verifier().verify(*signed(), NOW + timedelta(minutes=16))
    assert "clock skew" in caught.value.message
    verifier().verify(*signed(), NOW + timedelta(minutes=14))


def test_wrong_key_is_refused():
    with pytest.raises(Denied):
        verifier().verify(*signed(key=b"y" * 32), NOW)
