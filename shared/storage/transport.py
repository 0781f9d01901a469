"""The azure-core transport every Table client of the app shares: the SDK's RequestsTransport, configured once.

The same code carries every storage request, to Azure Storage and to Azurite (HTTPS in development
too). What is configured, and why:

- One requests Session whose connection pool holds as many connections as the host has function
  threads: requests' default keeps 10 and closes the rest after each answer under load.
- The environment is read once, when the transport is built: a Session that trusts it scans
  every variable for proxies, netrc and CA bundles on every request, which was a large part of a
  point read's CPU. Behind a proxy the Session keeps trusting it (no_proxy rules and all).
- The SDK's HTTP logging policy logs every storage request and answer, headers included, at INFO;
  the host logs at INFO, so that logger is raised to WARNING unless someone configured it.
"""
from __future__ import annotations

import logging
import os
import urllib.request
from urllib.parse import urlsplit

import requests
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

# The host runs up to 64 function threads (PYTHON_THREADPOOL_THREAD_COUNT).
DEFAULT_POOL_SIZE = 64
HTTP_LOGGING_LOGGER = "azure.core.pipeline.policies.http_logging_policy"


def _proxied(endpoint: str) -> bool:
    parts = urlsplit(endpoint)
    proxies = urllib.request.getproxies()
    return bool(proxies.get(parts.scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(
        parts.hostname or ""
    )


def _ca_bundle() -> str | bool:
    """What a Session trusting the environment would verify with: the bundle it names, else the default CAs."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def quiet_http_logging() -> None:
    """Keep storage requests and their headers out of the host's INFO log, unless that logger was configured."""
    logger = logging.getLogger(HTTP_LOGGING_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


def storage_transport(endpoint: str, *, connection_timeout: float, read_timeout: float,
                      pool_size: int = DEFAULT_POOL_SIZE) -> RequestsTransport:
    """A RequestsTransport for `endpoint` on a Session sized for the function threads (see the module doc)."""
    session = requests.Session()
    proxied = _proxied(endpoint)
    session.trust_env = proxied
    # Retries are the pipeline's retry policy's job, as in the SDK's own transport.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size,
                          max_retries=Retry(total=False, redirect=False, raise_on_status=False))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return RequestsTransport(
        session=session,
        connection_timeout=connection_timeout,
        read_timeout=read_timeout,
        # Behind a proxy the Session reads the bundle from the environment itself, per request.
        connection_verify=True if proxied else _ca_bundle(),
    )
