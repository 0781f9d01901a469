"""Shared test set-up: the repository root on sys.path, the development CA trusted process-wide, the `stack` marker and guard, the stack and storage fixtures, the check of every answer against the served OpenAPI document."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_CERT_DIR = ROOT / ".localdev" / "test-certs"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _trust_the_dev_ca() -> None:
    # aiohttp builds its default TLS context when first imported, from SSL_CERT_FILE; requests reads
    # REQUESTS_CA_BUNDLE per request. Done at import, not in pytest_configure: pytest imports the
    # conftest files and plugins of the paths it is given (tests/support/stack.py imports aiohttp
    # through localdev) before any configure hook runs.
    from localdev.certs import ensure_dev_certificate

    ca_file = str(ensure_dev_certificate(TEST_CERT_DIR).ca_cert)
    os.environ["SSL_CERT_FILE"] = ca_file
    os.environ["REQUESTS_CA_BUNDLE"] = ca_file


def dev_certificate():
    """The tests' dev certificate (the CA trusted process-wide above), for Azurite and the hosts."""
    from localdev.certs import ensure_dev_certificate

    return ensure_dev_certificate(TEST_CERT_DIR)


_trust_the_dev_ca()

# For every context's tests, imported after the CA above is trusted: the `stack` marker on tests
# that start processes and the guard failing any other that does, `stack` (Azurite plus the local
# host) and the fixtures built on it, the store contract tests' storage, and the check of every answer
# the app gives against its served OpenAPI document (`answers`).
pytest_plugins = ("tests.support.isolation", "tests.support.answers", "tests.support.stack", "tests.support.storage")
