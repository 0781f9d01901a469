"""Callback tokens: RS256 JWTs with ACS's issuer, the resource id as audience and a five-minute life."""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone

import jwt
import pytest
from jwt.algorithms import RSAAlgorithm

from shared.automation.signing import CallbackSigner
from shared.config.settings import ACS_CALLBACK_ISSUER, Settings, SettingsError
from shared.core.keys import load_signing_key, new_signing_key_pem

AUDIENCE = "0f2d0b8e-5a43-4c4e-9d59-3f3c2b1c8d11"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def pem() -> bytes:
    return new_signing_key_pem()


def test_token_verifies_with_the_published_key(pem):
    signer = CallbackSigner(load_signing_key(pem), AUDIENCE, lambda: NOW)
    token = signer.token()
    (published,) = signer.jwks()["keys"]
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT", "kid": published["kid"]}
    claims = jwt.decode(token, key=jwt.PyJWK(published), algorithms=["RS256"], audience=AUDIENCE,
                        issuer=ACS_CALLBACK_ISSUER, options={"verify_exp": False, "verify_iat": False,
                                                             "verify_nbf": False})
    assert claims["iat"] == claims["nbf"] == int(NOW.timestamp())
    assert claims["exp"] == claims["iat"] + 300
    assert signer.token() != token  # jti differs


def test_a_token_older_than_five_minutes_is_refused(pem):
    signer = CallbackSigner(load_signing_key(pem), AUDIENCE, lambda: NOW)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(signer.token(), key=jwt.PyJWK(signer.jwks()["keys"][0]), algorithms=["RS256"], audience=AUDIENCE)


def test_key_id_is_the_rfc7638_thumbprint(pem):
    signer = CallbackSigner(load_signing_key(pem), AUDIENCE, lambda: NOW)
    # The public key as PyJWT writes it, hashed over its required members in lexical order.
    public = json.loads(RSAAlgorithm.to_jwk(load_signing_key(pem).public_key()))
    canonical = json.dumps({k: public[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    assert signer.key_id == expected


def _env(**extra: str) -> dict:
    key = base64.b64encode(b"k" * 32).decode()
    return {"ANTEROOM_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true", "ANTEROOM_ACCESS_KEY": key,
            "ANTEROOM_RESOURCE_ID": AUDIENCE, "ANTEROOM_TOKEN_SIGNING_KEY": key,
            "WEBSITE_HOSTNAME": "rooms.example", **extra}


def test_settings_take_pem_or_base64_pem_and_refuse_anything_else(pem):
    assert Settings.from_env(_env()).callback_signing_key is None
    assert Settings.from_env(_env(ANTEROOM_CALLBACK_SIGNING_KEY=pem.decode())).callback_signing_key == pem.strip()
    one_line = base64.b64encode(pem).decode()
    assert Settings.from_env(_env(ANTEROOM_CALLBACK_SIGNING_KEY=one_line)).callback_signing_key == pem
    for bad in ("not base64!", base64.b64encode(b"-----BEGIN PRIVATE KEY-----\nxx\n").decode()):
        with pytest.raises(SettingsError, match="ANTEROOM_CALLBACK_SIGNING_KEY"):
            Settings.from_env(_env(ANTEROOM_CALLBACK_SIGNING_KEY=bad))
