"""The deployment package is complete: assembled as `func azure functionapp publish` and `azd deploy`
do (the project folder minus what .funcignore matches, gitignore syntax), installed from
requirements.txt alone into a fresh virtual environment, and imported there the way the Python
worker indexes a v2 app: every function found with its trigger, route, methods, auth level or
schedule. A runtime import that lives in an ignored folder, or whose package is missing from
requirements.txt, fails here; so does a requirement nothing imports.

Cost: about 15 s, nearly all of it pip resolving and installing requirements.txt (from its cache
once the wheels were fetched); the venv is made without pip (the suite's pip installs into it).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pathspec
import pytest

from tests.conftest import TEST_CERT_DIR

from .conftest import ROOT

# What the package must hold at its top level, and nothing else.
PACKAGE_TOP_LEVEL = {"function_app.py", "host.json", "requirements.txt", "functions", "shared"}

# name: (trigger, methods, route, auth level) for HTTP functions.
HTTP_FUNCTIONS = {
    "CreateRoom": ("POST", "rooms"),
    "ListRooms": ("GET", "rooms"),
    "GetRoom": ("GET", "rooms/{roomId}"),
    "UpdateRoom": ("PATCH", "rooms/{roomId}"),
    "DeleteRoom": ("DELETE", "rooms/{roomId}"),
    "ListParticipants": ("GET", "rooms/{roomId}/participants"),
    "UpdateParticipants": ("PATCH", "rooms/{roomId}/participants"),
    "CreateIdentity": ("POST", "identities"),
    "DeleteIdentity": ("DELETE", "identities/{id}"),
    "IssueAccessToken": ("POST", "identities/{id}/:issueAccessToken"),
    "RevokeAccessTokens": ("POST", "identities/{id}/:revokeAccessTokens"),
    "JoinRoomCall": ("POST", "roomCalls/{roomId}/join"),
    "GetRoomCall": ("GET", "roomCalls/{roomId}"),
    "ActOnSelf": ("POST", "roomCalls/{roomId}/me/{action}"),
    "ActOnParticipant": ("POST", "roomCalls/{roomId}/participants/{participantId}/{action}"),
    "InviteToRoomCall": ("POST", "roomCalls/{roomId}/invitations"),
    "DialOutFromRoomCall": ("POST", "roomCalls/{roomId}/dialOut"),
    "PstnEvent": ("POST", "pstn/events"),
    "ConnectCall": ("POST", "calling/callConnections:connect"),
    "GetCallConnection": ("GET", "calling/callConnections/{callConnectionId}"),
    "HangUpCallConnection": ("DELETE", "calling/callConnections/{callConnectionId}"),
    "TerminateCall": ("POST", "calling/callConnections/{callConnectionId}:terminate"),
    "ListCallParticipants": ("GET", "calling/callConnections/{callConnectionId}/participants"),
    "GetCallParticipant": ("GET", "calling/callConnections/{callConnectionId}/participants/{participantRawId}"),
    "AddCallParticipant": ("POST", "calling/callConnections/{callConnectionId}/participants:add"),
    "RemoveCallParticipant": ("POST", "calling/callConnections/{callConnectionId}/participants:remove"),
    "MuteCallParticipant": ("POST", "calling/callConnections/{callConnectionId}/participants:mute"),
    "CancelAddCallParticipant": ("POST", "calling/callConnections/{callConnectionId}/participants:cancelAddParticipant"),
    "GetCallbackOpenIdConfiguration": ("GET", "calling/.well-known/acsopenidconfiguration"),
    "GetCallbackSigningKeys": ("GET", "calling/keys"),
    "ReplayCallEvents": ("POST", "callEvents:replay"),
    "GetOpenApiDocument": ("GET", "openapi.json"),
}
# name: (NCRONTAB schedule, runOnStartup, useMonitor) for timer functions.
TIMER_FUNCTIONS = {
    "DispatchPendingEvents": ("*/10 * * * * *", True, False),
    "PurgeExpiredRooms": ("0 */5 * * * *", False, False),
    "EndExpiredCalls": ("*/30 * * * * *", True, False),
}

# Runs in the fresh venv with the package as working directory, as the worker does: the script
# root on sys.path, function_app imported, its one FunctionApp indexed. Then every module of the
# package is imported and every absolute import statement (lazy ones inside functions too) must
# resolve, and each module's owning distribution is reported.
PROBE = r'''
import ast, importlib, importlib.metadata, importlib.util, json, os, sys
from pathlib import Path

root = Path.cwd()
sys.path.insert(0, str(root))
import azure.functions as func
import function_app

apps = [value for value in vars(function_app).values() if isinstance(value, func.FunctionRegister)]
assert len(apps) == 1, f"function_app.py must define exactly one FunctionApp, found {len(apps)}"
functions = {}
for function in apps[0].get_functions():
    document = json.loads(function.get_function_json())
    functions[function.get_function_name()] = document["bindings"]

sources = sorted(path for path in root.rglob("*.py"))
for path in sources:
    parts = path.relative_to(root).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    importlib.import_module(name)

owners = {}
for dist in importlib.metadata.distributions():
    for file in dist.files or ():
        owners[str(Path(dist.locate_file(file)).resolve())] = dist.metadata["Name"]

unresolved, used = [], {}
for path in sources:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != "__future__":
            names = [node.module]
        else:
            continue
        for name in names:
            try:
                spec = importlib.util.find_spec(name)
            except ModuleNotFoundError:
                spec = None
            where = f"{path.relative_to(root)}:{node.lineno} imports {name}"
            if spec is None:
                unresolved.append(where)
            elif spec.origin and spec.origin not in ("built-in", "frozen"):
                origin = str(Path(spec.origin).resolve())
                if origin in owners:
                    used.setdefault(owners[origin], []).append(where)
                elif not origin.startswith(str(root)) and "site-packages" in origin:
                    unresolved.append(where + " (no distribution owns it)")
print(json.dumps({"functions": functions, "unresolved": unresolved, "used": used}))
sys.stdout.flush()
os._exit(0)  # do not wait for threads the app may have started
'''


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def package_files(root: Path) -> list[str]:
    """Files of `root` that .funcignore leaves in, as relative POSIX paths."""
    spec = pathspec.GitIgnoreSpec.from_lines((root / ".funcignore").read_text(encoding="utf-8").splitlines())
    kept = []
    for directory, subdirectories, files in os.walk(root):
        relative = Path(directory).relative_to(root).as_posix()
        prefix = "" if relative == "." else relative + "/"
        # An ignored folder is not entered (gitignore cannot re-include inside it).
        subdirectories[:] = sorted(d for d in subdirectories if not spec.match_file(prefix + d + "/"))
        kept.extend(prefix + f for f in sorted(files) if not spec.match_file(prefix + f))
    return kept


def test_funcignore_keeps_the_app_and_leaves_out_local_tooling(tmp_path):
    kept = package_files(ROOT)
    assert {path.split("/")[0] for path in kept} == PACKAGE_TOP_LEVEL
    assert not [path for path in kept if "__pycache__" in path or path.endswith(".pyc")]
    # The matching itself: folders and files that must stay out, wherever a checkout has them.
    spec = pathspec.GitIgnoreSpec.from_lines((ROOT / ".funcignore").read_text().splitlines())
    for ignored in ("localdev/host.py", "tests/conftest.py", "benchmarks/api.py", "node_modules/x/index.js",
                    ".localdev/settings.json", "analytics/cli.py", "notebooks/a.ipynb", "scripts/a.py",
                    "infra/main.bicep", ".venv/bin/python", ".venv-checkov/bin/checkov", "shared/__pycache__/a.pyc",
                    "local.settings.json", ".azure/dev/.env", "requirements-dev.txt", "README.md", ".git"):
        assert spec.match_file(ignored), ignored
    for deployed in ("function_app.py", "host.json", "requirements.txt", "functions/rooms.py", "shared/settings.py"):
        assert not spec.match_file(deployed), deployed


def _requirements(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert not line.startswith("-"), f"requirements.txt must list packages only: {line}"
            names.add(_canonical(re.match(r"[A-Za-z0-9._-]+", line).group()))
    return names


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, starts_processes) -> dict:
    base = tmp_path_factory.mktemp("deployment")
    package = base / "package"
    for relative in package_files(ROOT):
        target = package / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)

    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    # tests/conftest.py points these at the development CA for the local stack; pip must trust
    # whatever this machine's configuration trusts instead.
    pip_env = {key: value for key, value in os.environ.items()
               if not (key in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE") and str(TEST_CERT_DIR) in value)}
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-input",
         "--disable-pip-version-check", "-r", str(package / "requirements.txt")],
        capture_output=True, text=True, env=pip_env, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]

    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    probe = subprocess.run([str(python), "-I", "-c", PROBE], cwd=package, env=env,
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr[-3000:]
    return {**json.loads(probe.stdout.strip().splitlines()[-1]), "package": package}


def test_every_function_is_indexed(indexed):
    found = {}
    for name, bindings in indexed["functions"].items():
        [trigger] = [b for b in bindings if b["type"].endswith("Trigger")]
        if trigger["type"] == "httpTrigger":
            assert [b["type"] for b in bindings if b is not trigger] == ["http"], name
            found[name] = ("httpTrigger", [m.upper() for m in trigger["methods"]], trigger["route"],
                           trigger["authLevel"].lower())
        else:
            found[name] = (trigger["type"], trigger["schedule"], trigger["runOnStartup"], trigger["useMonitor"])
    expected = {name: ("httpTrigger", [method], route, "anonymous") for name, (method, route) in HTTP_FUNCTIONS.items()}
    expected |= {name: ("timerTrigger", *timer) for name, timer in TIMER_FUNCTIONS.items()}
    assert found == expected


def test_every_runtime_import_resolves_in_the_package(indexed):
    assert indexed["unresolved"] == []


def test_requirements_are_exactly_what_the_app_imports(indexed):
    required = _requirements(indexed["package"] / "requirements.txt")
    used = {_canonical(name) for name in indexed["used"]}
    assert used <= required, f"imported but only installed as a dependency: {sorted(used - required)}"
    assert required <= used, f"in requirements.txt but imported by nothing in the package: {sorted(required - used)}"
