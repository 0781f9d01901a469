"""A minimal ACS HMAC client over requests, so tests can send what the SDKs never would."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import requests

from shared.auth.hmac import sign_headers
from shared.core.timefmt import format_imf_fixdate


class HmacClient:
    """Signs each request with the stack's access key (or `key`); `sign=False` sends it unsigned."""

    def __init__(self, stack):
        self.base = stack.base_url.rstrip("/")
        self.key = base64.b64decode(stack.access_key)
        self.verify = stack.ca_file

    def send(self, method, path, body=None, headers=None, raw=None, key=None, date=None, sign=True):
        url = self.base + path
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        sent = {"Content-Type": "application/json"} if data else {}
        if sign:
            sent.update(sign_headers(key or self.key, method, url, data, date or format_imf_fixdate(datetime.now(timezone.utc))))
        sent.update(headers or {})
        return requests.request(method, url, data=data, headers=sent, verify=self.verify, timeout=30)
