"""ACS HMAC-SHA256 request authentication: signing (for our own clients and tests) and verification."""
from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Mapping
from urllib.parse import unquote, urlsplit

from ..core.errors import Denied
from ..core.timefmt import parse_imf_fixdate

SIGNED_HEADERS = "x-ms-date;host;x-ms-content-sha256"
SCHEME = "HMAC-SHA256"


def content_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def string_to_sign(method: str, path_and_query: str, date: str, host: str, body_hash: str) -> str:
    return f"{method.upper()}\n{path_and_query}\n{date};{host};{body_hash}"


def signature(key: bytes, message: str) -> str:
    return base64.b64encode(hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()).decode()


def sign_headers(key: bytes, method: str, url: str, body: bytes, date: str) -> dict[str, str]:
    """Headers an ACS client sends for this request (used by our tests and tools)."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    body_hash = content_hash(body)
    sig = signature(key, string_to_sign(method, target, date, parts.netloc, body_hash))
    return {
        "x-ms-date": date,
        "x-ms-content-sha256": body_hash,
        "Authorization": f"{SCHEME} SignedHeaders={SIGNED_HEADERS}&Signature={sig}",
    }


@dataclass(frozen=True)
class HmacVerifier:
    """Verifies ACS HMAC-SHA256 requests against any of the resource's access keys.

    Either form of the signed path is accepted, as sent or percent-decoded, because the Rooms SDK
    signs the decoded path and the Identity SDK the encoded one. The signed host must be one of
    `hosts`, this service's own names (lower case, with the port where clients use one): a request
    signed for another service is refused whatever `Host` header it arrives with.
    """

    keys: tuple[bytes, ...]
    clock_skew: timedelta
    hosts: tuple[str, ...]

    def verify(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> int:
        """Raise Denied unless the request carries a valid signature.

        Returns the index of the key that signed it (0 primary, 1 secondary), which names the
        caller for throttling. `headers` must look up case-insensitively. Checks, in order: the
        Authorization shape, the body hash, the date skew, then the signature; none of them leaks
        which key was tried.
        """
        authorization = headers.get("authorization") or ""
        scheme, _, params = authorization.partition(" ")
        if scheme != SCHEME:
            raise Denied("Denied by the resource provider.")
        fields = dict(part.partition("=")[::2] for part in params.split("&"))
        if fields.get("SignedHeaders", "").lower() != SIGNED_HEADERS or not fields.get("Signature"):
            raise Denied("Denied by the resource provider.")
        claimed_hash = headers.get("x-ms-content-sha256") or ""
        if not hmac.compare_digest(claimed_hash.encode(), content_hash(body).encode()):
            raise Denied("Request 'x-ms-content-sha256' differs from generated content hash.")
        date = headers.get("x-ms-date") or ""
        try:
            sent_at = parse_imf_fixdate(date)
        except ValueError:
            raise Denied("Request 'x-ms-date' header is missing or is not a valid RFC 1123 date.") from None
        if abs(now - sent_at) > self.clock_skew:
            raise Denied("Request 'x-ms-date' is outside the allowed clock skew.")
        parts = urlsplit(url)
        raw_target = parts.path + (f"?{parts.query}" if parts.query else "")
        targets = {raw_target, unquote(raw_target)}
        given = fields["Signature"].encode()
        matched_key = -1
        for index, key in enumerate(self.keys):
            for target in targets:
                for host in self.hosts:
                    expected = signature(key, string_to_sign(method, target, date, host, claimed_hash))
                    # Every combination is compared so timing does not tell which one matched.
                    if hmac.compare_digest(expected.encode(), given):
                        matched_key = index
        if matched_key < 0:
            raise Denied("Denied by the resource provider.")
        return matched_key
