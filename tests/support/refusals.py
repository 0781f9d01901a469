"""What a refusal is checked for: an answer in ACS's error shape, and the stored rooms and identities it left as they were."""
from __future__ import annotations

from collections.abc import Iterator


def assert_acs_error(response, status, code=None):
    """`status` with a JSON body {"error": {"code", "message"}}, both non-empty strings; `code` too when given."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers.get("Content-Type")
    error = response.json()["error"]
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    if code is not None:
        assert error["code"] == code, error


def active_rooms(services) -> Iterator:
    """Every active room, page after page, as the app's own services list them."""
    after = None
    while True:
        page = services.rooms.list_active(after, 1000)
        yield from page.items
        if (after := page.after) is None:
            return


def active_room_count(services) -> int:
    return sum(1 for _ in active_rooms(services))


def identity_count(services) -> int:
    """How many rows the Identities table holds."""
    identities = services.tables.table(services.settings.table_name("Identities"))
    return sum(1 for _ in identities.list_entities(select=["RowKey"]))
