"""Storage faults as the API answers them: an unreachable or failing Table service is a 503, never a 500."""
from __future__ import annotations

import contextlib
from typing import Iterator

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from ..core.errors import service_unavailable


@contextlib.contextmanager
def storage_faults() -> Iterator[None]:
    """Turn an unreachable or failing storage service into a 503 with Retry-After (never a 500)."""
    try:
        yield
    except (ServiceRequestError, ServiceResponseError) as error:
        raise service_unavailable("The storage service is unavailable; retry later.") from error
    except HttpResponseError as error:
        if error.status_code is not None and error.status_code >= 500:
            raise service_unavailable("The storage service is unavailable; retry later.") from error
        raise
