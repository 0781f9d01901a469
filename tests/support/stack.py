"""The running stack for every context's `stack` tests: Azurite plus the local host serving the app over HTTPS (fixtures)."""
from __future__ import annotations

import base64
import logging
import os
import secrets
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from localdev.azurite import AzuriteTable
from localdev.certs import ensure_dev_certificate
from localdev.pstn import PstnSimulator
from shared.core.keys import new_signing_key_pem
from tests.conftest import TEST_CERT_DIR

from .answers import ANSWERS
from .calls import phone
from .events import TopicSubscriptions, start_topic

ROOT = Path(__file__).resolve().parents[2]
# The SDKs log every request and response at INFO; keep failures readable.
logging.getLogger("azure").setLevel(logging.WARNING)


@dataclass
class Stack:
    base_url: str
    connection_string: str
    ca_file: str
    access_key: str
    secondary_access_key: str
    resource_id: str
    env: dict
    pstn: PstnSimulator
    events: TopicSubscriptions  # the local Event Grid topic the app publishes call events to
    rooms_page_size: int = 5
    participants_page_size: int = 7
    caller_number: str = "+18005550100"

def _settings(storage: str) -> dict:
    return {
        "ANTEROOM_STORAGE_CONNECTION_STRING": storage,
        "ANTEROOM_ACCESS_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "ANTEROOM_SECONDARY_ACCESS_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "ANTEROOM_RESOURCE_ID": str(uuid.uuid4()),
        "ANTEROOM_TOKEN_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "ANTEROOM_CALLBACK_SIGNING_KEY": base64.b64encode(new_signing_key_pem()).decode(),
        "ANTEROOM_ROOMS_PAGE_SIZE": "5",
        "ANTEROOM_PARTICIPANTS_PAGE_SIZE": "7",
        "ANTEROOM_PSTN_CALLER_NUMBERS": "+18005550100,+18005550101",
    }


@pytest.fixture(scope="session")
def stack(tmp_path_factory, starts_processes):
    certificate = ensure_dev_certificate(TEST_CERT_DIR)
    with AzuriteTable(certificate=certificate) as azurite:
        settings = _settings(azurite.connection_string)
        pstn = PstnSimulator(settings["ANTEROOM_ACCESS_KEY"], ca_file=str(certificate.ca_cert)).start()
        settings["ANTEROOM_PSTN_GATEWAY_URL"] = pstn.url
        topic = start_topic(tmp_path_factory.mktemp("eventgrid"), certificate)
        events = TopicSubscriptions(topic)
        settings["ANTEROOM_EVENTGRID_ENDPOINT"] = topic.topic.endpoint
        settings["ANTEROOM_EVENTGRID_KEY"] = topic.topic.key
        env = {**os.environ, **settings}
        host = subprocess.Popen(
            [sys.executable, "-m", "localdev", "serve", "--port", "0", "--cert-dir", str(certificate.ca_cert.parent)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
        )
        try:
            url = None
            for line in host.stdout:
                if line.startswith("localdev: listening "):
                    url = line.split()[2]
                    break
            assert url, "the local host did not start"
            pstn.app_base_url = url
            ca = str(certificate.ca_cert)
            ANSWERS.serve(url, ca)  # every answer of the app is checked against its document
            ANSWERS.tooling(pstn.url, "PSTN simulator")
            ANSWERS.tooling(topic.topic.endpoint.split("/api/")[0], "Event Grid topic")
            ANSWERS.tooling(azurite.endpoint, "Azurite")
            yield Stack(
                base_url=url,
                connection_string=f"endpoint={url}/;accesskey={settings['ANTEROOM_ACCESS_KEY']}",
                ca_file=ca,
                access_key=settings["ANTEROOM_ACCESS_KEY"],
                secondary_access_key=settings["ANTEROOM_SECONDARY_ACCESS_KEY"],
                resource_id=settings["ANTEROOM_RESOURCE_ID"],
                env=settings,
                pstn=pstn,
                events=events,
            )
        finally:
            host.terminate()
            try:
                # Its grace period is 10 s: a host still running after 30 s failed to stop, a bug.
                host.wait(timeout=30)
            except subprocess.TimeoutExpired:
                host.kill()
                host.wait()
                raise
            finally:
                pstn.stop()
                events.close()
                topic.stop()


@pytest.fixture(scope="session")
def stack_services(stack):
    """The app's own services, wired to the stack's storage, to look behind the API."""
    from shared.bootstrap import build_services
    from shared.config.settings import Settings

    services = build_services(Settings.from_env(stack.env, served_at=stack.base_url))
    yield services
    services.close()


@pytest.fixture(scope="session")
def rooms_client(stack):
    from azure.communication.rooms import RoomsClient

    return RoomsClient.from_connection_string(stack.connection_string)


@pytest.fixture(scope="session")
def identity_client(stack):
    from azure.communication.identity import CommunicationIdentityClient

    return CommunicationIdentityClient.from_connection_string(stack.connection_string)


@pytest.fixture
def hang_up_phones(stack):
    """Each caller number has only two lines: phones a test leaves on a call hang up after it.

    For modules that dial out: `pytestmark = pytest.mark.usefixtures("hang_up_phones")`.
    """
    yield
    for call in list(stack.pstn.calls):
        if call.state == "connected":
            phone(stack, call.target, "leave")
