"""Shared test set-up: the repository root on sys.path, and the development CA trusted process-wide."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_CERT_DIR = ROOT / ".localdev" / "test-certs"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_configure(config):
    # aiohttp builds its default TLS context when first imported, from SSL_CERT_FILE, so the CA
    # must be in the environment before any test module imports it; requests reads
    # REQUESTS_CA_BUNDLE per request. The SDK clients built by the tests trust the local host so.
    from localdev.certs import ensure_dev_certificate

    ca_file = str(ensure_dev_certificate(TEST_CERT_DIR).ca_cert)
    os.environ["SSL_CERT_FILE"] = ca_file
    os.environ["REQUESTS_CA_BUNDLE"] = ca_file
