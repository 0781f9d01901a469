"""A local certificate authority and a 127.0.0.1/::1/localhost server certificate for HTTPS in development."""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .files import write_atomically

CA_CERT_FILE = "localdev-ca.pem"
CA_KEY_FILE = "localdev-ca-key.pem"
SERVER_CERT_FILE = "localdev-server.pem"
SERVER_KEY_FILE = "localdev-server-key.pem"

SERVER_DNS_NAMES = ("localhost",)
SERVER_IP_ADDRESSES = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))

CA_LIFETIME = datetime.timedelta(days=3650)
# Short enough for clients that cap leaf lifetimes (398 days).
SERVER_LIFETIME = datetime.timedelta(days=365)
# Reissue before expiry so a long-running dev session does not hit it.
RENEW_BEFORE = datetime.timedelta(days=14)


@dataclass(frozen=True)
class DevCertificate:
    """Paths of the generated files; trust `ca_cert` in clients."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def ensure_dev_certificate(directory: str | os.PathLike[str]) -> DevCertificate:
    """Create (or reuse, when still valid) the dev CA and server certificate in `directory`."""
    folder = Path(directory).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    paths = DevCertificate(folder / CA_CERT_FILE, folder / CA_KEY_FILE,
                           folder / SERVER_CERT_FILE, folder / SERVER_KEY_FILE)
    # Several hosts may start at once on one directory: serialise so none sees
    # a half-written set of files.
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        now = datetime.datetime.now(datetime.timezone.utc)
        ca = _load_valid_ca(paths, now)
        if ca is None:
            ca = _issue_ca(now)
            _write_pair(paths.ca_cert, paths.ca_key, *ca)
        if not _server_certificate_valid(paths, ca[0], now):
            _write_pair(paths.server_cert, paths.server_key, *_issue_server_certificate(ca, now))
        for key_path in (paths.ca_key, paths.server_key):
            os.chmod(key_path, 0o600)  # also tightens files that were reused
    return paths


def requests_ca_bundle(certificate: DevCertificate) -> Path:
    """A CA bundle for requests-based clients: the one already configured (else the public CAs) plus the dev CA.

    REQUESTS_CA_BUNDLE replaces requests' CA list, so pointing it at the dev CA alone would make
    every public endpoint untrusted. Written next to the CA; returns its path.
    """
    import certifi

    configured = Path(os.environ.get("REQUESTS_CA_BUNDLE") or certifi.where())
    base = configured.read_bytes() if configured.is_file() else Path(certifi.where()).read_bytes()
    ours = certificate.ca_cert.read_bytes()
    bundle = certificate.ca_cert.parent / "requests-ca-bundle.pem"
    write_atomically(bundle, base if ours in base else base + b"\n" + ours, 0o644)
    return bundle


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: fast to generate and to handshake, accepted by every TLS client here.
    return ec.generate_private_key(ec.SECP256R1())


def _issue_ca(now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Anteroom localdev"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"Anteroom localdev CA {now:%Y-%m-%d %H:%M:%S}"),
    ])
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def _issue_server_certificate(
        ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
        now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_certificate, ca_key = ca
    key = _new_key()
    public_key = key.public_key()
    alternative_names = [x509.DNSName(n) for n in SERVER_DNS_NAMES] + \
        [x509.IPAddress(a) for a in SERVER_IP_ADDRESSES]
    ca_key_id = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + SERVER_LIFETIME, ca_certificate.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=False, crl_sign=False, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return certificate, key


def _load_pair(cert_path: Path, key_path: Path):  # type: ignore[no-untyped-def]
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if certificate.public_key().public_numbers() != key.public_key().public_numbers():
        return None
    return certificate, key


def _still_valid(certificate: x509.Certificate, now: datetime.datetime) -> bool:
    return certificate.not_valid_before_utc <= now and \
        certificate.not_valid_after_utc - RENEW_BEFORE > now


def _load_valid_ca(paths: DevCertificate, now: datetime.datetime):  # type: ignore[no-untyped-def]
    pair = _load_pair(paths.ca_cert, paths.ca_key)
    if pair is None or not _still_valid(pair[0], now):
        return None
    return pair


def _server_certificate_valid(paths: DevCertificate, ca_certificate: x509.Certificate,
                              now: datetime.datetime) -> bool:
    pair = _load_pair(paths.server_cert, paths.server_key)
    if pair is None or not _still_valid(pair[0], now):
        return False
    certificate = pair[0]
    try:
        certificate.verify_directly_issued_by(ca_certificate)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    return set(names.get_values_for_type(x509.DNSName)) >= set(SERVER_DNS_NAMES) and \
        set(names.get_values_for_type(x509.IPAddress)) >= set(SERVER_IP_ADDRESSES)


def _write_pair(cert_path: Path, key_path: Path, certificate: x509.Certificate,
                key: ec.EllipticCurvePrivateKey) -> None:
    key_bytes = key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    write_atomically(key_path, key_bytes, 0o600)
    write_atomically(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
