"""The machine-readable description of a running instance: `<state-dir>/instance.json` (mode 600).

`python -m localdev run` writes it once everything is ready (seed imported included) and removes it
when it stops; `python -m localdev describe` prints it. Programs read this file, never log text.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..files import write_atomically

INSTANCE_FILE_NAME = "instance.json"
FORMAT_VERSION = 1


class NotRunning(RuntimeError):
    """No instance is running on that state dir (no description, or its process is gone)."""


def instance_file(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir).resolve() / INSTANCE_FILE_NAME


def write_description(state_dir: str | os.PathLike[str], description: dict[str, Any]) -> Path:
    path = instance_file(state_dir)
    write_atomically(path, (json.dumps(description, indent=2) + "\n").encode(), 0o600)
    return path


def remove_description(state_dir: str | os.PathLike[str], pid: int | None = None) -> None:
    """Remove the file, only if it describes this process (`pid`) when given."""
    path = instance_file(state_dir)
    if pid is not None:
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("pid") != pid:
                return
        except (OSError, ValueError):
            return
    path.unlink(missing_ok=True)


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_description(state_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The description of the instance running on `state_dir`; NotRunning otherwise."""
    path = instance_file(state_dir)
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotRunning(f"no instance is running on {path.parent} (no {path.name})") from None
    except ValueError as error:
        raise NotRunning(f"{path} is not valid JSON: {error}") from None
    if not _alive(description.get("pid")):
        raise NotRunning(f"{path} describes process {description.get('pid')}, which is not running")
    return description
