"""azure.yaml has the structure azd reads (its published schema, v1.0): one Python service hosted as
a Function App from the repository root, Bicep from infra/, and hooks that run scripts that exist."""
from __future__ import annotations

import re
import shlex

import pytest
import yaml

from .conftest import INFRA, ROOT, azd_keys, parse_bicep

HOOK_FIELDS = {"shell", "run", "continueOnError", "interactive", "windows", "posix", "secrets"}
PROJECT_HOOKS = {f"{when}{event}" for when in ("pre", "post")
                 for event in ("restore", "provision", "package", "deploy", "up", "down")}


@pytest.fixture(scope="module")
def project() -> dict:
    return yaml.safe_load((ROOT / "azure.yaml").read_text())


def test_name(project):
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", project["name"])


def test_infra_is_bicep_in_infra(project):
    infra = project.get("infra", {})
    assert infra.get("provider", "bicep") == "bicep"
    folder = ROOT / infra.get("path", "infra")
    module = infra.get("module", "main")
    assert folder == INFRA
    assert (folder / f"{module}.bicep").is_file() and (folder / f"{module}.parameters.json").is_file()


def test_one_python_function_service_from_the_root(project):
    services = project["services"]
    assert list(services) == ["api"]
    service = services["api"]
    assert service["host"] == "function"
    assert service["language"] == "python"
    assert (ROOT / service["project"]).resolve() == ROOT
    for needed in ("function_app.py", "host.json", "requirements.txt", ".funcignore"):
        assert (ROOT / service["project"] / needed).is_file(), needed
    # remoteBuild defaults to true for Python function apps: Azure installs requirements.txt.
    assert service.get("remoteBuild", True) is True


def test_the_function_app_carries_the_service_tag(project):
    """azd deploy finds the app by its azd-service-name tag, which must name this service."""
    [name] = project["services"]
    template = parse_bicep(INFRA / "main.bicep")
    assert template["variables"]["serviceName"]["value"] == name
    assert template["modules"]["functionApp"]["config"]["params"]["serviceName"] == "serviceName"
    app = parse_bicep(INFRA / "modules" / "functionapp.bicep")["resources"]["app"]["config"]
    tagged = app["tags"]["function"]["parameters"]
    # pycep keeps the quotes of a quoted key.
    assert {"'azd-service-name'": "serviceName"} in tagged.values()


def _hook_variants(hook: dict) -> dict[str, dict]:
    assert set(hook) <= HOOK_FIELDS, set(hook) - HOOK_FIELDS
    if "windows" in hook and "posix" in hook:
        assert not set(hook) - {"windows", "posix"}, "with both variants nothing else may be set"
        return {"windows": hook["windows"], "posix": hook["posix"]}
    return {"any": hook}


@pytest.mark.parametrize("event, command", [("preprovision", "ensure"), ("postprovision", "connection-string")])
def test_hooks_run_the_keys_script(project, event, command):
    variants = _hook_variants(project["hooks"][event])
    assert set(variants) == {"windows", "posix"}
    for platform, hook in variants.items():
        assert set(hook) <= HOOK_FIELDS - {"windows", "posix"}
        assert hook["shell"] == ("pwsh" if platform == "windows" else "sh")
        words = shlex.split(hook["run"])
        assert words[0] == ("python" if platform == "windows" else "python3")
        assert (ROOT / words[1]).is_file(), words[1]
        assert words[2:] == [command]
        # The subcommand exists in the script.
        assert command in (ROOT / words[1]).read_text()


def test_only_known_hooks(project):
    assert set(project["hooks"]) <= PROJECT_HOOKS


def test_hook_script_runs_on_old_pythons():
    """The hook runs under whatever python3 the deployer has: no 3.10+ syntax outside annotations."""
    import ast

    source = (INFRA / "hooks" / "azd_keys.py").read_text()
    tree = ast.parse(source, feature_version=(3, 9))
    assert "from __future__ import annotations" in source
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    import sys

    # Standard library only, but for the optional `cryptography` (OpenSSL is the fallback).
    assert imported - {"cryptography", "__future__"} <= set(sys.stdlib_module_names)
    assert azd_keys().MAKERS
