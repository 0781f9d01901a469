"""The app's own keys for an azd environment: made once, kept, rotated only on request.

azure.yaml runs this script (standard library only; Python 3.9+ with `cryptography`, or OpenSSL
on PATH, for the RSA key):

    python infra/hooks/azd_keys.py ensure             # preprovision: make what is missing
    python infra/hooks/azd_keys.py connection-string  # postprovision: print the connection string
    python infra/hooks/azd_keys.py rotate NAME        # a new value for one key, then `azd provision`

The values live in the azd environment (.azure/<env>/.env, never committed), which is what
`azd provision` passes to main.bicep as secure parameters and Key Vault stores. Nothing here ever
replaces a value that exists: a re-provision writes the same keys again. When a value is missing
from an environment that was already provisioned (a new machine, after `azd env refresh`), it is
read back from the Key Vault rather than made anew, so keys never change silently; if the vault
cannot be read, the script stops and says how to proceed.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import uuid
from typing import Callable, Mapping

ACCESS_KEY = "ANTEROOM_ACCESS_KEY"
SECONDARY_ACCESS_KEY = "ANTEROOM_SECONDARY_ACCESS_KEY"
TOKEN_SIGNING_KEY = "ANTEROOM_TOKEN_SIGNING_KEY"
CALLBACK_SIGNING_KEY = "ANTEROOM_CALLBACK_SIGNING_KEY"
RESOURCE_ID = "ANTEROOM_RESOURCE_ID"

# azd environment name -> the Key Vault secret holding it (infra/modules/keyvault.bicep).
VAULT_SECRETS = {
    ACCESS_KEY: "anteroom-access-key",
    SECONDARY_ACCESS_KEY: "anteroom-secondary-access-key",
    TOKEN_SIGNING_KEY: "anteroom-token-signing-key",
    CALLBACK_SIGNING_KEY: "anteroom-callback-signing-key",
}
# Set by main.bicep's outputs once the environment has been provisioned.
VAULT_NAME = "AZURE_KEY_VAULT_NAME"
ENDPOINT = "ANTEROOM_ENDPOINT"
RSA_BITS = 2048


class HookError(Exception):
    """A problem the person running azd has to act on; the message says how."""


def random_key() -> str:
    """Base64 of 32 random bytes: an HMAC access key or the token signing key."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def rsa_key_pem_with_cryptography() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def rsa_key_pem_with_openssl() -> bytes:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise HookError("making the callback signing key needs the Python package `cryptography` "
                        "(pip install cryptography) or OpenSSL on PATH")
    result = subprocess.run([openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{RSA_BITS}"],
                            capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout.startswith(b"-----BEGIN PRIVATE KEY-----"):
        raise HookError(f"openssl genpkey failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def callback_signing_key() -> str:
    """Base64 of a fresh RSA private key PEM (PKCS#8): one line, as app settings want it."""
    try:
        pem = rsa_key_pem_with_cryptography()
    except ImportError:
        pem = rsa_key_pem_with_openssl()
    return base64.b64encode(pem).decode("ascii")


MAKERS: dict[str, Callable[[], str]] = {
    ACCESS_KEY: random_key,
    SECONDARY_ACCESS_KEY: random_key,
    TOKEN_SIGNING_KEY: random_key,
    CALLBACK_SIGNING_KEY: callback_signing_key,
    RESOURCE_ID: lambda: str(uuid.uuid4()),
}


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    executable = shutil.which(command[0])
    if executable is None:
        raise HookError(f"`{command[0]}` is not on PATH")
    return subprocess.run([executable, *command[1:]], capture_output=True, text=True, check=False)


class AzdEnvironment:
    """The current azd environment, read and written through the azd CLI."""

    def values(self) -> dict[str, str]:
        result = _run(["azd", "env", "get-values", "--output", "json"])
        if result.returncode != 0:
            raise HookError(f"azd env get-values failed: {result.stderr.strip()}")
        return {str(k): str(v) for k, v in json.loads(result.stdout or "{}").items()}

    def set(self, name: str, value: str) -> None:
        result = _run(["azd", "env", "set", name, value])
        if result.returncode != 0:
            raise HookError(f"azd env set {name} failed: {result.stderr.strip()}")


def read_from_vault(vault: str, secret: str) -> str | None:
    """A secret's current value through the Azure CLI, or None when it cannot be read."""
    try:
        result = _run(["az", "keyvault", "secret", "show", "--vault-name", vault, "--name", secret,
                       "--query", "value", "--output", "tsv"])
    except HookError:
        return None
    value = result.stdout.strip()
    return value if result.returncode == 0 and value else None


def ensure(env: AzdEnvironment, *, vault_reader: Callable[[str, str], str | None] = read_from_vault,
           say: Callable[[str], None] = print) -> dict[str, str]:
    """Fill in every missing key and the resource id; return what was set (name -> source)."""
    values = env.values()
    missing = [name for name in MAKERS if not values.get(name, "").strip()]
    if not missing:
        say("anteroom keys: all present in the azd environment; nothing changed")
        return {}
    vault = values.get(VAULT_NAME, "").strip()
    chosen: dict[str, str] = {}
    sources: dict[str, str] = {}
    if vault:
        # Provisioned before: the deployed keys are the truth, never new ones.
        unreadable = []
        for name in missing:
            if name == RESOURCE_ID:
                unreadable.append(name)  # an output of main.bicep: `azd env refresh` restores it
                continue
            value = vault_reader(vault, VAULT_SECRETS[name])
            if value is None:
                unreadable.append(name)
            else:
                chosen[name] = value
                sources[name] = f"read from Key Vault {vault}"
        if unreadable:
            raise HookError(
                f"this azd environment was provisioned before (Key Vault {vault}) but lacks "
                f"{', '.join(unreadable)}, and the vault could not be read. Making new values would "
                "change the deployed keys (every client's connection string, every issued token, "
                "every user id for the resource id). Run `azd env refresh`, sign in with `az login` "
                "as someone with Key Vault Secrets User on the vault and run azd again, or set the "
                "values yourself with `azd env set NAME VALUE`. To replace a key on purpose use "
                "`python infra/hooks/azd_keys.py rotate NAME`.")
    else:
        for name in missing:
            chosen[name] = MAKERS[name]()
            sources[name] = "generated"
    for name, value in chosen.items():
        env.set(name, value)
        say(f"anteroom keys: {name} {sources[name]}")
    return sources


def rotate(env: AzdEnvironment, name: str, *, say: Callable[[str], None] = print) -> None:
    """Put a new value of one key in the azd environment; `azd provision` then deploys it."""
    if name == RESOURCE_ID:
        raise HookError(f"{RESOURCE_ID} names every user id of this resource; it is never rotated")
    if name not in VAULT_SECRETS:
        raise HookError(f"unknown key {name}; one of {', '.join(VAULT_SECRETS)}")
    env.set(name, MAKERS[name]())
    say(f"anteroom keys: new {name} in the azd environment. Run `azd provision` to store it in Key "
        "Vault, then restart the app (README, Deploy to Azure, Rotating keys).")


def connection_string(values: Mapping[str, str]) -> str:
    endpoint = values.get(ENDPOINT, "").strip()
    key = values.get(ACCESS_KEY, "").strip()
    if not endpoint or not key:
        raise HookError(f"{ENDPOINT} or {ACCESS_KEY} is missing from the azd environment")
    return f"endpoint={endpoint.rstrip('/')}/;accesskey={key}"


def main(argv: list[str] | None = None, env: AzdEnvironment | None = None) -> int:
    parser = argparse.ArgumentParser(prog="azd_keys.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("ensure", help="make the keys and resource id missing from the azd environment")
    commands.add_parser("connection-string", help="print the connection string clients use")
    rotate_parser = commands.add_parser("rotate", help="put a new value of one key in the azd environment")
    rotate_parser.add_argument("name", choices=sorted(VAULT_SECRETS))
    args = parser.parse_args(argv)
    env = env or AzdEnvironment()
    try:
        if args.command == "ensure":
            ensure(env)
        elif args.command == "rotate":
            rotate(env, args.name)
        else:
            print(f"connection string: {connection_string(env.values())}")
    except HookError as error:
        print(f"azd_keys.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
