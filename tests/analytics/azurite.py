"""Starts a throw-away in-memory Azurite Table service on a free loopback port for storage tests."""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

from tests.support.answers import ANSWERS

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "devstoreaccount1"
# Azurite's fixed, publicly documented development key (not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _command(port: int) -> list[str]:
    args = ["--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck",
            "--tableHost", "127.0.0.1", "--tablePort", str(port)]
    local = ROOT / "node_modules" / ".bin" / "azurite-table"
    if local.exists():
        return [str(local), *args]
    # No `npm ci` yet: fetch the same pinned version from the npm registry.
    return [shutil.which("npx") or "npx", "--yes", "-p", "azurite@3.37.0", "azurite-table", *args]


@contextlib.contextmanager
def azurite_tables(start_timeout: float = 60.0) -> Iterator[str]:
    """Yield a connection string to a fresh Azurite Table service; stops it afterwards.

    Raises RuntimeError if Azurite does not listen within `start_timeout` seconds.
    """
    port = _free_port()
    with tempfile.TemporaryDirectory() as workdir:
        process = subprocess.Popen(
            _command(port), cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"Azurite exited early: {process.stderr.read().decode(errors='replace')}")
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Azurite did not listen on port {port} within {start_timeout} s")
                time.sleep(0.1)
            endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
            ANSWERS.tooling(endpoint, "Azurite")
            yield f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};TableEndpoint={endpoint};"
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
