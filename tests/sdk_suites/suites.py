"""Fetches Microsoft's ACS SDK test suites from PyPI sdists and runs them live in a pytest subprocess."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Git-ignored, and kept between runs so that only the first run downloads the sdists.
CACHE = ROOT / ".localdev" / "sdk-suites"
SHIM = Path(__file__).resolve().parent / "shim"
SUITE_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class Deselected:
    test: str  # test function name; every parametrization of it is deselected
    reason: str
    parametrized: bool = False


@dataclass(frozen=True)
class Suite:
    name: str
    package: str
    version: str
    test_file: str
    test_class: str
    expected_passed: int
    expected_deselected: int  # collected items, so a parametrized test counts once per parameter set
    deselected: tuple[Deselected, ...] = ()

    def deselect_args(self) -> list[str]:
        args = []
        for item in self.deselected:
            node = f"{self.test_file}::{self.test_class}::{item.test}"
            # --deselect matches node-id prefixes, so "test_x" would also drop "test_x_more": the "["
            # pins parametrized tests, and expected_deselected catches any other over-match.
            args += ["--deselect", node + "[" if item.parametrized else node]
        return args


@dataclass
class SuiteResult:
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # test id -> failure message
    skipped: dict[str, str] = field(default_factory=dict)  # test id -> skip reason
    deselected: int = 0
    output: str = ""
    answers_report: Path | None = None  # the answer check's counts and mismatches (tests/support/answers.py)


def fetch_tests(package: str, version: str, local_ca_file: str) -> Path:
    """The sdist's tests/ folder, downloaded with pip and extracted into the cache on first use."""
    target = CACHE / f"{package}-{version}"
    tests = target / "tests"
    if tests.is_dir():
        return tests
    sdists = target / "sdist"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--no-binary", ":all:", f"{package}=={version}", "-d", str(sdists)],
        # The stack points REQUESTS_CA_BUNDLE (which pip honours) at its own CA; PyPI needs the usual ones.
        env={name: value for name, value in os.environ.items() if value != local_ca_file},
        check=True, timeout=180,
    )
    (archive,) = sdists.glob("*.tar.gz")
    # Extract next to the target and rename, so an interrupted run never leaves a partial tests/ behind.
    with tempfile.TemporaryDirectory(dir=target) as staging, tarfile.open(archive) as sdist:
        members = [m for m in sdist.getmembers() if Path(m.name).parts[1:2] == ("tests",)]
        sdist.extractall(staging, members=members, filter="data")
        (extracted,) = Path(staging).glob("*/tests")
        shutil.move(str(extracted), tests)
    return tests


def suite_env(connection_string: str, ca_file: str, service_url: str, answers_report: Path) -> dict:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")}
    env.update(
        PYTHONPATH=str(SHIM),
        # The shim's anteroom_answers plugin checks every answer of the app against its document.
        ANTEROOM_ANSWERS_SERVICE=service_url,
        ANTEROOM_ANSWERS_CA_FILE=ca_file,
        ANTEROOM_ANSWERS_REPORT=str(answers_report),
        AZURE_TEST_RUN_LIVE="true",
        AZURE_SKIP_LIVE_RECORDING="true",
        COMMUNICATION_CONNECTION_STRING_ROOMS=connection_string,
        COMMUNICATION_LIVETEST_DYNAMIC_CONNECTION_STRING=connection_string,
        # requests (sync clients) and aiohttp (async clients) each read one of these.
        REQUESTS_CA_BUNDLE=ca_file,
        SSL_CERT_FILE=ca_file,
    )
    return env


def run_suite(
    suite: Suite, tests: Path, connection_string: str, ca_file: str, report_dir: Path, service_url: str
) -> SuiteResult:
    report = report_dir / f"{suite.name}.xml"
    answers = report_dir / f"{suite.name}-answers.json"
    command = [
        sys.executable, "-m", "pytest", suite.test_file,
        # Our own ini keeps the project's pytest settings out; rootdir and confcutdir make the
        # sdist's conftest.py load as it does in Microsoft's repository.
        "-c", str(SHIM / "pytest.ini"), "--rootdir", str(tests), "--confcutdir", str(tests),
        "-p", "azure_sdk_conftest", "-p", "anteroom_answers", "-p", "no:cacheprovider",
        "--junitxml", str(report), "-q", "-rfEs",
        *suite.deselect_args(),
    ]
    completed = subprocess.run(
        command, cwd=tests, env=suite_env(connection_string, ca_file, service_url, answers),
        capture_output=True, text=True, timeout=SUITE_TIMEOUT_SECONDS,
    )
    result = SuiteResult(output=completed.stdout + completed.stderr, answers_report=answers if answers.exists() else None)
    summary = re.search(r"(\d+) deselected", completed.stdout)
    result.deselected = int(summary.group(1)) if summary else 0
    if report.exists():
        _read_junit(report, result)
    return result


def _read_junit(report: Path, result: SuiteResult) -> None:
    for case in ElementTree.parse(report).iter("testcase"):
        test_id = f"{case.get('classname')}.{case.get('name')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        skipped = case.find("skipped")
        if problem is not None:
            result.failed[test_id] = problem.get("message") or ""
        elif skipped is not None:
            result.skipped[test_id] = skipped.get("message") or ""
        else:
            result.passed.append(test_id)
