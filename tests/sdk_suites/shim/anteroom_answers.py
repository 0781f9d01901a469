"""Pytest plugin for Microsoft's suites' run: the project's answer check (tests/support/answers.py), loaded by path.

The suites' pytest runs with only this shim on its path (their own `tests` package must not meet
ours), so the check's module, which imports nothing of the project, is loaded from its file.
"""
import importlib.util
import sys
from pathlib import Path

_FILE = Path(__file__).resolve().parents[2] / "support" / "answers.py"
_spec = importlib.util.spec_from_file_location("anteroom_answer_check", _FILE)
_check = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _check  # dataclasses look their module up while the file runs
_spec.loader.exec_module(_check)

globals().update({name: value for name, value in vars(_check).items() if name.startswith("pytest_")})
