"""Async counterpart of recorded_by_proxy for live runs without recording."""
import functools

from devtools_testutils import require_live_without_recording


def recorded_by_proxy_async(test_func):
    """Awaits the test as it is, as the real decorator does in live mode without recording."""

    @functools.wraps(test_func)
    async def run_live(*args, **kwargs):
        require_live_without_recording()
        return await test_func(*args, **kwargs)

    return run_live
