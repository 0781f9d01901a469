"""A local stand-in for Microsoft Entra ID: tokens for Azurite's OAuth mode and the local Event Grid
topic, a token credential, and the App Service managed identity endpoint DefaultAzureCredential calls.

Local only. The tokens are HS256 JWTs signed with `LOCAL_TOKEN_SECRET` (or a secret of the caller's
choice): Azurite's basic OAuth checks their issuer, audience and lifetime but not the signature; the
local topic checks all four.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from azure.core.credentials import AccessToken

from .azurite import LOOPBACK

# The documented localdev secret the local issuer signs with and the local topic checks. Public on
# purpose: it protects nothing but a developer's own machine.
LOCAL_TOKEN_SECRET = b"anteroom-localdev-entra-token-signing-secret"
LOCAL_TENANT_ID = "00000000-0000-0000-0000-00000000e17a"
# Azurite accepts only issuers of Entra's token services (sts.windows.net and its national clouds).
LOCAL_ISSUER = f"https://sts.windows.net/{LOCAL_TENANT_ID}/"
TOKEN_LIFETIME_SECONDS = 3600
ALGORITHM = "HS256"
# The resource (token audience) of each service the app reaches with a token.
STORAGE_RESOURCE = "https://storage.azure.com"
EVENTGRID_RESOURCE = "https://eventgrid.azure.net"
MANAGED_IDENTITY_PATH = "/msi/token"
# The App Service identity protocol's version, the one azure-identity sends.
MANAGED_IDENTITY_API_VERSION = "2019-08-01"


def resource_of(scope: str) -> str:
    """`https://storage.azure.com/.default` -> `https://storage.azure.com` (the token's audience)."""
    return scope.removesuffix("/.default").rstrip("/")


def issue_token(audience: str, client_id: str, *, secret: bytes = LOCAL_TOKEN_SECRET,
                lifetime: int = TOKEN_LIFETIME_SECONDS, now: float | None = None,
                issuer: str = LOCAL_ISSUER) -> tuple[str, int]:
    """A signed JWT for `audience` naming `client_id` as the signed-in application; and its expiry."""
    issued = int(time.time() if now is None else now)
    expires = issued + lifetime
    claims = {
        "aud": audience, "iss": issuer, "iat": issued, "nbf": issued, "exp": expires,
        "appid": client_id, "oid": client_id, "sub": client_id, "tid": LOCAL_TENANT_ID, "ver": "1.0",
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM), expires


def verify_token(token: str, audience: str, *, secret: bytes = LOCAL_TOKEN_SECRET) -> dict[str, Any]:
    """The claims of a token this module issued for `audience`. Raises jwt.InvalidTokenError (a
    bad signature, another audience or issuer, expired, not yet valid, malformed)."""
    return jwt.decode(token, secret, algorithms=[ALGORITHM], audience=audience, issuer=LOCAL_ISSUER,
                      options={"require": ["aud", "iss", "exp", "nbf", "iat"]})


class LocalTokenCredential:
    """An azure-core TokenCredential handing out local tokens, for tools and tests that inject one."""

    def __init__(self, client_id: str | None = None, *, secret: bytes = LOCAL_TOKEN_SECRET) -> None:
        self.client_id = client_id or str(uuid.uuid4())
        self._secret = secret

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        token, expires = issue_token(resource_of(scopes[0]), self.client_id, secret=self._secret)
        return AccessToken(token, expires)

    def close(self) -> None:
        pass


@dataclass
class ManagedIdentityEndpoint:
    """The App Service managed identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER) on 127.0.0.1.

    azure-identity's ManagedIdentityCredential (and so DefaultAzureCredential) asks it for tokens as
    it asks Azure's in an App Service or Functions app. Only the user-assigned identity `client_id`
    exists: a request naming another client id is refused as Azure refuses it, and so is every
    request while `refusing` is set (an identity that cannot get a token).
    """

    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    secret: bytes = LOCAL_TOKEN_SECRET
    header: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    refusing: bool = False
    issued: list[str] = field(default_factory=list)  # the resource of each token handed out
    refused: list[str | None] = field(default_factory=list)  # the client id of each refused request
    _server: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the managed identity endpoint is not running")
        return f"http://{LOOPBACK}:{self._server.server_address[1]}{MANAGED_IDENTITY_PATH}"

    def environment(self) -> dict[str, str]:
        """What Azure sets in a Functions app with this user-assigned identity (AZURE_CLIENT_ID is the app's setting)."""
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": self.header, "AZURE_CLIENT_ID": self.client_id}

    def answer(self, path: str, header: str | None) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for one GET of `path` (with its query)."""
        parts = urlsplit(path)
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        if parts.path != MANAGED_IDENTITY_PATH:
            return 404, {"statusCode": 404, "message": "Not found."}
        if header is None or not secrets.compare_digest(header, self.header):
            return 401, {"statusCode": 401, "message": "The X-IDENTITY-HEADER header is missing or wrong."}
        if query.get("api-version") != MANAGED_IDENTITY_API_VERSION or not query.get("resource"):
            return 400, {"statusCode": 400, "message": "api-version 2019-08-01 and resource are required."}
        asked_for = query.get("client_id")
        if self.refusing or (asked_for is not None and asked_for != self.client_id):
            self.refused.append(asked_for)
            return 400, {"statusCode": 400, "message": "No User Assigned or Delegated Managed Identity found "
                                                       "for specified ClientId/ResourceId/PrincipalId."}
        resource = resource_of(query["resource"])
        token, expires = issue_token(resource, self.client_id, secret=self.secret)
        self.issued.append(resource)
        return 200, {"access_token": token, "expires_on": str(expires), "resource": resource,
                     "token_type": "Bearer", "client_id": self.client_id}

    def start(self) -> "ManagedIdentityEndpoint":
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                status, body = endpoint.answer(self.path, self.headers.get("X-IDENTITY-HEADER"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # request lines carry no secret, but tests need no access log

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="managed-identity", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> "ManagedIdentityEndpoint":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
