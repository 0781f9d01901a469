"""Every answer the tests get from the app, checked against the app's served OpenAPI document (a pytest plugin).

The app's base URLs are registered with `ANSWERS.serve(base_url, ca_file)` (the stack fixture does it):
each answer from one of them is validated with openapi-core against the document that host serves at
`/openapi.json`: the status must be documented for the operation, and headers and body must match its
response (error bodies included); a request the document has no operation for must get the host's
405 (a method the path lacks) or 404 (a path it lacks) with an ACS error body. Answers from the local
tooling (PSTN simulator, Event Grid topic, console, control plane, Azurite), which the document does
not describe, are skipped by base URL once registered with `ANSWERS.tooling(base_url, name)`.
Answers from any other origin are counted and named in the summary, not checked.

Two hooks see the answers: a response hook on every requests Session (the sync SDK clients' transport
is one) and a client middleware on every aiohttp ClientSession (the async SDK clients' transport).
A mismatch fails the test (setup, call or teardown) during which the answer came; the terminal summary
prints how many answers were validated.

This module imports nothing of the project: Microsoft's SDK suites, run in a pytest subprocess,
load it too (tests/sdk_suites/shim/anteroom_answers.py) and report their counts back through the
file named by ANTEROOM_ANSWERS_REPORT.
"""
from __future__ import annotations

import collections
import json
import os
import re
import ssl
import threading
import urllib.request
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
import requests.sessions
from jsonschema import Draft202012Validator
from openapi_core import OpenAPI
from openapi_core.exceptions import OpenAPIError
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.testing import MockRequest, MockResponse

SERVICE_URL_VARIABLE = "ANTEROOM_ANSWERS_SERVICE"  # a base URL to check, for a pytest subprocess
CA_FILE_VARIABLE = "ANTEROOM_ANSWERS_CA_FILE"
REPORT_VARIABLE = "ANTEROOM_ANSWERS_REPORT"  # where a pytest subprocess writes its counts and mismatches


class AnswerMismatch(AssertionError):
    """An answer of the app that its own OpenAPI document does not describe."""


@dataclass(frozen=True)
class Answer:
    """One HTTP answer as a client received it."""

    method: str
    url: str
    status: int
    headers: dict[str, str]
    body: bytes

    def describe(self) -> str:
        excerpt = self.body[:600].decode("utf-8", "replace")
        return f"{self.method} {self.url} answered {self.status}: {excerpt}"


class Document:
    """A served OpenAPI document: openapi-core's view of it for the operations, and the rules for
    answers to requests it has no operation for (a method a path lacks: 405 naming in Allow the
    methods the document has for every template the path matches; a path it lacks: 404; both with
    an ACS error body)."""

    def __init__(self, document: dict) -> None:
        self.spec = OpenAPI.from_dict(document)
        self._error_body = Draft202012Validator(
            {"$ref": "#/components/schemas/CommunicationErrorResponse", "components": document["components"]}
        )
        self._methods = [
            (re.compile(re.sub(r"\\{\w+\\}", "[^/]+", re.escape(path))), {m.upper() for m in item if m != "parameters"})
            for path, item in document["paths"].items()
        ]

    def off_document(self, path: str, answer: "Answer") -> str | None:
        """Why the answer to a request without an operation breaks the rules, or None."""
        allowed = set().union(*(methods for pattern, methods in self._methods if pattern.fullmatch(path)))
        if allowed:
            sent = {m.strip().upper() for m in _header(answer.headers, "Allow").split(",") if m.strip()}
            if answer.status != 405 or sent != allowed:
                return f"a method the path does not document must answer 405 with Allow {sorted(allowed)}"
        elif answer.status != 404:
            return "a path the document does not have must answer 404"
        try:
            problems = [error.message for error in self._error_body.iter_errors(json.loads(answer.body))]
        except ValueError:
            problems = ["the body is not JSON"]
        return f"not an ACS error body: {'; '.join(problems)}" if problems else None


def _header(headers: dict[str, str], name: str) -> str:
    return next((value for key, value in headers.items() if key.lower() == name.lower()), "")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _reasons(error: BaseException) -> list[str]:
    """The schema errors behind an openapi-core error, with where in the body each one is."""
    reasons = []
    seen: BaseException | None = error
    while seen is not None:
        for schema_error in getattr(seen, "schema_errors", ()) or ():
            where = "/".join(str(part) for part in schema_error.absolute_path) or "(body)"
            reasons.append(f"{where}: {schema_error.message}")
        seen = seen.__cause__ or seen.__context__
    return reasons or [f"{type(error).__name__}: {error}"]


