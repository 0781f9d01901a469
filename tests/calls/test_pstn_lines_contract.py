"""The PstnLines contract, on the in-memory twin and on TablePstnLines on Azurite: at most `limit` calls per caller number."""
import threading

import pytest

from shared.calls.memory import MemoryPstnLines
from shared.calls.pstn import TablePstnLines
from shared.core.errors import ConcurrentCallLimitReached

NUMBER, OTHER = "+18005550100", "+18005550101"


@pytest.fixture
def lines(storage):
    return storage.build(lambda _: MemoryPstnLines(limit=2), lambda tables, name: TablePstnLines(tables, name, limit=2))


def test_a_number_has_limit_lines_and_a_released_one_is_free_again(lines):
    lines.acquire(NUMBER, "room|p1")
    lines.acquire(NUMBER, "room|p2")
    with pytest.raises(ConcurrentCallLimitReached):
        lines.acquire(NUMBER, "room|p3")
    lines.acquire(OTHER, "room|p3")  # another number has lines of its own
    lines.release(NUMBER, "room|p1")
    lines.acquire(NUMBER, "room|p3")


def test_acquiring_twice_takes_one_line_and_releasing_what_is_not_held_is_no_error(lines):
    lines.acquire(NUMBER, "room|p1")
    lines.acquire(NUMBER, "room|p1")
    lines.acquire(NUMBER, "room|p2")
    lines.release(NUMBER, "room|p9")
    lines.release(OTHER, "room|p1")
    with pytest.raises(ConcurrentCallLimitReached):
        lines.acquire(NUMBER, "room|p3")


def test_simultaneous_dial_outs_never_share_the_last_line(lines):
    taken, refused = [], []
    barrier = threading.Barrier(6)

    def dial(index):
        barrier.wait()
        try:
            lines.acquire(NUMBER, f"room|p{index}")
            taken.append(index)
        except ConcurrentCallLimitReached:
            refused.append(index)

    threads = [threading.Thread(target=dial, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(taken), len(refused)) == (2, 4)
