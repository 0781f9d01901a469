"""Azure Table transactions: Azure's limits enforced locally, chunking, and what a lost ETag race looks like."""
from __future__ import annotations

from typing import Iterator, Sequence

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

MAX_TRANSACTION_OPERATIONS = 100


class TransactionTooLarge(ValueError):
    """Raised before sending a transaction Azure would refuse (over 100 operations or several partitions)."""


class ConcurrentChange(Exception):
    """Raised when an entity changed since it was read (ETag mismatch) or another writer holds it;
    `ConflictRetry` (shared/storage/retry.py) re-reads and tries again."""


def check_transaction(operations: Sequence[tuple]) -> None:
    """Enforce Azure's transaction limits locally, because Azurite accepts what Azure refuses.

    Raises TransactionTooLarge for more than 100 operations or more than one PartitionKey.
    """
    if len(operations) > MAX_TRANSACTION_OPERATIONS:
        raise TransactionTooLarge(f"{len(operations)} operations in one transaction; the limit is 100")
    partitions = {operation[1]["PartitionKey"] for operation in operations}
    if len(partitions) > 1:
        raise TransactionTooLarge(f"one transaction spans {len(partitions)} partitions")


def chunked(operations: Sequence[tuple], size: int = MAX_TRANSACTION_OPERATIONS) -> Iterator[list[tuple]]:
    """Split same-partition operations into transactions Azure accepts."""
    for start in range(0, len(operations), size):
        chunk = list(operations[start : start + size])
        check_transaction(chunk)
        yield chunk


def is_conflict(error: Exception) -> bool:
    """True when a create found the entity already there (409): someone else created it first."""
    return isinstance(error, ResourceExistsError) or getattr(error, "status_code", None) == 409


def is_precondition_failure(error: Exception) -> bool:
    """True when an If-Match failed (412): the entity changed since it was read."""
    return getattr(error, "status_code", None) == 412 or isinstance(error, ResourceModifiedError)
