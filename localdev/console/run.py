"""What `localdev run` adds beside the app: the console and control plane, the seed, instance.json.

`python -m localdev run` makes one RunConsole before it starts anything (a seed that does not parse
stops it there), starts it once the topic and the PSTN simulator are up, calls `announce()` when the
host listens (it prints the caller numbers, the console and control URLs, then imports the seed and
writes `<state-dir>/instance.json`), and stops it last.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..certs import DevCertificate
from ..control.api import AnteroomApi
from ..control.instance import NotRunning, read_description, remove_description, write_description
from ..control.plane import ControlError, ControlPlane
from ..control.seed import SeedError, check_seed
from ..eventgrid import EventGridTopic
from ..pstn import PstnSimulator
from ..settings import (ACCESS_KEY, PSTN_CALLER_NUMBERS, RESOURCE_ID, SETTINGS_FILE_NAME, STORAGE_CONNECTION_STRING,
                        acs_connection_string)
from .server import ConsoleServer

log = logging.getLogger("localdev.console")
_PLACEHOLDER_RESOURCE = "00000000-0000-0000-0000-000000000000"


def _say(line: str) -> None:
    print(line, flush=True)


class SeedRefused(SystemExit):
    """The seed given to `run --seed` was refused: the message names the line and the reason."""


class RunConsole:
    def __init__(self, state_dir: Path, *, seed_file: str | None = None, port: int | None = None) -> None:
        self.state_dir = state_dir
        self.port = port
        self.exit_status = 0
        self.seed_text: str | None = None
        self.seed_source = ""
        try:
            read_description(state_dir)
        except NotRunning:
            remove_description(state_dir)  # a description left by a killed run describes nothing
        if seed_file:
            self.seed_source = str(seed_file)
            try:
                self.seed_text = Path(seed_file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise SeedRefused(f"seed refused: {seed_file}: {error}") from None
            self._precheck()
        self.server: ConsoleServer | None = None
        self.description: dict[str, Any] = {}

    def _precheck(self) -> None:
        """The seed's syntax and rules, before anything starts (the import checks again, with the app)."""
        try:
            stored = json.loads((self.state_dir / SETTINGS_FILE_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = {}
        limit = os.environ.get("ANTEROOM_MAX_ROOM_PARTICIPANTS", "")
        try:
            check_seed(self.seed_text or "", self.seed_source, resource_id=stored.get(RESOURCE_ID) or _PLACEHOLDER_RESOURCE,
                       max_participants=int(limit) if limit.isdigit() else 1000)
        except SeedError as error:
            raise SeedRefused(f"seed refused: {error}") from None

    def _previous_port(self) -> int:
        return 0 if self.port is None else self.port

    async def start(self, *, settings: dict[str, str], certificate: DevCertificate, storage_endpoint: str,
                    topic: EventGridTopic | None, pstn: PstnSimulator | None, host: Any) -> None:
        self.settings, self.certificate, self.storage_endpoint = settings, certificate, storage_endpoint
        self.topic, self.pstn = topic, pstn
        # The endpoint is known once the host listens; the client is re-pointed in announce().
        self.api = AnteroomApi("https://127.0.0.1:0", settings[ACCESS_KEY], str(certificate.ca_cert))
        self.plane = ControlPlane(self.api, topic=topic, pstn=pstn)
        self.server = ConsoleServer(self.plane, self.api, topic=topic, pstn=pstn, describe=lambda: self.description,
                                    port=self._previous_port())
        host.http.observers.append(self.server.tap.observe)
        await self.server.start()

    def announce(self, host: Any) -> None:
        """Called when the host listens: print the lines, then seed and describe the instance."""
        assert self.server is not None
        endpoint = f"https://127.0.0.1:{host.https_port}" if host.https_port is not None else \
            f"http://127.0.0.1:{host.http_port}"
        self.api.endpoint = endpoint
        numbers = [n for n in self.settings.get(PSTN_CALLER_NUMBERS, "").split(",") if n] if self.pstn else []
        self.description = self._describe(endpoint, host, numbers)
        if numbers:
            _say(f"PSTN caller numbers: {', '.join(numbers)}")
        tokens = self.description["callbackTokens"]
        if tokens["issuer"] is not None:  # the Anteroom app, which signs Call Automation callbacks
            _say(f"callback tokens: audience {tokens['audience']}, issuer {tokens['issuer']}, keys {tokens['jwksUri']}")
        _say(f"console: {self.server.console_url}")
        _say(f"control: {self.server.control_url} (header X-Anteroom-Secret: {self.server.secret})")
        asyncio.get_running_loop().create_task(self._ready(), name="console-ready")

    def _describe(self, endpoint: str, host: Any, numbers: list[str]) -> dict[str, Any]:
        from ..control import appstate

        try:
            app = appstate.settings()
            audience, issuer = app.resource_id, app.callback_token_issuer
        except Exception as error:  # not the Anteroom app (a test's sample app): no callbacks
            log.info("no app settings for the description: %s", error)
            audience, issuer = self.settings.get(RESOURCE_ID), None
        assert self.server is not None
        return {
            "format": 1,
            "pid": os.getpid(),
            "startedAt": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "stateDir": str(self.state_dir),
            "endpoint": endpoint + "/",
            "connectionString": acs_connection_string(endpoint, self.settings[ACCESS_KEY]),
            "accessKey": self.settings[ACCESS_KEY],
            "resourceId": self.settings.get(RESOURCE_ID),
            "caFile": str(self.certificate.ca_cert),
            "plainHttp": f"http://127.0.0.1:{host.http_port}" if host.http_port is not None else None,
            "storage": {"endpoint": self.storage_endpoint,
                        "connectionString": self.settings.get(STORAGE_CONNECTION_STRING)},
            "eventGrid": None if self.topic is None else {
                "topic": self.topic.endpoint, "key": self.topic.key,
                "subscriptionsFile": str(self.topic.subscriptions_file), "admin": self.topic.base_url},
            "pstn": None if self.pstn is None else {"gateway": self.pstn.url, "callerNumbers": numbers},
            "callerNumbers": numbers,
            "callbackTokens": {"audience": audience, "issuer": issuer,
                               "jwksUri": f"{endpoint}/calling/keys",
                               "openIdConfiguration": f"{endpoint}/calling/.well-known/acsopenidconfiguration"},
            "consoleUrl": self.server.console_url,
            "controlUrl": self.server.control_url,
            "secret": self.server.secret,
            "seeded": None,
        }

    async def _ready(self) -> None:
        if self.seed_text is not None:
            try:
                result = await self.plane.import_seed(self.seed_text, self.seed_source)
            except ControlError as error:
                message = error.body.get("error", {}).get("message") if isinstance(error.body, dict) else error.body
                print(f"seed refused: {message}", file=sys.stderr, flush=True)
                self.exit_status = 2
                os.kill(os.getpid(), signal.SIGTERM)  # stops `run` as Ctrl-C would
                return
            self.description["seeded"] = result
            imported = result["imported"]
            _say(f"seed: {imported['identities']} identities, {imported['rooms']} rooms, "
                 f"{imported['subscriptions']} subscriptions imported from {self.seed_source}")
        path = write_description(self.state_dir, self.description)
        _say(f"instance: {path}")

    async def stop(self) -> None:
        remove_description(self.state_dir, os.getpid())
        if self.server is not None:
            await self.server.stop()
