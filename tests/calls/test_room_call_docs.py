"""The README's room-call tables say what the code does: capability per action, capabilities per role, every error code."""
from __future__ import annotations

import re
from pathlib import Path

from functions.errors import ROOM_CALLS_ERRORS
from shared.calls.model import PHONE_CAPABILITIES, ROLE_CAPABILITIES
from shared.calls.service import DIAL_OUT_CAPABILITY, INVITE_CAPABILITY, REMOTE_ACTIONS, SELF_ACTIONS
from shared.core.errors import DomainError

README = Path(__file__).resolve().parents[2] / "README.md"


def table_after(heading_text: str, first_column: str) -> list[list[str]]:
    """The cells of the first table after `heading_text` whose header starts with `first_column`."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == heading_text)
    header = next(i for i in range(start, len(lines)) if lines[i].startswith(f"| {first_column} |"))
    rows = []
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def first_code(cell: str) -> str | None:
    """The first `backticked` word of a cell; None when the cell starts with "none"."""
    if cell.startswith("none"):
        return None
    return re.match(r"`([^`]+)`", cell).group(1)


def test_the_capability_of_each_action_is_the_codes():
    from_code = {f"me/{action}": capability for action, capability in SELF_ACTIONS.items()}
    from_code |= {f"participants/{{participantId}}/{action}": capability for action, capability in REMOTE_ACTIONS.items()}
    from_code |= {"invitations": INVITE_CAPABILITY, "dialOut": DIAL_OUT_CAPABILITY, "join": None, "": None}
    documented = {}
    for request, capability in table_after("### What each action needs", "Request"):
        method, path = request.strip("`").split(" ")
        action = path.removeprefix("/roomCalls/{roomId}").removeprefix("/")
        assert (method == "GET") == (action == ""), request
        documented[action] = first_code(capability)
    assert documented == {action: c.value if c else None for action, c in from_code.items()}


def test_the_capabilities_of_each_role_are_the_codes():
    from_code = {role.value: {c.value for c in granted} for role, granted in ROLE_CAPABILITIES.items()}
    from_code["a phone (no role)"] = {c.value for c in PHONE_CAPABILITIES}
    documented = {role: set(re.findall(r"`([^`]+)`", capabilities))
                  for role, capabilities in table_after("### What each action needs", "Role")}
    assert documented == from_code


def answer_to(error_type: type[DomainError]):
    """The room-call API's answer to an error of this type (any facts will do: only status and code are read)."""
    error = error_type.__new__(error_type)
    DomainError.__init__(error, "a reason")
    error.target, error.capability, error.retry_after = None, "unmuteMic", 1
    return ROOM_CALLS_ERRORS.http_error(error)


def test_every_room_call_error_code_is_documented_with_its_status():
    answers = {(answer.status, answer.code) for answer in map(answer_to, ROOM_CALLS_ERRORS.error_types)}
    documented = {(int(status), first_code(code)) for status, code, _ in table_after("### Room-call errors", "Status")}
    assert answers <= documented, f"not in the README: {sorted(answers - documented)}"
    # Beyond the table: only what HTTP itself refuses, before the room-call API's code runs.
    assert documented - answers == {(413, "RequestEntityTooLarge"), (415, "UnsupportedMediaType")}
