"""The publishing side of the local topic: who may publish (key, SAS token or Entra token) and what a valid batch is."""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import unquote, urlsplit

import jwt

from ..eventgrid_trigger import parse_event_time
from ..identity import EVENTGRID_RESOURCE, LOCAL_TOKEN_SECRET, verify_token

EVENT_GRID_SCHEMA = "EventGridSchema"
CLOUD_EVENTS_SCHEMA = "CloudEventSchemaV1_0"
SCHEMAS = (EVENT_GRID_SCHEMA, CLOUD_EVENTS_SCHEMA)

# Event Grid's documented limits for a custom topic: 1 MB per request, 1 MB per event.
MAX_REQUEST_BYTES = 1_048_576
MAX_EVENT_BYTES = 1_048_576

_EVENT_GRID_REQUIRED = ("id", "subject", "eventType", "eventTime")
_CLOUD_EVENTS_REQUIRED = ("id", "source", "type", "specversion")


class PublishError(Exception):
    """A refused publish: the HTTP status and the Event Grid-style error body to answer with."""

    def __init__(self, status: int, code: str, message: str, detail_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": {"code": code, "message": message}}
        if detail_code:
            self.body["error"]["details"] = [{"code": detail_code, "message": message}]


def bad_request(detail_code: str, message: str) -> PublishError:
    return PublishError(400, "BadRequest", message, detail_code)


def unauthorized(message: str) -> PublishError:
    return PublishError(401, "Unauthorized", message)


# -- authentication --------------------------------------------------------------------------

def _parse_expiry(text: str) -> datetime.datetime:
    """`generate_sas` writes str(datetime); the portal's samples use `M/d/yyyy h:mm:ss AM`."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        moment = datetime.datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)  # the SDK asks for UTC
    return moment


def _token_parts(token: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in token.split("&"):
        name, separator, value = item.partition("=")
        if not separator or name in parts:
            raise unauthorized("The SAS token is malformed.")
        parts[name] = value
    if set(parts) != {"r", "e", "s"}:
        raise unauthorized("The SAS token must have exactly the fields r, e and s.")
    return parts


def _same_resource(resource: str, topic_path: str, request_host: str) -> bool:
    # The SDK signs `<endpoint>?apiVersion=...`: compare host and path, not the query.
    signed = urlsplit(resource)
    return signed.path.rstrip("/").lower() == topic_path.rstrip("/").lower() and \
        signed.netloc.lower() == request_host.lower()


def check_sas_token(token: str, keys: Sequence[str], *, topic_path: str, request_host: str,
                    now: datetime.datetime) -> None:
    """Accept `r=<resource>&e=<expiry>&s=<signature>` as azure.eventgrid.generate_sas makes it."""
    parts = _token_parts(token)
    unsigned = f"r={parts['r']}&e={parts['e']}".encode("ascii", errors="replace")
    try:
        given = base64.b64decode(unquote(parts["s"]), validate=True)
    except (binascii.Error, ValueError):
        raise unauthorized("The SAS token's signature is not base64.") from None
    if not any(hmac.compare_digest(hmac.new(base64.b64decode(key), unsigned, hashlib.sha256).digest(), given)
               for key in keys):
        raise unauthorized("The SAS token's signature does not match a key of this topic.")
    if not _same_resource(unquote(parts["r"]), topic_path, request_host):
        raise unauthorized("The SAS token was issued for another resource.")
    try:
        expiry = _parse_expiry(unquote(parts["e"]))
    except ValueError:
        raise unauthorized("The SAS token's expiry is not a date.") from None
    if expiry <= now:
        raise unauthorized("The SAS token has expired.")


def check_entra_token(token: str, secret: bytes) -> None:
    """Accept a token of localdev's Entra stand-in (localdev/identity.py) for Event Grid's audience,
    as Event Grid accepts a Microsoft Entra token for https://eventgrid.azure.net."""
    try:
        verify_token(token, EVENTGRID_RESOURCE, secret=secret)
    except jwt.ExpiredSignatureError:
        raise unauthorized("The access token has expired.") from None
    except jwt.ImmatureSignatureError:
        raise unauthorized("The access token is not valid yet.") from None
    except jwt.InvalidAudienceError:
        raise unauthorized(f"The access token's audience is not {EVENTGRID_RESOURCE}.") from None
    except jwt.InvalidIssuerError:
        raise unauthorized("The access token was not issued by this tenant.") from None
    except jwt.InvalidSignatureError:
        raise unauthorized("The access token's signature is not valid.") from None
    except jwt.InvalidTokenError:
        raise unauthorized("The access token is malformed.") from None


def authenticate(headers: Any, keys: Sequence[str], *, topic_path: str, request_host: str,
                 now: datetime.datetime, token_secret: bytes = LOCAL_TOKEN_SECRET) -> None:
    """Raise 401 unless the request carries a topic key, a valid SAS token for this topic, or an
    Entra token (`Authorization: Bearer`) for Event Grid signed with `token_secret`."""
    authorization = headers.get("Authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        if not credentials.strip():
            raise unauthorized("The Authorization header has no token.")
        check_entra_token(credentials.strip(), token_secret)
        return
    key = headers.get("aeg-sas-key")
    if key is not None:
        if not any(hmac.compare_digest(key.encode(), k.encode()) for k in keys):
            raise unauthorized("The request authorization key is not authorized for this topic.")
        return
    token = headers.get("aeg-sas-token")
    if token is None and authorization.startswith("SharedAccessSignature "):
        token = authorization[len("SharedAccessSignature "):].strip()
    if token is None:
        raise unauthorized("The request has no aeg-sas-key, aeg-sas-token, SharedAccessSignature or Bearer token.")
    check_sas_token(token, keys, topic_path=topic_path, request_host=request_host, now=now)


# -- the body -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PublishedEvent:
    """One accepted event as published, and the schema it came in."""

    body: dict[str, Any]
    schema: str

    @property
    def id(self) -> str:
        return str(self.body["id"])

    @property
    def event_type(self) -> str:
        return str(self.body["eventType" if self.schema == EVENT_GRID_SCHEMA else "type"])

    @property
    def subject(self) -> str:
        return str(self.body.get("subject") or "")


def schema_of_content_type(content_type: str) -> tuple[str, bool]:
    """(schema, is a batch) from the Content-Type; 400 for anything else."""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == "application/json":
        return EVENT_GRID_SCHEMA, True
    if media_type == "application/cloudevents-batch+json":
        return CLOUD_EVENTS_SCHEMA, True
    if media_type == "application/cloudevents+json":
        return CLOUD_EVENTS_SCHEMA, False
    raise bad_request("InvalidContentType",
                      f"Content-Type {media_type or '(none)'} is not supported: use application/json "
                      "(Event Grid schema) or application/cloudevents(-batch)+json.")


def _is_timestamp(value: Any) -> bool:
    return parse_event_time(value) is not None


def _check_event(event: Any, schema: str, index: int) -> None:
    where = f"event at index {index}"
    if not isinstance(event, dict):
        raise bad_request("InputJsonInvalid", f"The {where} is not a JSON object.")
    required = _EVENT_GRID_REQUIRED if schema == EVENT_GRID_SCHEMA else _CLOUD_EVENTS_REQUIRED
    for name in required:
        value = event.get(name)
        if not isinstance(value, str) or not value.strip():
            raise bad_request("MissingRequiredProperty", f"The {where} lacks the required string property {name}.")
    if schema == EVENT_GRID_SCHEMA:
        if not _is_timestamp(event["eventTime"]):
            raise bad_request("InvalidPropertyValue", f"The {where} has an eventTime that is not a date-time.")
        for name in ("topic", "dataVersion"):
            if name in event and event[name] is not None and not isinstance(event[name], str):
                raise bad_request("InvalidPropertyValue", f"The {where} has a {name} that is not a string.")
    else:
        if event["specversion"] != "1.0":
            raise bad_request("InvalidPropertyValue", f"The {where} has specversion {event['specversion']!r}; only 1.0 is supported.")
        if "time" in event and event["time"] is not None and not _is_timestamp(event["time"]):
            raise bad_request("InvalidPropertyValue", f"The {where} has a time that is not a date-time.")
    size = len(json.dumps(event, separators=(",", ":")).encode())
    if size > MAX_EVENT_BYTES:
        raise bad_request("EventTooLarge", f"The {where} is {size} bytes; an event may be at most {MAX_EVENT_BYTES}.")


def parse_batch(body: bytes, content_type: str) -> list[PublishedEvent]:
    """The events of a publish request, checked against their schema; PublishError(400) otherwise.

    The request's size limit (MAX_REQUEST_BYTES) is enforced while reading it, before this.
    """
    schema, batch = schema_of_content_type(content_type)
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("InputJsonInvalid", "The request body is not valid JSON.") from None
    if batch and not isinstance(document, list):
        raise bad_request("InputJsonInvalid", "The request body must be a JSON array of events.")
    events = document if batch else [document]
    if not events:
        raise bad_request("InputJsonInvalid", "The request has no events.")
    for index, event in enumerate(events):
        _check_event(event, schema, index)
    return [PublishedEvent(event, schema) for event in events]
