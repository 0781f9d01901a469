"""Start and stop Azurite's Table service (from the repo's node_modules) on 127.0.0.1, over HTTPS.

Azurite runs under a guardian (localdev/azurite_guardian.py) that gives it exactly one SIGINT, so it
saves its data, when this process stops it or dies in any way. A data folder is locked for as long
as an Azurite runs on it: a new start waits for the previous Azurite to save and exit.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

from .certs import DevCertificate

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"

# Azurite's fixed development account (public, documented by Microsoft).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsu"
               "Fq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")


GUARDIAN = Path(__file__).resolve().with_name("azurite_guardian.py")
# In the data folder. Held (flock) by Azurite, its guardian and the process that started them, for
# as long as any of them runs: the lock is free once Azurite has saved its data and exited.
DATA_LOCK_FILE = "localdev-azurite.lock"
# Held only by the process that started Azurite: held means a live localdev owns the folder; free
# while the data lock is not means an Azurite whose starter died is still saving.
OWNER_LOCK_FILE = "localdev-owner.lock"
GUARDIAN_LOG_FILE = "localdev-azurite-guardian.log"
_KEPT_FILES = (DATA_LOCK_FILE, OWNER_LOCK_FILE, GUARDIAN_LOG_FILE)
_logger = logging.getLogger("localdev")


class AzuriteNotInstalled(RuntimeError):
    """node_modules (with azurite) is missing."""


class AzuriteStartError(RuntimeError):
    """Azurite exited or did not accept connections in time."""


class AzuriteFolderInUse(AzuriteStartError):
    """Another Azurite still runs on the data folder (a live one, or one that did not finish saving in time)."""


def free_port(host: str = LOOPBACK) -> int:
    """A port that was free a moment ago (Azurite cannot bind port 0 and tell us which)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class AzuriteTable:
    """Azurite's Table service as a grandchild, under a guardian in a session of its own.

    Served over HTTPS with `certificate`'s server certificate, as Azure Storage is: the app and the
    tests reach it through the same transport and TLS checks as Azure, so clients must trust
    `certificate.ca_cert` (REQUESTS_CA_BUNDLE for requests). None only for an instance that is never
    started (the folder lock of `empty_data_folder`).
    `location=None` keeps data in memory; otherwise data lives in that folder and survives
    restarts, also when this process is killed (SIGKILL, OOM): the guardian notices and makes
    Azurite save. `port=0` picks a free port. `save_timeout`: how long Azurite may take to save
    and exit on stop before it is SIGKILLed (default 60 s, 10 s in memory); `lock_timeout`: how long a start waits for a previous
    Azurite on the folder to save and exit. `process` is the guardian.

    `certificate` is the dev certificate Azurite serves HTTPS with. `oauth` turns on Azurite's basic OAuth: Bearer
    tokens are accepted besides the account key (their issuer, audience and lifetime are checked,
    not their signature), as Entra-authenticated clients send them.
    """

    def __init__(self, *, certificate: DevCertificate | None, location: str | os.PathLike[str] | None = None,
                 port: int = 0,
                 repo_root: str | os.PathLike[str] = REPO_ROOT,
                 startup_timeout: float = 30.0, save_timeout: float | None = None,
                 lock_timeout: float = 90.0, oauth: bool = False) -> None:
        self.certificate = certificate
        self.oauth = oauth
        self.location = Path(location).resolve() if location is not None else None
        self.requested_port = port
        self.port: int | None = None
        self.executable = Path(repo_root) / "node_modules" / ".bin" / "azurite-table"
        self.startup_timeout = startup_timeout
        # A big store takes a while to write; one in memory has nothing to write.
        self.save_timeout = save_timeout if save_timeout is not None else 60.0 if location is not None else 10.0
        self.lock_timeout = lock_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._control: int | None = None  # write end of the guardian's pipe; only we hold it
        self._locks: list[int] = []  # owner lock, data lock
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise RuntimeError("Azurite is not running")
        return f"https://{LOOPBACK}:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=https;AccountName={ACCOUNT_NAME};"
                f"AccountKey={ACCOUNT_KEY};TableEndpoint={self.endpoint};")

    def _command(self, port: int) -> list[str]:
        assert self.certificate is not None
        command = [str(self.executable), "--tableHost", LOOPBACK, "--tablePort", str(port),
                   "--cert", str(self.certificate.server_cert), "--key", str(self.certificate.server_key),
                   "--disableTelemetry", "--skipApiVersionCheck", "--silent"]
        if self.oauth:
            command += ["--oauth", "basic"]
        if self.location is None:
            command.append("--inMemoryPersistence")
        else:
            command += ["--location", str(self.location)]
        return command

    def start(self) -> "AzuriteTable":
        if self.process is not None:
            return self
        if self.certificate is None:
            raise ValueError("Azurite serves HTTPS: it needs the dev certificate (localdev.certs.ensure_dev_certificate)")
        if not self.executable.exists():
            raise AzuriteNotInstalled(
                f"{self.executable} not found: run `npm ci` in {self.executable.parents[2]} "
                "to install Azurite")
        try:
            if self.location is not None:
                self.location.mkdir(parents=True, exist_ok=True)
                self._lock_folder()
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

    def _lock_folder(self) -> None:
        """Own the data folder: fail if a live localdev owns it, wait while a previous Azurite saves."""
        assert self.location is not None
        owner = _open_lock(self.location / OWNER_LOCK_FILE)
        self._locks.append(owner)
        if not _try_lock(owner):
            raise AzuriteFolderInUse(
                f"Azurite data folder {self.location} is in use by another running localdev "
                f"(pid {_read_pid(owner) or '?'}); stop it first or use another folder (--state-dir)")
        os.ftruncate(owner, 0)
        os.pwrite(owner, f"{os.getpid()}\n".encode(), 0)
        data = _open_lock(self.location / DATA_LOCK_FILE)
        self._locks.append(data)
        if _try_lock(data):
            return
        # Its starter is gone (the owner lock was free), so that Azurite was told to save and exit.
        _logger.info("waiting up to %g s for the previous Azurite on %s (pid %s) to save its data and exit",
                     self.lock_timeout, self.location, _read_pid(data) or "?")
        started = time.monotonic()
        while not _try_lock(data):
            if time.monotonic() - started > self.lock_timeout:
                raise AzuriteFolderInUse(
                    f"the previous Azurite on {self.location} (pid {_read_pid(data) or '?'}) still runs "
                    f"after {self.lock_timeout:g} s: stop it (kill -INT <pid>) and start again")
            time.sleep(0.05)
        _logger.info("the previous Azurite on %s exited after %.1f s", self.location, time.monotonic() - started)

    def _launch(self, port: int) -> None:
        self._log = tempfile.TemporaryFile()
        control_read, self._control = os.pipe()  # both non-inheritable: no other child gets them
        keep = self._locks[1:]  # the data lock goes on to Azurite, the owner lock stays with us
        command = [sys.executable, "-I", str(GUARDIAN), "--control-fd", str(control_read),
                   "--save-timeout", str(self.save_timeout)]
        for fd in keep:
            command += ["--keep-fd", str(fd)]
        if self.location is not None:
            command += ["--log", str(self.location / GUARDIAN_LOG_FILE)]
        try:
            self.process = subprocess.Popen(
                [*command, "--", *self._command(port)],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                cwd=self.location or tempfile.gettempdir(),
                pass_fds=(control_read, *keep),
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
        """Azurite saves its data and exits (SIGKILLed after `save_timeout`); the folder is unlocked.

        `timeout` bounds the wait for the guardian (default: `save_timeout` plus 10 s).
        """
        self._stop_guardian(timeout)
        locks, self._locks = self._locks, []
        for fd in locks:
            os.close(fd)
        self.port = None

    def __enter__(self) -> "AzuriteTable":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def empty_data_folder(location: str | os.PathLike[str], *, lock_timeout: float = 90.0) -> None:
    """Delete an Azurite data folder's data (`run --fresh`), once no Azurite uses the folder.

    Waits for a previous Azurite to save and exit like a start does; the lock files stay.
    """
    folder = AzuriteTable(certificate=None, location=location, lock_timeout=lock_timeout)
    assert folder.location is not None
    if not folder.location.exists():
        return
    try:
        folder._lock_folder()
        for entry in folder.location.iterdir():
            if entry.name in _KEPT_FILES:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    finally:
        folder.stop()


def _open_lock(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""
