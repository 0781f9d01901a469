"""Service settings, read once from the environment (or given directly) and checked at start."""
from __future__ import annotations

import base64
import binascii
import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urlsplit

from ..core.identifiers import is_e164
from ..core.keys import load_signing_key

PREFIX = "ANTEROOM_"
# The app names its tables `<ANTEROOM_TABLE_PREFIX><suffix>`; this is the prefix when none is set.
DEFAULT_TABLE_PREFIX = "anteroom"
EVENT_SCHEMAS = ("EventGridSchema", "CloudEventSchemaV1_0")  # the delivery schemas Event Grid offers for these events
# The issuer of Call Automation callback tokens when ANTEROOM_CALLBACK_TOKEN_ISSUER is not set: ACS's own
# (docs: "Secure webhook endpoint" for Call Automation).
ACS_CALLBACK_ISSUER = "https://acscallautomation.communication.azure.com"


class SettingsError(ValueError):
    """Raised when required settings are missing or malformed; the message lists every problem."""


def _decode_key(name: str, value: str, problems: list[str]) -> bytes:
    if not value:
        return b""  # already named as required: one problem, one line
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        problems.append(f"{name} must be base64")
        return b""
    if len(key) < 16:
        problems.append(f"{name} must decode to at least 16 bytes")
    return key


def _callback_signing_key(value: str, problems: list[str]) -> bytes | None:
    """The PEM of ANTEROOM_CALLBACK_SIGNING_KEY, given as PEM text or as base64 of it (one line, for
    app settings that cannot hold line breaks); checked here so a bad key stops the start."""
    if not value:
        return None
    if value.startswith("-----BEGIN"):
        pem = value.encode()
    else:
        try:
            pem = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            problems.append(f"{PREFIX}CALLBACK_SIGNING_KEY must be a PEM private key or base64 of one")
            return None
    try:
        load_signing_key(pem)
    except ValueError as error:
        problems.append(f"{PREFIX}CALLBACK_SIGNING_KEY {error}")
        return None
    return pem


def _is_https_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname) and not parts.query and not parts.fragment


def _is_application_insights_connection_string(value: str) -> bool:
    """`Key=value` pairs separated by `;`, one of them InstrumentationKey with a GUID (the portal's form)."""
    pairs = [part.partition("=") for part in value.split(";") if part.strip()]
    if any(not separator or not name.strip() for name, separator, _ in pairs):
        return False
    fields = {name.strip().lower(): item.strip() for name, _, item in pairs}
    try:
        uuid.UUID(fields.get("instrumentationkey", ""))
    except ValueError:
        return False
    endpoint = fields.get("ingestionendpoint")
    return endpoint is None or endpoint.startswith(("http://", "https://"))


