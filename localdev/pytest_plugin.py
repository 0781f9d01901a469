"""A pytest plugin for projects that test against Anteroom: `pip install` Anteroom and the fixtures are there.

Registered through the `pytest11` entry point (pyproject.toml), so an outside project only installs
the package. Fixtures:

- `anteroom` (session): one Anteroom instance in memory on free ports (`python -m localdev run
  --in-memory --port 0`), found through its description file (instance.json), never its log text.
  Yields an `Anteroom` with its coordinates (`endpoint`, `connection_string`, `ca_file`,
  `caller_numbers`, `description`) and ready clients from the official SDKs with the dev CA trusted
  (`rooms`, `identity`, `call_automation`), plus the control plane (`reset`, `export_seed`,
  `import_seed`, `mint_token`) and helpers (`webhook`, `user`, `create_room`).
- `anteroom_reset` (function): the same instance with every identity, room, call, event and
  subscription deleted first.
- `anteroom_webhook` (function): a webhook subscribed to every event, removed afterwards;
  `wait_for("CallStarted")` waits for an event by type.

Azurite (Node.js) comes from `ANTEROOM_AZURITE_DIR` or `--anteroom-azurite-dir` (a folder whose
node_modules holds Azurite: `npm install azurite` there), else from the Anteroom checkout or the
project's root folder. `ANTEROOM_STARTUP_TIMEOUT` (seconds, default 90) bounds the start.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the checkout, or site-packages when installed
AZURITE = Path("node_modules") / ".bin" / "azurite-table"
HOST_JSON = "host.json"
CALL_EVENT_PREFIX = "Microsoft.Communication."


class AnteroomStartError(RuntimeError):
    """The instance exited or did not describe itself in time; the message has its output."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("anteroom")
    group.addoption("--anteroom-azurite-dir", default=None,
                    help="folder whose node_modules holds Azurite (default: $ANTEROOM_AZURITE_DIR, the Anteroom "
                         "checkout, the project's root folder)")
    group.addoption("--anteroom-seed", default=None,
                    help="a seed file (identities, rooms, subscriptions) the instance starts with "
                         "(default: $ANTEROOM_SEED); anteroom_reset empties it again")
    group.addoption("--anteroom-keep-state", action="store_true",
                    help="keep the instance's state folder (certificates, event logs) after the session")


# -- finding what `run` needs ----------------------------------------------------------------------
def _azurite_dir(config: pytest.Config) -> Path:
    candidates = [config.getoption("--anteroom-azurite-dir"), os.environ.get("ANTEROOM_AZURITE_DIR"),
                  PACKAGE_ROOT, config.rootpath, Path.cwd()]
    for candidate in candidates:
        if candidate and (Path(candidate) / AZURITE).exists():
            return Path(candidate).resolve()
    raise pytest.UsageError(
        "Anteroom needs Azurite (Node.js): run `npm install azurite` in your project, or point "
        "ANTEROOM_AZURITE_DIR (or --anteroom-azurite-dir) at a folder whose node_modules has it")


def _app_dir(state_dir: Path) -> Path:
    """The folder `run` serves the app from: the checkout, or (installed) one holding host.json."""
    if (PACKAGE_ROOT / HOST_JSON).exists() and (PACKAGE_ROOT / "function_app.py").exists():
        return PACKAGE_ROOT
    installed = Path(sysconfig.get_path("data")) / "anteroom" / HOST_JSON
    if not installed.exists():
        raise AnteroomStartError(f"{installed} is missing: reinstall Anteroom (pip install <anteroom>)")
    app_dir = state_dir / "app"
    app_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(installed, app_dir / HOST_JSON)
    return app_dir


