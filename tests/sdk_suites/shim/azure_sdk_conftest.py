"""Pytest plugin standing in for azure-sdk-for-python's root conftest: the test_proxy fixture and live-only markers."""
import pytest

from devtools_testutils import is_live, test_proxy  # noqa: F401  (registers the fixture the suites' conftests request)


def pytest_configure(config):
    config.addinivalue_line("markers", "live_test_only: mark test to be a live test only")
    config.addinivalue_line("markers", "playback_test_only: mark test to be a playback test only")


def pytest_runtest_setup(item):
    if item.get_closest_marker("live_test_only") and not is_live():
        pytest.skip("live test only")
    if item.get_closest_marker("playback_test_only") and is_live():
        pytest.skip("playback test only")
