"""The error tables of functions/errors.py: every domain error is answered by some API, every API answers the common ones."""
import pytest

from functions import errors
from shared.core import errors as domain

TABLES = [errors.ROOMS_ERRORS, errors.IDENTITY_ERRORS, errors.ROOM_CALLS_ERRORS,
          errors.CALL_AUTOMATION_ERRORS, errors.EVENTS_ERRORS]


def _domain_error_types():
    found, pending = set(), [domain.DomainError]
    while pending:
        for kind in pending.pop().__subclasses__():
            found.add(kind)
            pending.append(kind)
    return found


def test_every_domain_error_is_answered_by_some_api():
    answered = set().union(*(table.error_types for table in TABLES))
    assert not {kind.__name__ for kind in _domain_error_types() - answered}


@pytest.mark.parametrize("table", TABLES)
def test_every_api_answers_authentication_throttling_bad_requests_and_outages(table):
    for kind in (domain.Denied, domain.Throttled, domain.InvalidRequest, domain.StorageUnavailable,
                 domain.ChangeContended):
        assert kind in table.error_types, kind.__name__


def test_anything_else_is_no_refusal():
    assert errors.ROOMS_ERRORS.http_error(ValueError("a bug")) is None
    refusal = errors.payload_too_large(10)
    assert errors.ROOMS_ERRORS.http_error(refusal) is refusal
