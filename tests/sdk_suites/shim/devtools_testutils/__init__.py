"""Live-only stand-in for azure-sdk-for-python's devtools_testutils: just the names the ACS suites import."""
import functools
import os

import pytest

# Both variables are what the real package reads; this shim supports only live runs without recording.
_LIVE = "AZURE_TEST_RUN_LIVE"
_SKIP_RECORDING = "AZURE_SKIP_LIVE_RECORDING"


def is_live() -> bool:
    return os.environ.get(_LIVE, "").lower() == "true"


def is_live_and_not_recording() -> bool:
    return is_live() and os.environ.get(_SKIP_RECORDING, "").lower() == "true"


def require_live_without_recording() -> None:
    # Playback and recording need Microsoft's test proxy and recordings, which we do not have.
    if not is_live_and_not_recording():
        raise RuntimeError(f"this devtools_testutils shim runs only with {_LIVE}=true and {_SKIP_RECORDING}=true")


def recorded_by_proxy(test_func):
    """In live mode without recording the real decorator calls the test as it is; so does this one."""

    @functools.wraps(test_func)
    def run_live(*args, **kwargs):
        require_live_without_recording()
        return test_func(*args, **kwargs)

    return run_live


class AzureRecordedTestCase:
    """Base class of the suites' test cases; they only ask it which mode they run in."""

    def is_playback(self) -> bool:
        return not is_live()


@pytest.fixture(scope="session")
def test_proxy():
    """The real fixture starts the test proxy, which live runs without recording do not use."""
    require_live_without_recording()
    yield


def get_credential(**kwargs):
    # The real helper returns an Entra ID credential; there is no Entra ID tenant behind the local stack.
    raise RuntimeError("no Entra ID credential is available against the local stack")


def _no_recording(*args, **kwargs) -> None:
    """Sanitizers and session settings configure the test proxy's recordings; without recording they do nothing."""


add_body_key_sanitizer = _no_recording
add_general_regex_sanitizer = _no_recording
add_general_string_sanitizer = _no_recording
add_header_regex_sanitizer = _no_recording
add_oauth_response_sanitizer = _no_recording
add_uri_regex_sanitizer = _no_recording
remove_batch_sanitizers = _no_recording
set_default_session_settings = _no_recording
