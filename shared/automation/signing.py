"""Signed callback tokens: the RS256 JWT ACS puts in each Call Automation callback's Authorization header."""
from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..config.settings import ACS_CALLBACK_ISSUER
from ..core.clock import Clock

# ACS's values (docs: "Secure webhook endpoint" for Call Automation).
TOKEN_LIFETIME = timedelta(minutes=5)
ALGORITHM = "RS256"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def _compact_json(value: dict) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


class CallbackSigner:
    """Issues one short-lived token per callback request and publishes the key that verifies it.

    Receivers check the signature against `jwks()` (served at /calling/keys), the issuer, and the
    audience, which is the resource id as in ACS. Every instance signs with the same configured key,
    so a receiver's cached key set stays valid whichever instance sends.
    """

    def __init__(self, key: rsa.RSAPrivateKey, audience: str, clock: Clock,
                 issuer: str = ACS_CALLBACK_ISSUER) -> None:
        self._key = key
        self.audience = audience
        self.issuer = issuer
        self._clock = clock
        numbers = key.public_key().public_numbers()
        self._public_jwk = {"kty": "RSA", "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}
        # RFC 7638 thumbprint: stable for the key, so rotating the key changes the kid.
        self.key_id = _b64url(hashlib.sha256(_compact_json(self._public_jwk)).digest())

    def token(self) -> str:
        now = self._clock()
        issued = int(now.timestamp())
        header = {"alg": ALGORITHM, "typ": "JWT", "kid": self.key_id}
        claims = {
            "iss": self.issuer, "aud": self.audience, "iat": issued, "nbf": issued,
            "exp": issued + int(TOKEN_LIFETIME.total_seconds()),
            # Unique per request, so a receiver can refuse a replayed one within its lifetime.
            "jti": uuid.uuid4().hex,
        }
        signing_input = f"{_b64url(_compact_json(header))}.{_b64url(_compact_json(claims))}".encode("ascii")
        signature = self._key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode('ascii')}.{_b64url(signature)}"

    def jwks(self) -> dict:
        """The JSON Web Key Set with the one verification key."""
        return {"keys": [{**self._public_jwk, "use": "sig", "alg": ALGORITHM, "kid": self.key_id}]}

    def openid_configuration(self, jwks_uri: str) -> dict:
        """The discovery document ACS serves at /calling/.well-known/acsopenidconfiguration."""
        return {
            "issuer": self.issuer,
            "jwks_uri": jwks_uri,
            "id_token_signing_alg_values_supported": [ALGORITHM],
        }