# -- helpers the fixtures hand out ---------------------------------------------------------------
class Webhook:
    """An HTTP endpoint subscribed to the instance's Event Grid topic, recording what it receives."""

    def __init__(self, anteroom: "Anteroom", name: str, subscriber: Any) -> None:
        self.anteroom, self.name, self._subscriber = anteroom, name, subscriber

    @property
    def url(self) -> str:
        return self._subscriber.url

    @property
    def events(self) -> list[dict[str, Any]]:
        return self._subscriber.events()

    @staticmethod
    def type_of(event: dict[str, Any]) -> str:
        return event.get("eventType") or event.get("type") or ""

    def wait_for(self, event_type: str, *, count: int = 1, timeout: float = 30.0,
                 where: Callable[[dict[str, Any]], bool] = lambda event: True) -> list[dict[str, Any]]:
        """The events of `event_type` (`CallStarted` or its full name) once `count` have arrived."""
        wanted = event_type if "." in event_type else CALL_EVENT_PREFIX + event_type

        def matching(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [e for e in events if self.type_of(e) == wanted and where(e)]

        try:
            self._subscriber.wait_for(lambda events: len(matching(events)) >= count, timeout)
        except TimeoutError:
            seen = sorted({self.type_of(e) for e in self.events})
            raise AssertionError(f"{count} {wanted} event(s) did not arrive within {timeout} s; "
                                 f"received: {seen}") from None
        return matching(self.events)

    def remove(self) -> None:
        self.anteroom.control("DELETE", f"/subscriptions/{self.name}", allow=(404,))
        self._subscriber.stop()


class CallingUser:
    """An ACS user with a token, acting in room calls through Anteroom's room-call API."""

    def __init__(self, anteroom: "Anteroom", identifier: Any, token: str) -> None:
        self.anteroom, self.identifier, self.token = anteroom, identifier, token

    @property
    def raw_id(self) -> str:
        return self.identifier.raw_id

    def request(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, self.anteroom.endpoint.rstrip("/") + path, json=body,
                                headers={"Authorization": f"Bearer {self.token}"}, verify=self.anteroom.ca_file,
                                timeout=60)

    def join(self, room_id: str) -> requests.Response:
        return self.request("POST", f"/roomCalls/{room_id}/join")

    def act(self, room_id: str, action: str) -> requests.Response:
        """muteMic, unmuteMic, startVideo, stopVideo, startScreenShare, stopScreenShare or leave."""
        return self.request("POST", f"/roomCalls/{room_id}/me/{action}")

    def leave(self, room_id: str) -> requests.Response:
        return self.act(room_id, "leave")

    def call(self, room_id: str) -> requests.Response:
        return self.request("GET", f"/roomCalls/{room_id}")


class Anteroom:
    """A running instance: its coordinates, SDK clients, control plane and test helpers."""

    def __init__(self, description: dict[str, Any]) -> None:
        from azure.communication.callautomation import CallAutomationClient
        from azure.communication.identity import CommunicationIdentityClient
        from azure.communication.rooms import RoomsClient

        self.description = description
        self.endpoint: str = description["endpoint"]
        self.connection_string: str = description["connectionString"]
        self.ca_file: str = description["caFile"]
        self.caller_numbers: list[str] = description["callerNumbers"]
        self.control_url: str = description["controlUrl"]
        self.console_url: str = description["consoleUrl"]
        verify = {"connection_verify": self.ca_file}
        self.rooms = RoomsClient.from_connection_string(self.connection_string, **verify)
        self.identity = CommunicationIdentityClient.from_connection_string(self.connection_string, **verify)
        self.call_automation = CallAutomationClient.from_connection_string(self.connection_string, **verify)
        self._webhooks: list[Webhook] = []

    # -- control plane ----------------------------------------------------------------------------
    def control(self, method: str, path: str, *, allow: tuple[int, ...] = (), **options: Any) -> Any:
        response = requests.request(method, self.control_url + path, timeout=300,
                                    headers={"X-Anteroom-Secret": self.description["secret"],
                                             **options.pop("headers", {})}, **options)
        if response.status_code >= 400 and response.status_code not in allow:
            raise AssertionError(f"Anteroom control {method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def reset(self, room_id: str | None = None, *, keep_subscriptions: bool = False) -> dict[str, Any]:
        """Delete everything (or one room: deleted as the API deletes, then purged)."""
        body: dict[str, Any] = {"keepSubscriptions": keep_subscriptions}
        if room_id is not None:
            body["roomId"] = room_id
        return self.control("POST", "/reset", json=body)

    def export_seed(self) -> dict[str, Any]:
        return self.control("GET", "/export")

    def import_seed(self, seed: dict[str, Any] | str) -> dict[str, Any]:
        text = seed if isinstance(seed, str) else json.dumps(seed)
        return self.control("POST", "/import", data=text.encode(), headers={"Content-Type": "application/json"})

    def mint_token(self, user_id: str, seconds: int, scopes: list[str] | None = None) -> dict[str, Any]:
        """A token lasting `seconds` (any lifetime; the Identity API's minimum is an hour)."""
        return self.control("POST", "/tokens", json={"userId": user_id, "seconds": seconds,
                                                     "scopes": scopes or ["voip"]})

    # -- helpers ----------------------------------------------------------------------------------
    def webhook(self, *, event_types: list[str] | None = None, schema: str = "EventGridSchema") -> Webhook:
        """A webhook subscribed to the topic (every event, or `event_types`), active when returned."""
        from localdev.eventgrid.subscriber import WebhookSubscriber

        subscriber = WebhookSubscriber().start()
        name = f"pytest-{uuid.uuid4().hex[:12]}"
        entry: dict[str, Any] = {"name": name, "destination": {"endpointType": "WebHook", "endpointUrl": subscriber.url},
                                 "eventDeliverySchema": schema}
        if event_types:
            entry["filter"] = {"includedEventTypes": [t if "." in t else CALL_EVENT_PREFIX + t for t in event_types]}
        answer = self.control("POST", "/subscriptions", json=entry)
        if answer.get("state") != "active":
            subscriber.stop()
            raise AssertionError(f"the webhook subscription did not become active: {answer}")
        hook = Webhook(self, name, subscriber)
        self._webhooks.append(hook)
        return hook

    def user(self) -> CallingUser:
        """A new ACS user with a VoIP token."""
        from azure.communication.identity import CommunicationTokenScope

        identifier, token = self.identity.create_user_and_token([CommunicationTokenScope.VOIP])
        return CallingUser(self, identifier, token.token)

    def create_room(self, roster: dict[CallingUser, str] | None = None, **options: Any) -> Any:
        """A room (RoomsClient.create_room) with `roster` mapping users to their role names."""
        from azure.communication.rooms import RoomParticipant

        participants = [RoomParticipant(communication_identifier=user.identifier, role=role)
                        for user, role in (roster or {}).items()]
        return self.rooms.create_room(participants=participants, **options)

    def close(self) -> None:
        for hook in self._webhooks:
            hook._subscriber.stop()
        for client in (self.rooms, self.identity, self.call_automation):
            try:
                client.close()
            except Exception:
                pass


# -- starting an instance ------------------------------------------------------------------------
class AnteroomProcess:
    """`python -m localdev run --in-memory --port 0` as a child process, known by its instance.json."""

    def __init__(self, state_dir: Path, azurite_dir: Path, timeout: float, seed: str | None = None) -> None:
        self.state_dir, self.azurite_dir, self.timeout, self.seed = state_dir, azurite_dir, timeout, seed
        self.process: subprocess.Popen[bytes] | None = None
        self._output = tempfile.TemporaryFile()

    def output(self) -> str:
        self._output.seek(0)
        return self._output.read().decode(errors="replace")[-6000:]

    def start(self) -> dict[str, Any]:
        from localdev.control.instance import NotRunning, read_description

        command = [sys.executable, "-m", "localdev", "--log-level", "WARNING", "run", "--in-memory", "--port", "0",
                   "--console-port", "0", "--eventgrid-port", "0", "--pstn-port", "0",
                   "--state-dir", str(self.state_dir), "--azurite-dir", str(self.azurite_dir),
                   "--app-dir", str(_app_dir(self.state_dir))]
        if self.seed:
            command += ["--seed", str(self.seed)]
        from localdev.processes import die_with_parent_hook

        # Its own session (Ctrl-C on pytest is not sent to it twice); told to stop if pytest dies.
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._output,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=die_with_parent_hook())
        deadline = time.monotonic() + self.timeout
        while True:
            if self.process.poll() is not None:
                raise AnteroomStartError(f"Anteroom exited with {self.process.returncode}:\n{self.output()}")
            try:
                return read_description(self.state_dir)
            except NotRunning:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AnteroomStartError(f"Anteroom did not describe itself within {self.timeout:.0f} s:\n"
                                         f"{self.output()}")
            time.sleep(0.1)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(2)  # SIGINT: what Ctrl-C sends; `run` stops Azurite too
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()
        self._output.close()


@pytest.fixture(scope="session")
def anteroom(request: pytest.FixtureRequest) -> Iterator[Anteroom]:
    """One Anteroom instance for the session (in memory, free ports)."""
    state_dir = Path(tempfile.mkdtemp(prefix="anteroom-"))
    timeout = float(os.environ.get("ANTEROOM_STARTUP_TIMEOUT", "90"))
    seed = request.config.getoption("--anteroom-seed") or os.environ.get("ANTEROOM_SEED")
    running = AnteroomProcess(state_dir, _azurite_dir(request.config), timeout, seed)
    description = running.start()
    instance = Anteroom(description)
    try:
        yield instance
    finally:
        instance.close()
        running.stop()
        if not request.config.getoption("--anteroom-keep-state"):
            shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def anteroom_reset(anteroom: Anteroom) -> Anteroom:
    """The session's instance, emptied first: no identities, rooms, calls, events or subscriptions."""
    anteroom.reset()
    return anteroom


@pytest.fixture
def anteroom_webhook(request: pytest.FixtureRequest, anteroom: Anteroom) -> Iterator[Webhook]:
    """A webhook receiving every call event of the instance for this test."""
    if "anteroom_reset" in request.fixturenames:
        request.getfixturevalue("anteroom_reset")  # reset first, whatever the order asked: it removes webhooks
    hook = anteroom.webhook()
    try:
        yield hook
    finally:
        hook.remove()
        anteroom._webhooks.remove(hook)
