"""The app's storage pipeline against azure-data-tables' own: the same batch bytes, the same SharedKey signatures, the same transaction answers and errors."""
from __future__ import annotations

import copy
import re
import uuid

import pytest
from azure.core import MatchConditions
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import HttpTransport
from azure.data.tables import EdmType, TableClient, TableTransactionError

from shared.storage.pipeline import StoragePipeline, TableSharedKeySigning, storage_policies
from shared.storage.tables import STORAGE_RETRIES, TableStore

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
ENDPOINT = f"https://127.0.0.1:1/{ACCOUNT}"
CREDENTIAL = AzureNamedKeyCredential(ACCOUNT, KEY)


class Captured(Exception):
    """Raised by the capturing transport once it holds the request."""


class CapturingTransport(HttpTransport):
    """Keeps each request it is given and sends nothing."""

    def __init__(self) -> None:
        self.requests: list = []

    def send(self, request, **kwargs):
        self.requests.append(copy.deepcopy(request))
        raise Captured()

    def open(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *args):
        pass


def _sdk_client(transport: CapturingTransport) -> TableClient:
    """azure-data-tables' client with its own policy list and pipeline."""
    return TableClient(ENDPOINT, "Pipeline", credential=CREDENTIAL, transport=transport)


def _our_client(transport: CapturingTransport) -> TableClient:
    pipeline = StoragePipeline(transport, storage_policies(CREDENTIAL, **STORAGE_RETRIES))
    return TableClient(ENDPOINT, "Pipeline", credential=CREDENTIAL, pipeline=pipeline)


def _sent(client: TableClient, transport: CapturingTransport, call) -> object:
    with pytest.raises(Captured):
        call(client)
    return transport.requests[-1]


OPERATIONS = [
    ("create", {"PartitionKey": "p", "RowKey": "a", "text": "zoë \u2603", "count": 7, "flag": True}),
    ("upsert", {"PartitionKey": "p", "RowKey": "b", "big": (2**40, EdmType.INT64)}),
    ("upsert", {"PartitionKey": "p", "RowKey": "c", "value": 1.5}, {"mode": "replace"}),
    ("update", {"PartitionKey": "p", "RowKey": "d", "value": 2},
     {"etag": 'W/"datetime\'2026-12-02T21%3A00%3A00.0000000Z\'"', "match_condition": MatchConditions.IfNotModified}),
    ("update", {"PartitionKey": "p", "RowKey": "e", "value": 3}, {"mode": "replace"}),
    ("delete", {"PartitionKey": "p", "RowKey": "f"}),
    ("delete", {"PartitionKey": "p", "RowKey": "g"},
     {"etag": 'W/"datetime\'2026-12-02T21%3A00%3A00.0000000Z\'"', "match_condition": MatchConditions.IfNotModified}),
]

# What differs between two sends of the same batch: its boundaries and the dates.
_VARYING = [
    (re.compile(rb"(batch|changeset)_[0-9a-f-]{36}"), rb"\1_B"),
    (re.compile(rb"(x-ms-date|Date): [^\r]+"), rb"\1: D"),
]


def _normalized(data: bytes) -> bytes:
    for pattern, replacement in _VARYING:
        data = pattern.sub(replacement, data)
    return data


def test_a_batch_body_is_byte_for_byte_azure_cores():
    sdk, ours = CapturingTransport(), CapturingTransport()
    theirs = _sent(_sdk_client(sdk), sdk, lambda client: client.submit_transaction(OPERATIONS))
    mine = _sent(_our_client(ours), ours, lambda client: client.submit_transaction(OPERATIONS))
    assert mine.content.count(b"Content-ID") == len(OPERATIONS)
    assert _normalized(mine.content) == _normalized(theirs.content)
    assert _normalized(mine.headers["Content-Type"].encode()) == _normalized(theirs.headers["Content-Type"].encode())
    assert mine.url == theirs.url and mine.method == theirs.method == "POST"


@pytest.mark.parametrize("call", [
    lambda client: client.get_entity("p", "a"),
    lambda client: client.upsert_entity({"PartitionKey": "p", "RowKey": "a", "v": 1}),
    lambda client: client.delete_entity("p", "a"),
    lambda client: list(client.query_entities("PartitionKey eq 'p'")),
    lambda client: client.submit_transaction(OPERATIONS[:2]),
], ids=["get", "upsert", "delete", "query", "transaction"])
def test_requests_are_signed_as_azure_data_tables_signs_them(call):
    sdk, ours = CapturingTransport(), CapturingTransport()
    theirs = _sent(_sdk_client(sdk), sdk, call)
    mine = _sent(_our_client(ours), ours, call)
    # The same headers where they matter to the service (not the ids and dates of this send).
    for name in ("x-ms-version", "DataServiceVersion", "Content-Type", "Accept", "Prefer", "If-Match"):
        assert _normalized(mine.headers.get(name, "").encode()) == _normalized(theirs.headers.get(name, "").encode()), name
    # Our signature of the SDK's own request (its date included) is the SDK's signature.
    resigned = copy.deepcopy(theirs)
    del resigned.headers["Authorization"]
    TableSharedKeySigning(CREDENTIAL).on_request(PipelineRequest(resigned, PipelineContext(None)))
    assert resigned.headers["Authorization"] == theirs.headers["Authorization"]
    assert theirs.headers["Authorization"].startswith(f"SharedKey {ACCOUNT}:")


@pytest.fixture
def sdk_and_ours(azurite):
    """The SDK's own client and the app's, on one fresh table of the session's Azurite."""
    name = "Pipe" + uuid.uuid4().hex[:12]
    store = TableStore(azurite.connection_string)
    ours = store.table(name)
    sdk = TableClient.from_connection_string(azurite.connection_string, name)
    yield sdk, ours
    sdk.close()
    store.close()


@pytest.mark.stack
def test_transaction_answers_are_read_as_the_sdk_reads_them(sdk_and_ours):
    sdk, ours = sdk_and_ours
    for client, partition in ((sdk, "sdk"), (ours, "ours")):
        operations = [("create", {"PartitionKey": partition, "RowKey": str(i), "n": i}) for i in range(5)]
        answers = client.submit_transaction(operations)
        assert len(answers) == 5
        assert all(set(answer) == {"etag"} and answer["etag"].startswith('W/"datetime') for answer in answers)
        assert [ours.get_entity(partition, str(i)).metadata["etag"] for i in range(5)] == [
            answer["etag"] for answer in answers]


@pytest.mark.stack
def test_a_failed_operation_is_the_same_transaction_error(sdk_and_ours):
    sdk, ours = sdk_and_ours
    errors = {}
    for client, partition in ((sdk, "sdk"), (ours, "ours")):
        client.create_entity({"PartitionKey": partition, "RowKey": "taken"})
        with pytest.raises(TableTransactionError) as raised:
            client.submit_transaction([
                ("upsert", {"PartitionKey": partition, "RowKey": "fine"}),
                ("create", {"PartitionKey": partition, "RowKey": "taken"}),
            ])
        errors[partition] = (raised.value.index, raised.value.error_code, raised.value.status_code)
        # Nothing of the failed transaction was stored.
        assert [e["RowKey"] for e in ours.query_entities(f"PartitionKey eq '{partition}'")] == ["taken"]
    assert errors["ours"] == errors["sdk"] == (1, "EntityAlreadyExists", 409)
