"""Local settings: host.json options, local.settings.json values and the generated app settings of `run`."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, MutableMapping

from shared.core.keys import new_signing_key_pem

from .files import write_atomically

log = logging.getLogger("localdev.settings")

DEFAULT_ROUTE_PREFIX = "api"
DEFAULT_THREAD_POOL_SIZE = 64
# How long a connection may take to deliver a request's headers, from opening or from the previous
# answer (it also ends idle keep-alive connections), and then its body (Azure's front end gives a
# request 230 s in all).
DEFAULT_HEADER_TIMEOUT = 60.0
DEFAULT_BODY_TIMEOUT = 230.0

# Keys for FUNCTION/ADMIN auth levels. The real host keeps them in its secret
# store; locally they come from app settings (environment or local.settings.json).
MASTER_KEY_SETTING = "LOCALDEV_MASTER_KEY"
FUNCTION_KEYS_SETTING = "LOCALDEV_FUNCTION_KEYS"  # comma separated

STORAGE_CONNECTION_STRING = "ANTEROOM_STORAGE_CONNECTION_STRING"
ACCESS_KEY = "ANTEROOM_ACCESS_KEY"
SECONDARY_ACCESS_KEY = "ANTEROOM_SECONDARY_ACCESS_KEY"
RESOURCE_ID = "ANTEROOM_RESOURCE_ID"
TOKEN_SIGNING_KEY = "ANTEROOM_TOKEN_SIGNING_KEY"
CALLBACK_SIGNING_KEY = "ANTEROOM_CALLBACK_SIGNING_KEY"
EVENTGRID_ENDPOINT = "ANTEROOM_EVENTGRID_ENDPOINT"
EVENTGRID_KEY = "ANTEROOM_EVENTGRID_KEY"
PSTN_GATEWAY_URL = "ANTEROOM_PSTN_GATEWAY_URL"
PSTN_CALLER_NUMBERS = "ANTEROOM_PSTN_CALLER_NUMBERS"
SETTINGS_FILE_NAME = "settings.json"


@dataclass(frozen=True)
class HostConfig:
    """What the host needs besides the app: route prefix, auth keys, worker pool size."""

    route_prefix: str = DEFAULT_ROUTE_PREFIX
    master_key: str | None = None
    function_keys: frozenset[str] = field(default_factory=frozenset)
    thread_pool_size: int = DEFAULT_THREAD_POOL_SIZE
    function_directory: str = "."
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT

    @classmethod
    def load(cls, app_directory: str | os.PathLike[str],
             environ: Mapping[str, str] | None = None, **overrides: object) -> "HostConfig":
        """Read host.json in `app_directory` and the key settings from `environ`."""
        environ = os.environ if environ is None else environ
        function_keys = frozenset(
            k.strip() for k in environ.get(FUNCTION_KEYS_SETTING, "").split(",") if k.strip())
        values: dict[str, object] = {
            "route_prefix": read_route_prefix(Path(app_directory) / "host.json"),
            "master_key": environ.get(MASTER_KEY_SETTING) or None,
            "function_keys": function_keys,
            "function_directory": str(Path(app_directory).resolve()),
        }
        pool_size = environ.get("PYTHON_THREADPOOL_THREAD_COUNT")
        if pool_size and pool_size.isdigit() and int(pool_size) > 0:
            values["thread_pool_size"] = int(pool_size)
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def read_route_prefix(host_json: Path) -> str:
    """`extensions.http.routePrefix` from host.json; "api" when the file or key is absent."""
    try:
        document = json.loads(host_json.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        return DEFAULT_ROUTE_PREFIX
    prefix = document.get("extensions", {}).get("http", {}).get("routePrefix")
    return DEFAULT_ROUTE_PREFIX if prefix is None else str(prefix).strip("/")


def load_local_settings_json(app_directory: str | os.PathLike[str],
                             environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Copy local.settings.json `Values` into the environment like `func start`.

    Variables that are already set win, so a caller (or a test) can override
    any value. Returns the names that were set.
    """
    environ = os.environ if environ is None else environ
    path = Path(app_directory) / "local.settings.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        return []
    applied = []
    for name, value in (document.get("Values") or {}).items():
        if name not in environ and value is not None:
            environ[name] = str(value)
            applied.append(name)
    if applied:
        log.info("loaded %d settings from %s", len(applied), path)
    return applied


def _random_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _callback_signing_key() -> str:
    # Base64 of the PEM: one line, like every other setting.
    return base64.b64encode(new_signing_key_pem()).decode("ascii")


# How each generated app setting is made; a stored value is never made again (an RSA key takes ~50 ms).
_APP_SETTING_MAKERS: dict[str, Callable[[], str]] = {
    ACCESS_KEY: _random_key,
    SECONDARY_ACCESS_KEY: _random_key,
    RESOURCE_ID: lambda: str(uuid.uuid4()),
    TOKEN_SIGNING_KEY: _random_key,
    CALLBACK_SIGNING_KEY: _callback_signing_key,
}


def generate_app_settings(storage_connection_string: str) -> dict[str, str]:
    """Fresh app settings for one local Anteroom instance."""
    return {STORAGE_CONNECTION_STRING: storage_connection_string,
            **{name: make() for name, make in _APP_SETTING_MAKERS.items()}}


def generate_companion_settings() -> dict[str, str]:
    """Settings of what `run` starts beside the app: the Event Grid topic's key and the PSTN numbers."""
    # 555-01xx numbers are reserved for fiction, so they never ring a real phone.
    first = secrets.randbelow(99)
    return {
        EVENTGRID_KEY: _random_key(),
        PSTN_CALLER_NUMBERS: f"+180055501{first:02d},+180055501{first + 1:02d}",
    }


def ensure_local_settings(state_dir: str | os.PathLike[str], *,
                          generated: Mapping[str, str] | None = None,
                          current: Mapping[str, str] | None = None) -> dict[str, str]:
    """Load `<state_dir>/settings.json`, creating missing settings, and return them.

    Keys and the resource id are generated once and reused on every restart so
    connection strings handed to clients stay valid. `generated` adds more
    values the same way (kept once stored); the `current` values (the storage
    connection string, ports) replace the stored ones.
    """
    directory = Path(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SETTINGS_FILE_NAME
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        stored = {}
    missing = {name: make() for name, make in _APP_SETTING_MAKERS.items() if name not in stored}
    settings = {STORAGE_CONNECTION_STRING: "", **missing, **(generated or {}), **stored, **(current or {})}
    if settings != stored:
        # 600: the file holds secrets.
        write_atomically(path, (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode(), 0o600)
    return settings


def acs_connection_string(endpoint: str, access_key: str) -> str:
    """The ACS-style connection string clients use: `endpoint=https://.../;accesskey=...`."""
    return f"endpoint={endpoint.rstrip('/')}/;accesskey={access_key}"
