"""RSA private keys in PEM: loading a configured one and generating one for local settings."""
from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def load_signing_key(pem: bytes) -> rsa.RSAPrivateKey:
    """The RSA private key of a PEM (PKCS#8 or PKCS#1, unencrypted). Raises ValueError otherwise."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (TypeError, ValueError) as error:
        raise ValueError(f"not an unencrypted PEM private key ({error})") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise ValueError("must be an RSA key of at least 2048 bits (RS256)")
    return key


def new_signing_key_pem() -> bytes:
    """A fresh 2048-bit RSA key as PKCS#8 PEM, for generated local settings."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
