"""infra/hooks/azd_keys.py: keys made once and valid for the app, never replaced silently, rotated
on request; and the command line azd runs, against a stand-in `azd` that keeps its environment
in a JSON file."""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid

import pytest

from shared.core.keys import load_signing_key

from .conftest import INFRA, ROOT, azd_keys

KEYS = azd_keys()
GENERATED = set(KEYS.MAKERS)


class FakeEnvironment:
    def __init__(self, values: dict[str, str] | None = None):
        self.stored = dict(values or {})
        self.writes: list[str] = []

    def values(self) -> dict[str, str]:
        return dict(self.stored)

    def set(self, name: str, value: str) -> None:
        self.writes.append(name)
        self.stored[name] = value


def _check_valid(values: dict[str, str]) -> None:
    """Each value is what the app's settings accept (README, Settings)."""
    for name in (KEYS.ACCESS_KEY, KEYS.SECONDARY_ACCESS_KEY, KEYS.TOKEN_SIGNING_KEY):
        assert len(base64.b64decode(values[name], validate=True)) == 32, name
    key = load_signing_key(base64.b64decode(values[KEYS.CALLBACK_SIGNING_KEY], validate=True))
    assert key.key_size >= 2048
    assert str(uuid.UUID(values[KEYS.RESOURCE_ID])) == values[KEYS.RESOURCE_ID]


def test_a_new_environment_gets_every_value_once():
    env = FakeEnvironment({"AZURE_ENV_NAME": "dev"})
    sources = KEYS.ensure(env, say=lambda _: None)
    assert set(sources) == GENERATED and set(sources.values()) == {"generated"}
    _check_valid(env.stored)
    first = env.values()
    assert len({first[KEYS.ACCESS_KEY], first[KEYS.SECONDARY_ACCESS_KEY], first[KEYS.TOKEN_SIGNING_KEY]}) == 3

    env.writes.clear()
    assert KEYS.ensure(env, say=lambda _: None) == {}
    assert env.writes == [] and env.values() == first


def test_only_missing_values_are_made():
    env = FakeEnvironment({KEYS.ACCESS_KEY: "kept", KEYS.RESOURCE_ID: "also kept", KEYS.TOKEN_SIGNING_KEY: "  "})
    KEYS.ensure(env, say=lambda _: None)
    assert env.stored[KEYS.ACCESS_KEY] == "kept" and env.stored[KEYS.RESOURCE_ID] == "also kept"
    assert set(env.writes) == {KEYS.SECONDARY_ACCESS_KEY, KEYS.TOKEN_SIGNING_KEY, KEYS.CALLBACK_SIGNING_KEY}


def test_a_provisioned_environment_reads_missing_keys_back_from_the_vault():
    env = FakeEnvironment({KEYS.VAULT_NAME: "kv-abc", KEYS.RESOURCE_ID: str(uuid.uuid4()),
                           KEYS.ACCESS_KEY: "present"})
    asked = []

    def vault(name, secret):
        asked.append((name, secret))
        return f"deployed {secret}"

    sources = KEYS.ensure(env, vault_reader=vault, say=lambda _: None)
    assert set(sources) == {KEYS.SECONDARY_ACCESS_KEY, KEYS.TOKEN_SIGNING_KEY, KEYS.CALLBACK_SIGNING_KEY}
    assert {secret for _, secret in asked} == {"anteroom-secondary-access-key", "anteroom-token-signing-key",
                                               "anteroom-callback-signing-key"}
    assert env.stored[KEYS.TOKEN_SIGNING_KEY] == "deployed anteroom-token-signing-key"
    assert env.stored[KEYS.ACCESS_KEY] == "present"


@pytest.mark.parametrize("missing", [KEYS.ACCESS_KEY, KEYS.RESOURCE_ID])
def test_a_provisioned_environment_never_makes_new_values(missing):
    """An unreadable vault stops provisioning instead of rotating a key (or the resource id)."""
    values = {name: f"value of {name}" for name in GENERATED} | {KEYS.VAULT_NAME: "kv-abc"}
    del values[missing]
    env = FakeEnvironment(values)
    with pytest.raises(KEYS.HookError, match=missing):
        KEYS.ensure(env, vault_reader=lambda *_: None, say=lambda _: None)
    assert env.writes == []


