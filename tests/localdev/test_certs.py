"""The dev CA and server certificate: contents, permissions, reuse and renewal."""

import datetime as dt
import ipaddress
import stat

from cryptography import x509

from localdev.certs import ensure_dev_certificate


def load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_server_certificate_is_signed_by_the_ca_for_loopback_names(tmp_path):
    paths = ensure_dev_certificate(tmp_path)
    ca, server = load(paths.ca_cert), load(paths.server_cert)
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    assert server.not_valid_after_utc > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=300)


def test_key_files_are_private(tmp_path):
    paths = ensure_dev_certificate(tmp_path)
    for key in (paths.ca_key, paths.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_valid_files_are_reused(tmp_path):
    first = ensure_dev_certificate(tmp_path)
    before = {p: p.read_bytes() for p in (first.ca_cert, first.ca_key,
                                           first.server_cert, first.server_key)}
    second = ensure_dev_certificate(tmp_path)
    assert second == first
    assert all(path.read_bytes() == content for path, content in before.items())


def test_a_broken_server_certificate_is_reissued_under_the_same_ca(tmp_path):
    first = ensure_dev_certificate(tmp_path)
    ca_before = first.ca_cert.read_bytes()
    first.server_key.write_text("not a key")
    second = ensure_dev_certificate(tmp_path)
    assert second.ca_cert.read_bytes() == ca_before
    load(second.server_cert).verify_directly_issued_by(load(second.ca_cert))


def test_a_missing_ca_key_means_a_new_ca_and_server_certificate(tmp_path):
    first = ensure_dev_certificate(tmp_path)
    old_ca = first.ca_cert.read_bytes()
    first.ca_key.unlink()
    second = ensure_dev_certificate(tmp_path)
    assert second.ca_cert.read_bytes() != old_ca
    load(second.server_cert).verify_directly_issued_by(load(second.ca_cert))
