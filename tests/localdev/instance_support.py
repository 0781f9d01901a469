"""A whole `python -m localdev run --in-memory --port 0` instance for the console and control-plane tests,
found through its instance.json exactly as the pytest plugin finds it."""
from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Iterator

import requests

from localdev.pytest_plugin import PACKAGE_ROOT, Anteroom, AnteroomProcess

REPO_ROOT = PACKAGE_ROOT


@contextlib.contextmanager
def running_instance(timeout: float = 90.0, seed: str | None = None) -> Iterator[tuple[Anteroom, AnteroomProcess]]:
    with tempfile.TemporaryDirectory(prefix="anteroom-test-") as state:
        process = AnteroomProcess(Path(state), REPO_ROOT, timeout, seed)
        instance = Anteroom(process.start())
        try:
            yield instance, process
        finally:
            instance.close()
            process.stop()


def console_action(instance: Anteroom, name: str, body: dict | None = None, *, secret: str | None = None) -> requests.Response:
    """POST one of the console page's actions, as the page sends it."""
    base = instance.control_url.removesuffix("/control")
    headers = {"X-Anteroom-Secret": instance.description["secret"] if secret is None else secret}
    return requests.post(f"{base}/api/actions/{name}", json=body or {}, headers=headers, timeout=60)


def state(instance: Anteroom) -> dict:
    base = instance.control_url.removesuffix("/control")
    response = requests.get(f"{base}/api/state", headers={"X-Anteroom-Secret": instance.description["secret"]},
                            timeout=60)
    response.raise_for_status()
    return response.json()
