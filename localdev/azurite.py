"""Start and stop Azurite's Table service (from the repo's node_modules) on 127.0.0.1.

Azurite runs under a guardian (localdev/azurite_guardian.py) that gives it exactly one SIGINT, so it
saves its data, when this process stops it or dies in any way.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"

# Azurite's fixed development account (public, documented by Microsoft).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsu"
               "Fq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")


GUARDIAN = Path(__file__).resolve().with_name("azurite_guardian.py")
GUARDIAN_LOG_FILE = "localdev-azurite-guardian.log"
_logger = logging.getLogger("localdev")


class AzuriteNotInstalled(RuntimeError):
    """node_modules (with azurite) is missing."""


class AzuriteStartError(RuntimeError):
    """Azurite exited or did not accept connections in time."""


def free_port(host: str = LOOPBACK) -> int:
    """A port that was free a moment ago (Azurite cannot bind port 0 and tell us which)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class AzuriteTable:
    """Azurite's Table service as a grandchild, under a guardian in a session of its own.

    `location=None` keeps data in memory; otherwise data lives in that folder and survives
    restarts, also when this process is killed (SIGKILL, OOM): the guardian notices and makes
    Azurite save. `port=0` picks a free port. `save_timeout`: how long Azurite may take to save
    and exit on stop before it is SIGKILLed. `process` is the guardian.
    """

    def __init__(self, *, location: str | os.PathLike[str] | None = None, port: int = 0,
                 repo_root: str | os.PathLike[str] = REPO_ROOT,
                 startup_timeout: float = 30.0, save_timeout: float = 60.0) -> None:
        self.location = Path(location).resolve() if location is not None else None
        self.requested_port = port
        self.port: int | None = None
        self.executable = Path(repo_root) / "node_modules" / ".bin" / "azurite-table"
        self.startup_timeout = startup_timeout
        self.save_timeout = save_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._control: int | None = None  # write end of the guardian's pipe; only we hold it
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise RuntimeError("Azurite is not running")
        return f"http://{LOOPBACK}:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};"
                f"AccountKey={ACCOUNT_KEY};TableEndpoint={self.endpoint};")

    def _command(self, port: int) -> list[str]:
        command = [str(self.executable), "--tableHost", LOOPBACK, "--tablePort", str(port),
                   "--disableTelemetry", "--skipApiVersionCheck", "--silent"]
        if self.location is None:
            command.append("--inMemoryPersistence")
        else:
            command += ["--location", str(self.location)]
        return command

    def start(self) -> "AzuriteTable":
        if self.process is not None:
            return self
        if not self.executable.exists():
            raise AzuriteNotInstalled(
                f"{self.executable} not found: run `npm ci` in {self.executable.parents[2]} "
                "to install Azurite")
        try:
            if self.location is not None:
                self.location.mkdir(parents=True, exist_ok=True)
            # A free port can be taken between probing and Azurite binding it; retry then.
            attempts = 3 if self.requested_port == 0 else 1
            for attempt in range(attempts):
                port = self.requested_port or free_port()
                try:
                    self._launch(port)
                    self._wait_until_ready(port)
                except AzuriteStartError:
                    self._stop_guardian()
                    if attempt == attempts - 1:
                        raise
                    continue
                self.port = port
                return self
            raise AssertionError("unreachable")
        except BaseException:
            self.stop()
            raise

    def _launch(self, port: int) -> None:
        self._log = tempfile.TemporaryFile()
        control_read, self._control = os.pipe()  # both non-inheritable: no other child gets them
        command = [sys.executable, "-I", str(GUARDIAN), "--control-fd", str(control_read),
                   "--save-timeout", str(self.save_timeout)]
        if self.location is not None:
            command += ["--log", str(self.location / GUARDIAN_LOG_FILE)]
        try:
            self.process = subprocess.Popen(
                [*command, "--", *self._command(port)],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                cwd=self.location or tempfile.gettempdir(),
                pass_fds=(control_read,),
                start_new_session=True,  # neither Ctrl-C nor a closed terminal reaches it
            )
        finally:
            os.close(control_read)

    def _wait_until_ready(self, port: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AzuriteStartError(
                    f"azurite-table exited with {self.process.returncode}: {self.output()}")
            try:
                with socket.create_connection((LOOPBACK, port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise AzuriteStartError(f"azurite-table did not listen on port {port} within "
                                f"{self.startup_timeout:.0f} s: {self.output()}")

    def output(self) -> str:
        """What Azurite and its guardian printed so far (errors only: access logs are silenced)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()

    def _stop_guardian(self, timeout: float | None = None) -> None:
        """Close the guardian's pipe (it SIGINTs Azurite once and waits) and wait for it to exit."""
        process, self.process = self.process, None
        if self._control is not None:
            os.close(self._control)
            self._control = None
        if process is not None:
            try:
                process.wait(self.save_timeout + 10 if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                _logger.warning("Azurite's guardian (pid %d) did not exit in time; killing it and Azurite",
                                process.pid)
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self, timeout: float | None = None) -> None:
        """Azurite saves its data and exits (SIGKILLed after `save_timeout`).

        `timeout` bounds the wait for the guardian (default: `save_timeout` plus 10 s).
        """
        self._stop_guardian(timeout)
        self.port = None

    def __enter__(self) -> "AzuriteTable":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