class AnswerCheck:
    """Base URLs of the app (validated) and of the tooling (skipped); counts; mismatches not yet reported."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._documents: dict[str, Document] = {}  # app base URL -> its served document
        self._tooling: dict[str, str] = {}  # tooling base URL -> what it is
        self.validated = 0
        self.skipped: collections.Counter[str] = collections.Counter()
        self.other_origins: collections.Counter[str] = collections.Counter()
        self.mismatches: list[str] = []  # every one so far, for a subprocess's report
        self._pending: list[str] = []  # those the running test has not failed on yet
        self.by_subprocess: collections.Counter[str] = collections.Counter()  # suite -> answers validated there

    # -- registration ---------------------------------------------------------------------------
    def serve(self, base_url: str, ca_file: str | None = None, *, document: dict | None = None) -> None:
        """Check every answer from `base_url` against the document it serves (fetched now, outside the
        hooks), or against `document`."""
        base = base_url.rstrip("/")
        if document is None:
            context = ssl.create_default_context(cafile=ca_file) if base.startswith("https:") else None
            with urllib.request.urlopen(base + "/openapi.json", timeout=30, context=context) as served:
                document = json.load(served)
        with self._lock:
            self._documents[base.lower()] = Document(document)

    def forget(self, base_url: str) -> None:
        with self._lock:
            self._documents.pop(base_url.rstrip("/").lower(), None)

    def tooling(self, base_url: str, name: str) -> None:
        """Skip the answers from `base_url`: local tooling the app's document does not describe."""
        with self._lock:
            self._tooling[base_url.rstrip("/").lower()] = name

    def _classify(self, url: str) -> tuple[str, Document] | str | None:
        """(base, document) for the app; the tooling's name; None for another origin."""
        lowered = url.lower()
        for base, document in self._documents.items():
            if lowered == base or lowered.startswith(base + "/") or lowered.startswith(base + "?"):
                return base, document
        for base, name in self._tooling.items():
            if lowered == base or lowered.startswith(base + "/") or lowered.startswith(base + "?"):
                return name
        return None

    def wants_body(self, url: str) -> bool:
        """Whether an answer from `url` is the app's (its body is then read to be checked)."""
        return isinstance(self._classify(url), tuple)

    # -- checking -------------------------------------------------------------------------------
    def check(self, answer: Answer) -> None:
        """Validate one answer (or count it as skipped); a mismatch is kept for the running test."""
        found = self._classify(answer.url)
        if not isinstance(found, tuple):
            with self._lock:
                if found is None:
                    self.other_origins[_origin(answer.url)] += 1
                else:
                    self.skipped[found] += 1
            return
        base, document = found
        problem = self.mismatch(document, base, answer)
        with self._lock:
            self.validated += 1
            if problem is not None:
                self.mismatches.append(problem)
                self._pending.append(problem)

    @staticmethod
    def mismatch(document: Document, base: str, answer: Answer) -> str | None:
        """Why `answer` does not match `document`, or None when it does."""
        parts = urlsplit(answer.url)
        path = parts.path.removeprefix(urlsplit(base).path) or "/"
        request = MockRequest(_origin(base), answer.method, path, args=dict(parse_qsl(parts.query, keep_blank_values=True)))
        content_type = _header(answer.headers, "Content-Type") or None
        response = MockResponse(answer.body, status_code=answer.status, headers=answer.headers, content_type=content_type)
        try:
            document.spec.validate_response(request, response)
        except (OperationNotFound, PathNotFound):
            problem = document.off_document(path, answer)
            return f"{answer.describe()}\n  {problem}" if problem else None
        except OpenAPIError as error:
            reasons = "; ".join(_reasons(error))
            return f"{answer.describe()}\n  not as /openapi.json describes it: {reasons}"
        except Exception as error:  # the answer broke the validator itself: it cannot be as documented
            return f"{answer.describe()}\n  could not be checked against /openapi.json: {type(error).__name__}: {error}"
        return None

    def take_pending(self) -> list[str]:
        with self._lock:
            pending, self._pending = self._pending, []
        return pending

    def fail_on_pending(self) -> None:
        pending = self.take_pending()
        if pending:
            raise AnswerMismatch(
                f"{len(pending)} answer(s) of the app do not match its OpenAPI document:\n" + "\n".join(pending)
            )

    def add_subprocess_report(self, name: str, path: str) -> dict:
        """Fold a pytest subprocess's report in (its own tests failed on its mismatches); returns it."""
        with open(path, encoding="utf-8") as file:
            report = json.load(file)
        with self._lock:
            self.by_subprocess[name] += report["validated"]
            self.validated += report["validated"]
            self.mismatches += report["mismatches"]
            self.skipped.update(report["skipped"])
            self.other_origins.update(report["other_origins"])
        return report

    def summary_lines(self) -> list[str]:
        lines = [f"answers validated against the app's /openapi.json: {self.validated}, mismatched: {len(self.mismatches)}"]
        for name, count in sorted(self.by_subprocess.items()):
            lines.append(f"  of them in the {name} subprocess: {count}")
        if self.skipped:
            lines.append("skipped by base URL (local tooling): "
                         + ", ".join(f"{name} {count}" for name, count in sorted(self.skipped.items())))
        if self.other_origins:
            lines.append("not checked, other origins: "
                         + ", ".join(f"{origin} {count}" for origin, count in sorted(self.other_origins.items())))
        return lines

    def report(self) -> dict:
        return {"validated": self.validated, "mismatches": self.mismatches, "skipped": dict(self.skipped),
                "other_origins": dict(self.other_origins)}


