"""Deployment as code, checked offline: the Bicep templates parsed, the azd project read."""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))


@lru_cache(maxsize=None)
def parse_bicep(path: Path) -> dict:
    """pycep's JSON model of one template (parameters, variables, resources, modules, outputs)."""
    from pycep import BicepParser

    return BicepParser().parse(text=path.read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def azd_keys() -> ModuleType:
    """infra/hooks/azd_keys.py, imported by path as azd runs it (it is no package)."""
    spec = importlib.util.spec_from_file_location("azd_keys", INFRA / "hooks" / "azd_keys.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def main_template() -> dict:
    return parse_bicep(INFRA / "main.bicep")


@pytest.fixture(scope="session")
def app_template() -> dict:
    return parse_bicep(INFRA / "modules" / "functionapp.bicep")
