"""Storage faults as the domain sees them: an unreachable or failing Table service raises StorageUnavailable."""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from ..core.errors import IdentityUnavailable, StorageUnavailable

log = logging.getLogger("anteroom.storage")


def identity_problem(error: ClientAuthenticationError) -> str:
    """What went wrong with the identity, in words for the log. A credential's error names the
    credentials it tried and why each failed; storage's names its reason. Neither holds a token."""
    if error.status_code is None:
        return f"no Entra token for storage: {error.message}"
    code = error.error_code
    reason = getattr(code, "value", code) or error.reason or ""
    return (f"storage refused the Entra token with {error.status_code} {reason}: check that the identity "
            f"has the Storage Table Data Contributor role on the account (assignments take minutes to apply)")


@contextlib.contextmanager
def storage_faults() -> Iterator[None]:
    """Turn an unreachable storage service, or one answering 5xx, into StorageUnavailable (chained from its error).

    An identity that gets no token, or whose token storage refuses (401, 403), raises
    IdentityUnavailable: like an outage, it is the service's trouble, not the caller's. Other storage errors (404, 409, 412, ...) pass unchanged: the code around them decides what they mean.
    """
    try:
        yield
    except (ServiceRequestError, ServiceResponseError) as error:
        raise StorageUnavailable() from error
    except ClientAuthenticationError as error:
        problem = identity_problem(error)
        log.error("%s", problem)
        raise IdentityUnavailable(problem) from error
    except HttpResponseError as error:
        if error.status_code is not None and error.status_code >= 500:
            raise StorageUnavailable() from error
        raise
