"""checkov's Bicep checks over infra/: nothing fails, every template parses for it, and each
skipped check is one we decided on, with its reason written beside it in the template.

checkov pins versions that clash with this suite's (packaging<24 against pytest 9), so it lives
in its own virtual environment, `.venv-checkov/`, which `make setup` installs from
requirements-checkov.txt. CHECKOV names another checkov executable. About 10 s.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import INFRA, ROOT

# Every check the templates skip, with the resources skipping it. A new skip must be added
# here too: the reason goes beside it in the template, as `// checkov:skip=ID:reason`.
EXPECTED_SKIPS = {
    "CKV_AZURE_17": {"Microsoft.Web/sites.app"},
    "CKV_AZURE_35": {"Microsoft.Storage/storageAccounts.storage"},
    "CKV_AZURE_41": {"Microsoft.KeyVault/vaults/secrets.accessKeySecret",
                     "Microsoft.KeyVault/vaults/secrets.secondaryAccessKeySecret",
                     "Microsoft.KeyVault/vaults/secrets.tokenSigningKeySecret",
                     "Microsoft.KeyVault/vaults/secrets.callbackSigningKeySecret"},
    "CKV_AZURE_42": {"Microsoft.KeyVault/vaults.vault"},
    "CKV_AZURE_59": {"Microsoft.Storage/storageAccounts.storage"},
    "CKV_AZURE_109": {"Microsoft.KeyVault/vaults.vault"},
    "CKV_AZURE_110": {"Microsoft.KeyVault/vaults.vault"},
    "CKV_AZURE_189": {"Microsoft.KeyVault/vaults.vault"},
    "CKV_AZURE_193": {"Microsoft.EventGrid/topics.topic"},
    "CKV_AZURE_206": {"Microsoft.Storage/storageAccounts.storage"},
    "CKV_AZURE_212": {"Microsoft.Web/sites.app"},
    "CKV_AZURE_213": {"Microsoft.Web/sites.app"},
    "CKV_AZURE_222": {"Microsoft.Web/sites.app"},
    "CKV_AZURE_225": {"Microsoft.Web/serverfarms.plan"},
}
# Checks that must keep passing: the properties the deployment's security rests on.
MUST_PASS = {
    "CKV_AZURE_3",    # storage: HTTPS only
    "CKV_AZURE_44",   # storage: TLS 1.2
    "CKV_AZURE_34",   # the deployment container is private
    "CKV_AZURE_70",   # Function App: HTTPS only
    "CKV_AZURE_145",  # Function App: TLS 1.2
    "CKV_AZURE_71",   # Function App: managed identity
    "CKV_AZURE_78",   # Function App: no FTP deployments
    "CKV_AZURE_192",  # Event Grid topic: local (key) auth disabled
    "CKV_AZURE_111",  # Key Vault: soft delete
    "CKV_AZURE_114",  # secrets: content type set
    "CKV_AZURE_131",  # secure parameters: no default value
}


def _checkov() -> str:
    candidates = [os.environ.get("CHECKOV"), ROOT / ".venv-checkov" / "bin" / "checkov", shutil.which("checkov")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail("checkov not found: `make setup` installs it into .venv-checkov/ (or set CHECKOV)")


@pytest.fixture(scope="module")
def report(starts_processes) -> dict:
    env = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "LOG_LEVEL": "WARNING"}
    result = subprocess.run(
        [_checkov(), "--directory", str(INFRA), "--framework", "bicep", "--output", "json", "--skip-download"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    # 0: all passed; 1: some failed (reported below); anything else is checkov itself failing.
    assert result.returncode in (0, 1), result.stderr[-3000:]
    document = json.loads(result.stdout)
    return document[0] if isinstance(document, list) else document


def test_every_template_parsed(report):
    """checkov drops a template it cannot parse from the scan, listing it only here."""
    assert report["summary"]["parsing_errors"] == 0, report["results"].get("parsing_errors")
    checked = {Path(c["file_path"]).name for c in report["results"]["passed_checks"] + report["results"]["skipped_checks"]}
    # checkov has no checks for identities, Log Analytics, Application Insights or role assignments.
    assert {"functionapp.bicep", "storage.bicep", "keyvault.bicep", "eventgrid.bicep"} <= checked


def test_no_check_fails(report):
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
              for c in report["results"]["failed_checks"]]
    assert not failed, "\n".join(failed)


def test_skips_are_the_decided_ones_each_with_a_reason(report):
    skipped: dict[str, set[str]] = {}
    for check in report["results"]["skipped_checks"]:
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason.strip()) > 20 and reason != "No comment provided", f"{check['check_id']}: {reason!r}"
        skipped.setdefault(check["check_id"], set()).add(check["resource"])
    assert skipped == EXPECTED_SKIPS


def test_the_security_checks_pass(report):
    passed = {c["check_id"] for c in report["results"]["passed_checks"]}
    assert MUST_PASS <= passed, sorted(MUST_PASS - passed)
