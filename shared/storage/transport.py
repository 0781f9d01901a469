"""The azure-core transport every Table client of the app shares: keep-alive http.client connections behind azure-core's public transport interface.

The same code carries every storage request, to Azure Storage and to Azurite (which serves HTTPS
with the development certificate). Why not azure-core's RequestsTransport, or urllib3 under it:
measured per point read on HTTPS Azurite, one thread, CPU (benchmarks/README.md, "One production
path"), RequestsTransport costs about 1.1 ms for the whole read, urllib3's pool 0.21 to 0.24 ms for
the HTTP exchange alone and the standard library's http.client 0.11 ms. Each storage request of the
app paid the difference, five or six per roster change. So this transport keeps only what urllib3
added that the app needs, on http.client:

- one pool of idle connections per host, as many as the host has function threads, a connection
  the server has closed (Azurite closes idle ones after 5 s) noticed before reuse and dropped;
- TLS verified against REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE when set (as requests would) and else
  certifi's CAs; a proxy from the environment (CONNECT for HTTPS); the environment read once;
- every answer read whole (Table answers are small: one entity, a page, a batch), returned as an
  `azure.core.rest.HttpResponse`;
- `StorageResponse.parts()` splits a batch answer on its boundaries, where azure-core's parses it
  with the email package on a new thread pool per batch.

Socket errors become azure-core's (ServiceRequestError when the connection could not be made,
ServiceResponseError once the request was on its way), which the retry policy and
`storage_faults` understand.
"""
from __future__ import annotations

