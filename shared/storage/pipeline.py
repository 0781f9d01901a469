"""The azure-core pipeline the app's Table clients share: azure-core's policies, Table signing, and batch bodies written directly.

Built from public azure-core pieces and handed to azure-data-tables' clients as `pipeline=`:

- the policy list of azure-data-tables' own clients, with azure-core's classes where the SDK uses
  its private subclasses, less those that do nothing for the app (`storage_policies` says which):
  request id, date headers, user agent, the credential (Table SharedKey signing, a SAS, or an
  Entra bearer token), content decoding, retries, distributed tracing (each storage call a child
  span of the request) and HTTP logging;
- `StoragePipeline`, which writes a transaction's multipart/mixed body itself. azure-core writes it
  with the email package after running the part policies on a new thread pool per batch, which
  was most of a transaction's CPU (benchmarks/README.md, "One production path"); the bytes are
  the same (tests/storage/test_pipeline.py compares them with azure-core's).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.data.tables
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential, TokenCredential
from azure.core.pipeline import Pipeline, PipelineContext, PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import (
    AzureSasCredentialPolicy,
    BearerTokenCredentialPolicy,
    ContentDecodePolicy,
    DistributedTracingPolicy,
    HeadersPolicy,
    HttpLoggingPolicy,
    RequestIdPolicy,
    RetryPolicy,
    SansIOHTTPPolicy,
    UserAgentPolicy,
)
from azure.core.rest import HttpRequest

STORAGE_SCOPE = "https://storage.azure.com/.default"


class StorageDateHeaders(HeadersPolicy):
    """x-ms-date and Date on every request: Table storage refuses a request without them."""

    def on_request(self, request: PipelineRequest) -> None:
        super().on_request(request)
        now = formatdate(time.time(), usegmt=True)
        request.http_request.headers["x-ms-date"] = now
        request.http_request.headers["Date"] = now


class TableSharedKeySigning(SansIOHTTPPolicy):
    """Signs a request with the account key: Table storage's SharedKey scheme.

    String to sign: the verb, Content-MD5, Content-Type and x-ms-date, one per line, then the
    canonicalized resource (`/account/path`, plus `?comp=...` when the query has it).
    """

    def __init__(self, credential: AzureNamedKeyCredential) -> None:
        self._credential = credential

    def on_request(self, request: PipelineRequest) -> None:
        http_request = request.http_request
        headers = http_request.headers
        url = urlsplit(http_request.url)
        comp = next((value for name, value in parse_qsl(url.query) if name == "comp"), None)
        account, key = self._credential.named_key
        string_to_sign = "\n".join([
            http_request.method,
            headers.get("Content-MD5") or "",
            headers.get("Content-Type") or "",
            headers.get("x-ms-date") or "",
            f"/{account}{url.path}" + (f"?comp={comp}" if comp is not None else ""),
        ])
        digest = hmac.new(base64.b64decode(key), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
        headers["Authorization"] = f"SharedKey {account}:{base64.b64encode(digest).decode('ascii')}"


class PrimaryLocation(SansIOHTTPPolicy):
    """Every request goes to the primary endpoint, and the answer says so.

    azure-data-tables reads `location_mode` from each answer's context (its query pages hand it
    back as `use_location` for the next page); its own clients set both in private policies.
    """

    def on_request(self, request: PipelineRequest) -> None:
        request.context.options.pop("use_location", None)

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:
        response.context["location_mode"] = "primary"


def credential_policy(credential: AzureNamedKeyCredential | AzureSasCredential | TokenCredential) -> SansIOHTTPPolicy:
    """The policy that authorizes every request with `credential`.

    Raises TypeError for a credential of any other kind.
    """
    if isinstance(credential, AzureNamedKeyCredential):
        return TableSharedKeySigning(credential)
    if isinstance(credential, AzureSasCredential):
        return AzureSasCredentialPolicy(credential)
    if hasattr(credential, "get_token"):
        return BearerTokenCredentialPolicy(credential, STORAGE_SCOPE)
    raise TypeError(f"unsupported storage credential: {type(credential).__name__}")


def storage_policies(credential: Any, *, retry_total: int, retry_backoff_factor: float,
                     retry_backoff_max: float) -> list:
    """The policies of every storage request, in the order azure-data-tables' own clients run them.

    Left out of the SDK's list, because they would only cost time here: the proxy policy (the
    transport takes the proxy from the environment), redirects (storage does not redirect, and a
    signed request must not follow one elsewhere), per-request hooks and network-trace logging
    (the app passes neither `raw_request_hook` nor `logging_enable`). HTTP logging stays: raising
    its logger to INFO shows every storage request and answer, headers redacted.
    """
    return [
        RequestIdPolicy(),
        StorageDateHeaders(),
        UserAgentPolicy(sdk_moniker=f"data-tables/{azure.data.tables.__version__}"),
        credential_policy(credential),
        ContentDecodePolicy(response_encoding="utf-8"),
        PrimaryLocation(),
        RetryPolicy(retry_total=retry_total, retry_backoff_factor=retry_backoff_factor,
                    retry_backoff_max=retry_backoff_max),
        DistributedTracingPolicy(),
        HttpLoggingPolicy(),
    ]


def serialized_sub_request(request: Any) -> bytes:
    """One operation of a batch in application/http form, as azure-core's serializer writes it.

    ValueError for a body that is not bytes or text (a stream), or a header value with a line break.
    """
    body = request.content
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif body is not None and not isinstance(body, (bytes, bytearray)):
        raise ValueError("a batch operation with a streamed body")
    lines = [f"{request.method} {request.url} HTTP/1.1"]
    for name, value in request.headers.items():
        if name.lower() in ("host", "accept-encoding"):
            continue
        value = str(value)
        if "\r" in value or "\n" in value:
            raise ValueError("a header value with a line break")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + bytes(body or b"")


def batch_body(request: Any, content_index: int = 0) -> tuple[bytes, int]:
    """(body, next Content-ID) of a multipart/mixed request whose part policies have run, laid out as azure-core lays it out."""
    requests, _, boundary, _ = request.multipart_mixed_info
    if not boundary:
        raise ValueError("a batch without a boundary")
    pieces = []
    for sub_request in requests:
        if getattr(sub_request, "multipart_mixed_info", None):
            nested, content_index = batch_body(sub_request, content_index)
            pieces.append(f"Content-Type: multipart/mixed; boundary={sub_request.multipart_mixed_info[2]}\r\n\r\n"
                          .encode("latin-1") + nested)
        else:
            pieces.append(b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
                          + f"Content-ID: {content_index}\r\n\r\n".encode("latin-1")
                          + serialized_sub_request(sub_request))
            content_index += 1
    delimiter = b"--" + boundary.encode("latin-1")
    body = delimiter + b"\r\n" + (b"\r\n" + delimiter + b"\r\n").join(pieces) + b"\r\n" + delimiter + b"--\r\n"
    return body, content_index


def _run_part_policies(request: Any) -> None:
    """Each operation through the batch's part policies (nested changesets first), one after another."""
    requests, policies, _, options = request.multipart_mixed_info
    for sub_request in requests:
        if getattr(sub_request, "multipart_mixed_info", None):
            _run_part_policies(sub_request)
        pipeline_request = PipelineRequest(sub_request, PipelineContext(None, **options))
        for policy in policies:
            policy.on_request(pipeline_request)


class StoragePipeline(Pipeline):
    """azure-core's Pipeline, with batch (multipart/mixed) requests written here before they enter it.

    A batch is sent as a plain request whose body is the batch, so azure-core's own writer has
    nothing left to do; the answer keeps the batch's operations and part policies for
    `StorageResponse.parts()` (shared/storage/transport.py).
    """

    def run(self, request: Any, **kwargs: Any) -> PipelineResponse:
        info = getattr(request, "multipart_mixed_info", None)
        if not info:
            return super().run(request, **kwargs)
        _run_part_policies(request)
        body, _ = batch_body(request)
        headers = dict(request.headers)
        headers["Content-Type"] = f"multipart/mixed; boundary={info[2]}"
        response = super().run(HttpRequest(request.method, request.url, headers=headers, content=body), **kwargs)
        response.http_response.batch = (info[0], info[1])
        return response
