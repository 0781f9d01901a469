"""Signed callback tokens: the RS256 JWT ACS puts in each Call Automation callback's Authorization header."""
from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from jwt.utils import base64url_encode

from ..config.settings import ACS_CALLBACK_ISSUER
from ..core.clock import Clock

# ACS's values (docs: "Secure webhook endpoint" for Call Automation).
TOKEN_LIFETIME = timedelta(minutes=5)
ALGORITHM = "RS256"
# RFC 7638: the members of an RSA key that its thumbprint covers, in lexical order.
THUMBPRINT_MEMBERS = ("e", "kty", "n")


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
        public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        # RFC 7638 thumbprint: stable for the key, so rotating the key changes the kid.
        canonical = json.dumps({name: public[name] for name in THUMBPRINT_MEMBERS}, separators=(",", ":"))
        self.key_id = base64url_encode(hashlib.sha256(canonical.encode()).digest()).decode()
        # PyJWT's `key_ops` is left out: RFC 7517 advises against it alongside `use`.
        self._jwk = {"kty": public["kty"], "n": public["n"], "e": public["e"],
                     "use": "sig", "alg": ALGORITHM, "kid": self.key_id}

    def token(self) -> str:
        issued = int(self._clock().timestamp())
        claims = {
            "aud": self.audience, "exp": issued + int(TOKEN_LIFETIME.total_seconds()), "iat": issued,
            "iss": self.issuer,
            # Unique per request, so a receiver can refuse a replayed one within its lifetime.
            "jti": uuid.uuid4().hex,
            "nbf": issued,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.key_id})

    def jwks(self) -> dict:
        """The JSON Web Key Set with the one verification key."""
        return {"keys": [dict(self._jwk)]}

    def openid_configuration(self, jwks_uri: str) -> dict:
        """The discovery document ACS serves at /calling/.well-known/acsopenidconfiguration."""
        return {
            "issuer": self.issuer,
            "jwks_uri": jwks_uri,
            "id_token_signing_alg_values_supported": [ALGORITHM],
        }
