"""Stacks for the hardening tests: Azurite plus a host whose whole log (DEBUG, access log) is kept for inspection."""
from __future__ import annotations

import collections
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import pytest

from localdev.azurite import AzuriteTable
from localdev.certs import ensure_dev_certificate
from localdev.settings import acs_connection_string, generate_app_settings
from localdev.testing import HostProcess
from tests.conftest import ROOT, TEST_CERT_DIR
from tests.support.answers import ANSWERS
from tests.support.hmac_client import HmacClient
from tests.support.refusals import active_room_count, identity_count

ROOMS = "api-version=2025-03-13"


class LoggedHost(HostProcess):
    """A host logging at DEBUG with its access log, every line kept (not only the last 20,000)."""

    def _command(self) -> list[str]:
        command = super()._command()
        serve = command.index("serve")
        return command[:serve] + ["--log-level", "DEBUG"] + command[serve:] + ["--access-log"]

    def start(self) -> "LoggedHost":
        if self.process is None and self.lines.maxlen is not None:
            self.lines = collections.deque()
        return super().start()


@dataclass
class HardeningStack:
    azurite: AzuriteTable
    host: LoggedHost
    settings: dict[str, str]
    _storage_port: int | None = None

    @property
    def base_url(self) -> str:
        return self.host.base_url

    @property
    def access_key(self) -> str:
        return self.settings["ANTEROOM_ACCESS_KEY"]

    @property
    def secondary_access_key(self) -> str:
        return self.settings["ANTEROOM_SECONDARY_ACCESS_KEY"]

    @property
    def resource_id(self) -> str:
        return self.settings["ANTEROOM_RESOURCE_ID"]

    @property
    def connection_string(self) -> str:
        return acs_connection_string(self.base_url, self.access_key)

    @property
    def ca_file(self) -> str:
        return str(ensure_dev_certificate(TEST_CERT_DIR).ca_cert)

    def log(self) -> str:
        return self.host.output()

    def stop_storage(self) -> None:
        """Stop Azurite as an outage would (it saves its data first when it has a location)."""
        self._storage_port = self.azurite.port
        self.azurite.stop()

    def restart_storage(self) -> None:
        """Azurite back on the same port and folder, so the host's connection string still works."""
        self.azurite = AzuriteTable(certificate=self.azurite.certificate, location=self.azurite.location, port=self._storage_port).start()

    @contextlib.contextmanager
    def services(self):
        """The app's own services on this stack's storage, to look behind the API."""
        from shared.bootstrap import build_services
        from shared.config.settings import Settings

        services = build_services(Settings.from_env(self.settings, served_at=self.base_url))
        try:
            yield services
        finally:
            services.close()


@contextlib.contextmanager
def hardening_stack(
    env: Mapping[str, str] | None = None, *, azurite_location: str | os.PathLike[str] | None = None
) -> Iterator[HardeningStack]:
    """Azurite (in memory, or kept in `azurite_location` so it survives a restart) and one logged host."""
    certificate = ensure_dev_certificate(TEST_CERT_DIR)
    azurite = AzuriteTable(certificate=certificate, location=azurite_location).start()
    stack = None
    try:
        settings = {**generate_app_settings(azurite.connection_string), **(env or {})}
        host = LoggedHost("function_app:app", Path(ROOT), settings, certificate.ca_cert.parent)
        stack = HardeningStack(azurite, host, settings)
        host.start()
        ANSWERS.serve(host.base_url, str(certificate.ca_cert))
        ANSWERS.tooling(azurite.endpoint, "Azurite")
        yield stack
    finally:
        if stack is not None:
            stack.host.stop()
            azurite = stack.azurite  # a restarted Azurite is another process
        azurite.stop()


@pytest.fixture(scope="session")
def hardened():
    """The default configuration (throttling at its default), shared by the fuzzing, input and auth tests."""
    with hardening_stack() as stack:
        yield stack


@pytest.fixture(scope="session")
def hardened_services(hardened):
    with hardened.services() as services:
        yield services


def snapshot(http, services, room_id):
    """What is stored: the room as the API shows it, its roster, how many rooms are active, how many identities exist."""
    shown = http.send("GET", f"/rooms/{room_id}?{ROOMS}")
    roster = http.send("GET", f"/rooms/{room_id}/participants?{ROOMS}")
    assert shown.status_code == roster.status_code == 200, (shown.text[:300], roster.text[:300])
    assert roster.json().get("nextLink") is None, "the watched room's roster should fit one page"
    members = sorted((p["rawId"], p["role"]) for p in roster.json()["value"])
    return shown.json(), members, active_room_count(services), identity_count(services)


@pytest.fixture
def unchanged(hardened, hardened_services, room):
    """Asserts after the test that nothing stored changed; `room` is the id of the module's own watched room."""
    http = HmacClient(hardened)
    before = snapshot(http, hardened_services, room)
    yield
    assert snapshot(http, hardened_services, room) == before
