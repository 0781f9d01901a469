"""Storage faults as the domain sees them: an unreachable or failing Table service raises StorageUnavailable."""
from __future__ import annotations

import contextlib
from typing import Iterator

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from ..core.errors import StorageUnavailable


@contextlib.contextmanager
def storage_faults() -> Iterator[None]:
    """Turn an unreachable storage service, or one answering 5xx, into StorageUnavailable (chained from its error).

    Other storage errors (404, 409, 412, ...) pass unchanged: the code around them decides what they mean.
    """
    try:
        yield
    except (ServiceRequestError, ServiceResponseError) as error:
        raise StorageUnavailable() from error
    except HttpResponseError as error:
        if error.status_code is not None and error.status_code >= 500:
            raise StorageUnavailable() from error
        raise