ANSWERS = AnswerCheck()


# -- the hooks in the HTTP clients ------------------------------------------------------------------
def _requests_hook(response: requests.Response, *args, **kwargs) -> None:
    if ANSWERS.wants_body(response.url):
        body = response.content  # read now; requests keeps it for the caller
    else:
        body = b""  # never read what is not checked: it may be a stream
    ANSWERS.check(Answer(response.request.method, response.url, response.status_code, dict(response.headers), body))


async def _aiohttp_middleware(request: aiohttp.ClientRequest, handler) -> aiohttp.ClientResponse:
    response = await handler(request)
    url = str(response.url)
    body = await response.read() if ANSWERS.wants_body(url) else b""  # aiohttp keeps the body for the caller
    ANSWERS.check(Answer(request.method, url, response.status, dict(response.headers), body))
    return response


class _Hooks:
    """Puts the hooks into every requests Session and aiohttp ClientSession made while installed."""

    def __init__(self) -> None:
        self._default_hooks = requests.sessions.default_hooks
        self._session_init = aiohttp.ClientSession.__init__

    def install(self) -> None:
        default_hooks, session_init = self._default_hooks, self._session_init

        def hooks_with_check() -> dict:
            hooks = default_hooks()
            hooks["response"].append(_requests_hook)
            return hooks

        def init_with_check(session, *args, middlewares=(), **kwargs) -> None:
            session_init(session, *args, middlewares=(*middlewares, _aiohttp_middleware), **kwargs)

        requests.sessions.default_hooks = hooks_with_check
        aiohttp.ClientSession.__init__ = init_with_check

    def uninstall(self) -> None:
        requests.sessions.default_hooks = self._default_hooks
        aiohttp.ClientSession.__init__ = self._session_init


_HOOKS = _Hooks()


# -- pytest --------------------------------------------------------------------------------------
def pytest_configure(config) -> None:
    _HOOKS.install()
    service = os.environ.get(SERVICE_URL_VARIABLE)
    if service:  # a pytest subprocess checking the answers of the app its parent started
        ANSWERS.serve(service, os.environ.get(CA_FILE_VARIABLE))


def pytest_unconfigure(config) -> None:
    _HOOKS.uninstall()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    try:
        return (yield)
    finally:
        ANSWERS.fail_on_pending()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    finally:
        ANSWERS.fail_on_pending()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    try:
        return (yield)
    finally:
        ANSWERS.fail_on_pending()


_UNREPORTED = pytest.StashKey[list]()


def pytest_sessionfinish(session, exitstatus) -> None:
    # Answers after the last test's teardown (session fixtures closing down) have no test to fail.
    late = ANSWERS.take_pending()
    session.config.stash[_UNREPORTED] = late
    if late:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    report = os.environ.get(REPORT_VARIABLE)
    if report:
        with open(report, "w", encoding="utf-8") as file:
            json.dump(ANSWERS.report(), file)


def pytest_terminal_summary(terminalreporter) -> None:
    if not ANSWERS.validated and not ANSWERS.skipped and not ANSWERS.other_origins:
        return  # no test talked HTTP
    terminalreporter.section("answers checked against the OpenAPI document")
    for line in ANSWERS.summary_lines():
        terminalreporter.write_line(line)
    for problem in terminalreporter.config.stash.get(_UNREPORTED, []):
        terminalreporter.write_line(f"after the last test: {problem}")