def test_rotate_replaces_one_key_only():
    env = FakeEnvironment()
    KEYS.ensure(env, say=lambda _: None)
    before = env.values()
    KEYS.rotate(env, KEYS.TOKEN_SIGNING_KEY, say=lambda _: None)
    after = env.values()
    assert after[KEYS.TOKEN_SIGNING_KEY] != before[KEYS.TOKEN_SIGNING_KEY]
    assert {k: v for k, v in after.items() if k != KEYS.TOKEN_SIGNING_KEY} == \
           {k: v for k, v in before.items() if k != KEYS.TOKEN_SIGNING_KEY}
    _check_valid(after)
    with pytest.raises(KEYS.HookError):
        KEYS.rotate(env, KEYS.RESOURCE_ID, say=lambda _: None)


@pytest.mark.stack
@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl here")
def test_the_callback_key_can_come_from_openssl():
    """Where the Python running azd's hook has no `cryptography`, OpenSSL makes the RSA key."""
    key = load_signing_key(KEYS.rsa_key_pem_with_openssl())
    assert key.key_size == 2048


def test_connection_string():
    values = {KEYS.ENDPOINT: "https://func-anteroom-x.azurewebsites.net/", KEYS.ACCESS_KEY: "abc="}
    assert KEYS.connection_string(values) == "endpoint=https://func-anteroom-x.azurewebsites.net/;accesskey=abc="
    with pytest.raises(KEYS.HookError):
        KEYS.connection_string({KEYS.ACCESS_KEY: "abc="})


FAKE_AZD = textwrap.dedent('''\
    #!{python}
    """Stand-in for azd's `env get-values --output json` and `env set NAME VALUE`."""
    import json, os, sys
    path = os.environ["FAKE_AZD_ENV"]
    values = json.load(open(path)) if os.path.exists(path) else {{}}
    if sys.argv[1:4] == ["env", "get-values", "--output"]:
        print(json.dumps(values))
    elif sys.argv[1:3] == ["env", "set"] and len(sys.argv) == 5:
        values[sys.argv[3]] = sys.argv[4]
        json.dump(values, open(path, "w"))
    else:
        sys.exit("unexpected: " + " ".join(sys.argv[1:]))
''')


@pytest.fixture
def azd_on_path(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    azd = bin_dir / "azd"
    azd.write_text(FAKE_AZD.format(python=sys.executable))
    azd.chmod(0o755)
    # An Azure CLI that cannot read the vault (not signed in, or no role on it).
    az = bin_dir / "az"
    az.write_text(f"#!{sys.executable}\nimport sys\nsys.exit('ERROR: Please run az login')\n")
    az.chmod(0o755)
    store = tmp_path / "env.json"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_AZD_ENV": str(store)}
    return env, store


def _hook(env, *args):
    # As azure.yaml runs it: from the project root, the script by its path.
    return subprocess.run([sys.executable, str(INFRA / "hooks" / "azd_keys.py"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.stack
def test_the_command_line_as_azd_runs_it(azd_on_path):
    env, store = azd_on_path
    first = _hook(env, "ensure")
    assert first.returncode == 0, first.stderr
    values = json.loads(store.read_text())
    _check_valid(values)
    assert not any(values[name] in first.stdout for name in GENERATED), "a key was printed"

    again = _hook(env, "ensure")
    assert again.returncode == 0 and json.loads(store.read_text()) == values

    values[KEYS.ENDPOINT] = "https://func-anteroom-x.azurewebsites.net/"
    store.write_text(json.dumps(values))
    printed = _hook(env, "connection-string")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == ("connection string: endpoint=https://func-anteroom-x.azurewebsites.net/;"
                                      f"accesskey={values[KEYS.ACCESS_KEY]}")

    rotated = _hook(env, "rotate", KEYS.SECONDARY_ACCESS_KEY)
    assert rotated.returncode == 0, rotated.stderr
    after = json.loads(store.read_text())
    assert after[KEYS.SECONDARY_ACCESS_KEY] != values[KEYS.SECONDARY_ACCESS_KEY]
    assert after[KEYS.ACCESS_KEY] == values[KEYS.ACCESS_KEY]


@pytest.mark.stack
def test_the_command_line_stops_rather_than_rotating(azd_on_path):
    env, store = azd_on_path
    store.write_text(json.dumps({KEYS.VAULT_NAME: "kv-gone"}))
    result = _hook(env, "ensure")
    assert result.returncode == 1
    assert "could not be read" in result.stderr
    assert json.loads(store.read_text()) == {KEYS.VAULT_NAME: "kv-gone"}