@dataclass(frozen=True)
class Settings:
    """Everything the app needs to run. Build with `Settings.from_env()` or directly in tests."""

    # Exactly one of these two (from_env refuses both and neither): a connection string with an
    # account key, or the Table endpoint reached with a Microsoft Entra token (DefaultAzureCredential).
    storage_connection_string: str | None
    access_keys: tuple[bytes, ...]
    resource_id: str
    token_signing_key: bytes
    table_prefix: str = DEFAULT_TABLE_PREFIX
    hmac_clock_skew_seconds: int = 900
    repeatability_window_seconds: int = 300
    expired_room_grace_hours: int = 24
    max_room_participants: int = 1000
    rooms_page_size: int = 50
    participants_page_size: int = 100
    max_body_bytes: int = 1_048_576
    # Per caller (access key or token user) and per instance; 0 turns throttling off.
    throttle_requests: int = 6000
    throttle_window_seconds: int = 60
    # This service's own host names, the only ones HMAC signatures may name (see from_env).
    service_hosts: tuple[str, ...] = field(default_factory=tuple)
    pstn_gateway_url: str | None = None
    caller_numbers: tuple[str, ...] = field(default_factory=tuple)
    eventgrid_endpoint: str | None = None
    eventgrid_key: str | None = None
    eventgrid_schema: str = "EventGridSchema"
    arm_resource_id: str = ""
    # PEM of the RSA key that signs Call Automation callbacks; None sends them unsigned.
    callback_signing_key: bytes | None = None
    callback_token_issuer: str = ACS_CALLBACK_ISSUER
    storage_account_url: str | None = None
    # The user-assigned managed identity the Entra credential signs in as (AZURE_CLIENT_ID); None
    # lets DefaultAzureCredential pick (the system-assigned identity, a developer's sign-in).
    azure_client_id: str | None = None
    # APPLICATIONINSIGHTS_CONNECTION_STRING: with it, requests and their storage and Event Grid
    # calls are traced to Application Insights (shared/bootstrap.py configure_telemetry).
    telemetry_connection_string: str | None = None

    @property
    def uses_entra(self) -> bool:
        """Whether any service is reached with an Entra token rather than a key."""
        return self.storage_account_url is not None or (
            self.eventgrid_endpoint is not None and self.eventgrid_key is None)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, served_at: str | None = None) -> "Settings":
        """Read `ANTEROOM_*` variables. Raises SettingsError naming every missing or bad one.

        `served_at` (a base URL) stands in for WEBSITE_HOSTNAME, which the Functions host sets:
        for services built outside a host, as tests and tools do.
        """
        env = os.environ if environ is None else environ
        if served_at is not None:
            env = {**env, "WEBSITE_HOSTNAME": urlsplit(served_at).netloc}
        problems: list[str] = []

        def required(name: str) -> str:
            value = env.get(PREFIX + name, "").strip()
            if not value:
                problems.append(f"{PREFIX}{name} is required")
            return value

        def integer(name: str, default: int, minimum: int = 1) -> int:
            raw = env.get(PREFIX + name)
            if raw is None or raw.strip() == "":
                return default
            try:
                value = int(raw)
            except ValueError:
                problems.append(f"{PREFIX}{name} must be an integer")
                return default
            if value < minimum:
                problems.append(f"{PREFIX}{name} must be at least {minimum}")
            return value

        connection_string = env.get(PREFIX + "STORAGE_CONNECTION_STRING", "").strip() or None
        account_url = env.get(PREFIX + "STORAGE_ACCOUNT_URL", "").strip() or None
        if connection_string and account_url:
            problems.append(f"{PREFIX}STORAGE_CONNECTION_STRING and {PREFIX}STORAGE_ACCOUNT_URL are alternatives: "
                            "set one (the account URL to reach storage with an Entra identity)")
        elif not connection_string and not account_url:
            problems.append(f"{PREFIX}STORAGE_CONNECTION_STRING or {PREFIX}STORAGE_ACCOUNT_URL is required")
        if account_url and not _is_https_url(account_url):
            problems.append(f"{PREFIX}STORAGE_ACCOUNT_URL must be an https URL (the account's Table endpoint, "
                            "like https://<account>.table.core.windows.net): Entra tokens go only over TLS")
        client_id = env.get("AZURE_CLIENT_ID", "").strip() or None
        if client_id:
            try:
                client_id = str(uuid.UUID(client_id))
            except ValueError:
                problems.append("AZURE_CLIENT_ID must be a GUID (the client id of the user-assigned managed identity)")
        keys = [_decode_key(PREFIX + "ACCESS_KEY", required("ACCESS_KEY"), problems)]
        secondary = env.get(PREFIX + "SECONDARY_ACCESS_KEY", "").strip()
        if secondary:
            keys.append(_decode_key(PREFIX + "SECONDARY_ACCESS_KEY", secondary, problems))
        resource_id = required("RESOURCE_ID")
        if resource_id:
            try:
                resource_id = str(uuid.UUID(resource_id))
            except ValueError:
                problems.append(f"{PREFIX}RESOURCE_ID must be a GUID")
        signing_key = _decode_key(PREFIX + "TOKEN_SIGNING_KEY", required("TOKEN_SIGNING_KEY"), problems)
        prefix = env.get(PREFIX + "TABLE_PREFIX", DEFAULT_TABLE_PREFIX).strip()
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,39}", prefix):
            problems.append(f"{PREFIX}TABLE_PREFIX must be letters and digits, starting with a letter")
        # WEBSITE_HOSTNAME is the app's own name, set by Azure and by the Functions host (Core Tools,
        # localdev); ANTEROOM_PUBLIC_HOSTS adds the names clients use in front of it (custom domains).
        named = [env.get("WEBSITE_HOSTNAME", ""), *env.get(PREFIX + "PUBLIC_HOSTS", "").split(",")]
        hosts = tuple(dict.fromkeys(h.strip().lower() for h in named if h.strip()))
        if not hosts:
            problems.append(f"WEBSITE_HOSTNAME (set by the Functions host) or {PREFIX}PUBLIC_HOSTS is required: "
                            "the host names request signatures may name")
        numbers = tuple(n.strip() for n in env.get(PREFIX + "PSTN_CALLER_NUMBERS", "").split(",") if n.strip())
        for number in numbers:
            if not is_e164(number):
                problems.append(f"{PREFIX}PSTN_CALLER_NUMBERS must be E.164 numbers, comma-separated")
        gateway = env.get(PREFIX + "PSTN_GATEWAY_URL", "").strip() or None
        if gateway and not gateway.startswith(("http://", "https://")):
            problems.append(f"{PREFIX}PSTN_GATEWAY_URL must be an http(s) URL")
        eventgrid_endpoint = env.get(PREFIX + "EVENTGRID_ENDPOINT", "").strip() or None
        eventgrid_key = env.get(PREFIX + "EVENTGRID_KEY", "").strip() or None
        if eventgrid_key and not eventgrid_endpoint:
            problems.append(f"{PREFIX}EVENTGRID_KEY is set without {PREFIX}EVENTGRID_ENDPOINT: "
                            "set the topic's endpoint too, or remove the key")
        if eventgrid_endpoint:
            if eventgrid_key and not eventgrid_endpoint.startswith(("http://", "https://")):
                problems.append(f"{PREFIX}EVENTGRID_ENDPOINT must be an http(s) URL")
            elif not eventgrid_key and not _is_https_url(eventgrid_endpoint):
                problems.append(f"{PREFIX}EVENTGRID_ENDPOINT must be an https URL when no {PREFIX}EVENTGRID_KEY is "
                                "set: events are then sent with an Entra token, which goes only over TLS")
        schema = env.get(PREFIX + "EVENTGRID_SCHEMA", "EventGridSchema").strip()
        if schema not in EVENT_SCHEMAS:
            problems.append(f"{PREFIX}EVENTGRID_SCHEMA must be {' or '.join(EVENT_SCHEMAS)}")
        arm_resource_id = env.get(PREFIX + "ARM_RESOURCE_ID", "").strip() or (
            f"/subscriptions/{resource_id}/resourceGroups/anteroom/providers/"
            "Microsoft.Communication/communicationServices/anteroom"
        )
        callback_key = _callback_signing_key(env.get(PREFIX + "CALLBACK_SIGNING_KEY", "").strip(), problems)
        issuer = env.get(PREFIX + "CALLBACK_TOKEN_ISSUER", "").strip() or ACS_CALLBACK_ISSUER
        telemetry = env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip() or None
        if telemetry and not _is_application_insights_connection_string(telemetry):
            problems.append("APPLICATIONINSIGHTS_CONNECTION_STRING must be an Application Insights connection "
                            "string (InstrumentationKey=<guid>;IngestionEndpoint=...)")
        settings = cls(
            storage_connection_string=connection_string,
            access_keys=tuple(keys),
            resource_id=resource_id,
            token_signing_key=signing_key,
            table_prefix=prefix,
            hmac_clock_skew_seconds=integer("HMAC_CLOCK_SKEW_SECONDS", 900),
            repeatability_window_seconds=integer("REPEATABILITY_WINDOW_SECONDS", 300),
            expired_room_grace_hours=integer("EXPIRED_ROOM_GRACE_HOURS", 24, minimum=0),
            max_room_participants=integer("MAX_ROOM_PARTICIPANTS", 1000),
            rooms_page_size=integer("ROOMS_PAGE_SIZE", 50),
            participants_page_size=integer("PARTICIPANTS_PAGE_SIZE", 100),
            max_body_bytes=integer("MAX_BODY_BYTES", 1_048_576),
            throttle_requests=integer("THROTTLE_REQUESTS", 6000, minimum=0),
            throttle_window_seconds=integer("THROTTLE_WINDOW_SECONDS", 60),
            service_hosts=hosts,
            pstn_gateway_url=gateway,
            caller_numbers=numbers,
            eventgrid_endpoint=eventgrid_endpoint,
            eventgrid_key=eventgrid_key,
            eventgrid_schema=schema,
            arm_resource_id=arm_resource_id,
            callback_signing_key=callback_key,
            callback_token_issuer=issuer,
            storage_account_url=account_url.rstrip("/") if account_url else None,
            azure_client_id=client_id,
            telemetry_connection_string=telemetry,
        )
        if problems:
            raise SettingsError("; ".join(problems))
        return settings

    def table_name(self, suffix: str) -> str:
        """Our table names share one prefix so several deployments can share a storage account."""
        return f"{self.table_prefix}{suffix}"