import http.client
import json
import logging
import os
import select
import socket
import ssl
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import certifi
from azure.core.exceptions import (
    HttpResponseError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline import PipelineContext, PipelineRequest, PipelineResponse
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest, HttpResponse
from azure.core.utils import CaseInsensitiveDict

# The host runs up to 64 function threads (PYTHON_THREADPOOL_THREAD_COUNT): a smaller pool closes
# and reopens connections under load.
DEFAULT_POOL_SIZE = 64
HTTP_LOGGING_LOGGER = "azure.core.pipeline.policies.http_logging_policy"


def quiet_http_logging() -> None:
    """Keep storage requests and their headers out of the host's INFO log, unless that logger was configured.

    azure-core's HTTP logging policy logs every request and answer, headers included, at INFO,
    and the host logs at INFO.
    """
    logger = logging.getLogger(HTTP_LOGGING_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


class StorageResponse(HttpResponse):
    """An answer the transport has read whole: status, headers (case-insensitive) and body."""

    def __init__(self, request: HttpRequest, status_code: int, reason: str, headers: CaseInsensitiveDict,
                 content: bytes, batch: tuple | None = None) -> None:
        self._request = request
        self._status_code = status_code
        self._reason = reason
        self._headers = headers
        self._content = content
        self._encoding: str | None = None
        # The batch's sub-requests and part policies (set_multipart_mixed's), for parts().
        self.batch = batch

    @property
    def request(self) -> HttpRequest:
        return self._request

    @property
    def status_code(self) -> int:
        return self._status_code

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def headers(self) -> CaseInsensitiveDict:
        return self._headers

    @property
    def content_type(self) -> str | None:
        return self._headers.get("Content-Type")

    @property
    def url(self) -> str:
        return self._request.url

    @property
    def content(self) -> bytes:
        return self._content

    @property
    def encoding(self) -> str | None:
        return self._encoding

    @encoding.setter
    def encoding(self, value: str | None) -> None:
        self._encoding = value

    @property
    def is_closed(self) -> bool:
        return True

    @property
    def is_stream_consumed(self) -> bool:
        return True

    def text(self, encoding: str | None = None) -> str:
        return self._content.decode(encoding or self._encoding or "utf-8-sig")

    def json(self) -> Any:
        return json.loads(self.text())

    def raise_for_status(self) -> None:
        if self._status_code >= 400:
            raise HttpResponseError(response=self)

    def read(self) -> bytes:
        return self._content

    def iter_raw(self, **kwargs: Any) -> Iterator[bytes]:
        if self._content:
            yield self._content

    iter_bytes = iter_raw

    def close(self) -> None:
        pass

    def __enter__(self) -> StorageResponse:
        return self

    def __exit__(self, *args: object) -> None:
        pass

    def parts(self) -> list[StorageResponse]:
        """The answers inside a batch (multipart/mixed) answer, changesets flattened, in request order.

        Each is matched to its sub-request by position and given to the part policies' on_response,
        as azure-core's own `parts()` does. ValueError if this is not a batch answer.
        """
        if self.batch is None or not (self.content_type or "").startswith("multipart/mixed"):
            raise ValueError("not the answer to a batch request")
        requests, policies = self.batch
        answers = split_batch_answer(self._content, self.content_type or "", requests, self._request)
        for answer in answers:
            context = PipelineContext(None)
            pipeline_request = PipelineRequest(answer.request, context)
            pipeline_response = PipelineResponse(answer.request, answer, context=context)
            for policy in policies:
                policy.on_response(pipeline_request, pipeline_response)
        return answers


def _boundary(content_type: str) -> bytes:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "boundary":
            return value.strip('"').encode("latin-1")
    raise ValueError("a multipart answer without a boundary")


def _header_block(lines: list[bytes]) -> CaseInsensitiveDict:
    headers = CaseInsensitiveDict()
    for line in lines:
        if line:
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon:
                raise ValueError("a malformed header line in a batch answer")
            headers[name.strip()] = value.strip()
    return headers


def _http_answer(request: Any, payload: bytes) -> StorageResponse:
    head, _, body = payload.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    version, _, rest = lines[0].decode("latin-1").partition(" ")
    if not version.startswith("HTTP/"):
        raise ValueError("a batch part that is not an HTTP answer")
    code, _, reason = rest.partition(" ")
    return StorageResponse(request, int(code), reason, _header_block(lines[1:]), body)


def split_batch_answer(body: bytes, content_type: str, requests: list, parent: Any) -> list[StorageResponse]:
    """The HTTP answers of one multipart/mixed level, nested changesets flattened, matched to `requests` by index."""
    delimiter = b"--" + _boundary(content_type)
    segments = body.split(delimiter)
    if len(segments) < 3 or not segments[-1].startswith(b"--"):
        raise ValueError("an incomplete multipart answer")
    answers: list[StorageResponse] = []
    for index, segment in enumerate(segments[1:-1]):
        if not segment.startswith(b"\r\n") or not segment.endswith(b"\r\n"):
            raise ValueError("unexpected multipart framing")
        head, separator, payload = segment[2:-2].partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a batch part without headers")
        part_type = _header_block(head.split(b"\r\n")).get("Content-Type", "")
        request = requests[index] if index < len(requests) else parent
        if part_type == "application/http":
            answers.append(_http_answer(request, payload))
        elif part_type.startswith("multipart/mixed") and getattr(request, "multipart_mixed_info", None):
            answers += split_batch_answer(payload + b"\r\n", part_type, request.multipart_mixed_info[0], parent)
        else:
            raise ValueError(f"unexpected batch part type {part_type!r}")
    return answers


def _proxy_for(endpoint: str) -> tuple[str, int] | None:
    """(host, port) of the proxy the environment names for `endpoint`, or None."""
    parts = urlsplit(endpoint)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    proxy_url = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return proxy_url.hostname or "", proxy_url.port or 80


def _ca_bundle() -> str:
    """The CA file HTTPS is verified with: the one requests would take from the environment, else certifi's."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()


def _closed_by_server(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle keep-alive connection was closed by the other side (its socket reads as ready: EOF)."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class StorageTransport(HttpTransport):
    """Sends azure-core requests to storage endpoints over kept-alive http.client connections; thread-safe, one per process.

    `connection_timeout` and `read_timeout` are seconds; a request may pass its own (the pipeline
    forwards them). The environment (proxy, CA bundle) is read when the transport is built.
    """

    def __init__(self, endpoint: str, *, connection_timeout: float, read_timeout: float,
                 pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.connection_timeout = connection_timeout
        self.read_timeout = read_timeout
        self.pool_size = pool_size
        self._proxy = _proxy_for(endpoint)
        self._ca_file = _ca_bundle()
        self._tls: ssl.SSLContext | None = None
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def open(self) -> None:
        if self._tls is None:
            with self._lock:
                if self._tls is None:
                    self._tls = ssl.create_default_context(cafile=self._ca_file)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def __enter__(self) -> StorageTransport:
        self.open()
        return self

    def __exit__(self, *args: object) -> None:
        # Every Table client of a TableStore shares this transport, and a client leaving its
        # `with` block must not close it for the others: TableStore.close() does.
        pass

    def _new_connection(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        target = self._proxy or (host, port)
        if scheme == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(*target, context=self._tls)
        else:
            connection = http.client.HTTPConnection(*target)
        if self._proxy:
            connection.set_tunnel(host, port)
        return connection

    def _take(self, key: tuple[str, str, int]) -> http.client.HTTPConnection | None:
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                connection = idle.pop()
                if not _closed_by_server(connection):
                    return connection
                connection.close()
        return None

    def _give_back(self, key: tuple[str, str, int], connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.pool_size:
                idle.append(connection)
                return
        connection.close()

    def send(self, request: HttpRequest, **kwargs: Any) -> StorageResponse:
        """Send `request` and read its answer whole.

        Raises ServiceRequestError (ServiceRequestTimeoutError on a timeout) when no connection
        could be made, ServiceResponseError (ServiceResponseTimeoutError) when the answer did not
        arrive whole. The connection goes back to the pool only after a complete answer.
        """
        self.open()
        url = urlsplit(request.url)
        scheme = url.scheme.lower()
        if scheme not in ("https", "http"):
            raise ValueError(f"StorageTransport does not send {scheme!r} URLs")
        key = (scheme, url.hostname or "", url.port or (443 if scheme == "https" else 80))
        body = request.content
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif body is not None and not isinstance(body, (bytes, bytearray)):
            raise ValueError("StorageTransport sends bytes bodies only")
        connection = self._take(key)
        if connection is None:
            connection = self._new_connection(*key)
            connection.timeout = kwargs.get("connection_timeout", self.connection_timeout)
            try:
                connection.connect()
            except (socket.timeout, TimeoutError) as error:
                connection.close()
                raise ServiceRequestTimeoutError(error, error=error) from error
            except OSError as error:  # refused, unreachable, a certificate refused (ssl.SSLError)
                connection.close()
                raise ServiceRequestError(error, error=error) from error
        connection.sock.settimeout(kwargs.get("read_timeout", self.read_timeout))
        target = url.path or "/"
        if url.query:
            target += "?" + url.query
        try:
            connection.request(request.method, target, body=body, headers=request.headers)
            answer = connection.getresponse()
            content = answer.read()
        except (socket.timeout, TimeoutError) as error:
            connection.close()
            raise ServiceResponseTimeoutError(error, error=error) from error
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise ServiceResponseError(error, error=error) from error
        headers = CaseInsensitiveDict(answer.getheaders())
        if answer.will_close:
            connection.close()
        else:
            self._give_back(key, connection)
        return StorageResponse(request, answer.status, answer.reason or "", headers, content)
