"""A keyless stack: Azurite in OAuth mode over HTTPS, localdev's managed identity endpoint, an Event
Grid topic taking Entra tokens, and the local host serving the app with no storage or topic key.

The host runs the app unchanged: DefaultAzureCredential finds IDENTITY_ENDPOINT/IDENTITY_HEADER as
in an Azure Functions app with a user-assigned identity (AZURE_CLIENT_ID), and gets its tokens there.
"""
from __future__ import annotations

import base64
import contextlib
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from localdev.azurite import AzuriteTable
from localdev.certs import DevCertificate
from localdev.identity import ManagedIdentityEndpoint

from .events import TopicSubscriptions, start_topic

ROOT = Path(__file__).resolve().parents[2]
# Settings a developer's shell or another fixture may hold that would give the host a key.
KEYED_SETTINGS = ("ANTEROOM_", "AZURE_", "IDENTITY_", "MSI_", "APPLICATIONINSIGHTS_", "AzureWebJobsStorage")


def new_app_secrets() -> dict[str, str]:
    """The settings every app needs besides storage: a fresh access key, resource id and signing key."""
    return {
        "ANTEROOM_ACCESS_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "ANTEROOM_RESOURCE_ID": str(uuid.uuid4()),
        "ANTEROOM_TOKEN_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    }


def keyless_settings(storage_url: str, topic_endpoint: str | None) -> dict[str, str]:
    settings = {"ANTEROOM_STORAGE_ACCOUNT_URL": storage_url, **new_app_secrets()}
    if topic_endpoint:
        settings["ANTEROOM_EVENTGRID_ENDPOINT"] = topic_endpoint
    return settings


@dataclass
class KeylessHost:
    """`python -m localdev serve` with `env` (and nothing keyed from this process's environment)."""

    env: dict[str, str]
    certificate: DevCertificate
    base_url: str = ""
    lines: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None
    _reader: threading.Thread | None = None

    def start(self) -> "KeylessHost":
        inherited = {name: value for name, value in os.environ.items() if not name.startswith(KEYED_SETTINGS)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "localdev", "serve", "--port", "0",
             "--cert-dir", str(self.certificate.ca_cert.parent)],
            cwd=ROOT, env={**inherited, **self.env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        ready = threading.Event()

        def read() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self.lines.append(line)
                if line.startswith("localdev: listening "):
                    self.base_url = line.split()[2]
                    ready.set()
            ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not ready.wait(60) or not self.base_url:
            self.stop()
            raise RuntimeError("the keyless host did not start:\n" + "".join(self.lines[-40:]))
        return self

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_output(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the host's output:\n{self.output()[-4000:]}")
            time.sleep(0.05)
        return self.output()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self._reader is not None:
            self._reader.join(5)


@dataclass
class KeylessStack:
    host: KeylessHost
    azurite: AzuriteTable
    identity: ManagedIdentityEndpoint
    events: TopicSubscriptions
    settings: dict[str, str]

    @property
    def base_url(self) -> str:
        return self.host.base_url

    @property
    def acs_connection_string(self) -> str:
        return f"endpoint={self.base_url}/;accesskey={self.settings['ANTEROOM_ACCESS_KEY']}"


@contextlib.contextmanager
def keyless_stack(state_dir: Path, certificate: DevCertificate) -> Iterator[KeylessStack]:
    with AzuriteTable(certificate=certificate, oauth=True) as azurite, ManagedIdentityEndpoint() as identity:
        topic = start_topic(state_dir / "eventgrid", certificate)
        events = TopicSubscriptions(topic)
        try:
            settings = keyless_settings(azurite.endpoint, topic.topic.endpoint)
            host = KeylessHost({**settings, **identity.environment()}, certificate).start()
            try:
                yield KeylessStack(host, azurite, identity, events, settings)
            finally:
                host.stop()
        finally:
            events.close()
            topic.stop()
