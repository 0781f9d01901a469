"""Operation and call logs: record schema, transaction batching, the background writer, Azurite round trips."""
from __future__ import annotations

import base64
import json
import threading
import time
from datetime import datetime, timedelta, timezone
from unittest.mock import Mock
from urllib.parse import unquote

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ServiceRequestError
from azure.data.tables import TableClient

from shared.logs import operations as oplog
from shared.logs.attendance import (
    CallParticipantRecord,
    MemoryCallLog,
    RoomCallRecord,
    TableCallLog,
    read_call_records,
    read_participant_records,
)
from shared.logs.operations import (
    MemoryOperationLog,
    RoomsOperationRecord,
    TableOperationLog,
    export_diagnostic_settings,
    new_correlation_id,
    read_operation_records,
)
from shared.storage.transactions import TransactionTooLarge
from shared.storage.batches import BackgroundTableWriter, escape_key, transaction_batches
from tests.analytics.azurite import azurite_tables
from tests.core.test_timefmt import NoOffset

T0 = datetime(2026, 11, 24, 15, 30, 0, 123456, tzinfo=timezone.utc)
RESOURCE = "/subscriptions/1111/resourceGroups/rg-a/providers/Microsoft.Communication/communicationServices/acs-a"


def record(**overrides) -> RoomsOperationRecord:
    fields = dict(
        time_generated=T0, correlation_id="Y4x6ZabFE0+E8ERwMpd68w", operation_name="CreateRoom",
        operation_version="2025-03-13", result_signature=201, duration_ms=12.5, caller_ip_address="10.1.2.3",
        room_id="99466898241024408", room_lifespan_minutes=61, added_participants=4, participants_count=5,
        presenters=1, attendees=2, consumers=1, collaborators=1, pstn_dial_out_enabled=False,
    )
    fields.update(overrides)
    return RoomsOperationRecord(**fields)


# --- record schema ----------------------------------------------------------------------------

def test_log_analytics_columns_are_acs_names_and_omit_absent_fields():
    columns = record().to_log_analytics()
    assert columns == {
        "TimeGenerated": T0, "CorrelationId": "Y4x6ZabFE0+E8ERwMpd68w", "Level": "Informational",
        "OperationName": "CreateRoom", "OperationVersion": "2025-03-13", "ResultType": "Succeeded",
        "ResultSignature": "201", "RoomId": "99466898241024408", "RoomLifespan": 61,
        "AddedRoomParticipantsCount": 4, "RoomParticipantsCount": 5, "RoomParticipantsPresenter": 1,
        "RoomParticipantsAttendee": 2, "RoomParticipantsConsumer": 1, "PstnDialOutEnabled": False,
        "DurationMs": 12.5, "CallerIpAddress": "10.1.2.3", "Type": "ACSRoomsIncomingOperations",
    }
    listing = RoomsOperationRecord(
        time_generated=T0, correlation_id="x", operation_name="ListRooms", operation_version=None,
        result_signature=200, duration_ms=3,
    ).to_log_analytics()
    assert "RoomId" not in listing and "OperationVersion" not in listing and "CallerIpAddress" not in listing


@pytest.mark.parametrize(
    ("status", "result_type", "level"),
    [(200, "Succeeded", "Informational"), (204, "Succeeded", "Informational"), (399, "Succeeded", "Informational"),
     (400, "Failed", "Warning"), (404, "Failed", "Warning"), (499, "Failed", "Warning"),
     (500, "Failed", "Error"), (503, "Failed", "Error")],
)
def test_result_type_and_level_follow_the_status(status, result_type, level):
    assert (record(result_signature=status).result_type, record(result_signature=status).level) == (result_type, level)


def test_diagnostic_record_has_the_export_layout():
    raw = record(time_generated=datetime(2025, 3, 13, 9, 15, 2, 123456, tzinfo=timezone.utc)).to_diagnostic_record(RESOURCE)
    assert raw == {
        "time": "2025-03-13T09:15:02.1234560Z",
        "resourceId": "/SUBSCRIPTIONS/1111/RESOURCEGROUPS/RG-A/PROVIDERS/MICROSOFT.COMMUNICATION/COMMUNICATIONSERVICES/ACS-A",
        "category": "RoomsOperational", "operationName": "CreateRoom", "operationVersion": "2025-03-13",
        "resultType": "Succeeded", "resultSignature": "201", "correlationId": "Y4x6ZabFE0+E8ERwMpd68w",
        "level": "Informational", "durationMs": 12.5, "callerIpAddress": "10.1.2.3",
        "properties": {
            "RoomId": "99466898241024408", "RoomLifespan": 61, "AddedRoomParticipantsCount": 4,
            "RoomParticipantsCount": 5, "RoomParticipantsPresenter": 1, "RoomParticipantsAttendee": 2,
            "RoomParticipantsConsumer": 1, "PstnDialOutEnabled": False,
        },
    }


def test_record_refuses_naive_times_unknown_operations_and_non_statuses():
    with pytest.raises(ValueError, match="timezone-aware"):
        record(time_generated=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="PatchRoom"):
        record(operation_name="PatchRoom")
    with pytest.raises(ValueError, match="HTTP status"):
        record(result_signature=42)
    with pytest.raises(ValueError, match="int HTTP status"):
        record(result_signature="201")
    with pytest.raises(TypeError):
        RoomsOperationRecord(T0, "x", "GetRoom", None, 200, 1.0)  # keyword-only on purpose


def test_record_converts_offsets_to_utc_and_round_trips_through_columns():
    local = T0.astimezone(timezone(timedelta(hours=5)))
    rebuilt = RoomsOperationRecord.from_log_analytics(record(time_generated=local).to_log_analytics())
    assert rebuilt.time_generated == T0 and rebuilt.time_generated.tzinfo == timezone.utc
    assert rebuilt == record(collaborators=None)


def test_correlation_ids_are_22_char_base64_of_a_guid_and_unique():
    ids = {new_correlation_id() for _ in range(1000)}
    assert len(ids) == 1000
    for value in list(ids)[:50]:
        assert len(value) == 22
        assert len(base64.b64decode(value + "==")) == 16


def test_entity_keys_are_hour_partition_and_sortable_escaped_row_key():
    entity = record(correlation_id="a/b#c?d\\e%").to_entity()
    assert entity["PartitionKey"] == "2026112415"
    assert entity["RowKey"].startswith("20261124T153000123456_")
    suffix = entity["RowKey"].split("_", 1)[1]
    assert not set("/#?\\") & set(suffix) and unquote(suffix) == "a/b#c?d\\e%"
    later = record(time_generated=T0 + timedelta(microseconds=1)).to_entity()
    assert later["RowKey"] > record().to_entity()["RowKey"]


@pytest.mark.parametrize(
    "key_of",
    [
        oplog.format_log_time,
        oplog.hour_partition,
        lambda moment: oplog.time_row_key(moment, "x"),
        lambda moment: oplog.diagnostic_blob_path(RESOURCE, moment),
    ],
    ids=["format_log_time", "hour_partition", "time_row_key", "diagnostic_blob_path"],
)
def test_time_keys_refuse_naive_times_rather_than_read_them_as_host_local(key_of):
    with pytest.raises(ValueError, match="timezone-aware"):
        key_of(T0.replace(tzinfo=None))


def test_time_range_refuses_a_bound_whose_zone_has_no_offset():
    with pytest.raises(ValueError, match="since must be timezone-aware"):
        list(read_operation_records(Mock(), since=T0.replace(tzinfo=NoOffset())))


def test_memory_logs_keep_writes_in_order():
    log = MemoryOperationLog()
    log.write(record(correlation_id="one"))
    log.write(record(correlation_id="two"))
    assert [item.correlation_id for item in log.records] == ["one", "two"]
    calls = MemoryCallLog()
    call = RoomCallRecord(call_id="c1", room_id="r1", started_at=T0)
    calls.write(call)
    assert calls.records == [call] and calls.flush() and calls.close()


# --- batching -----------------------------------------------------------------------------------

def ops(partition_sizes: dict[str, int]) -> list[tuple]:
    return [("upsert", {"PartitionKey": pk, "RowKey": f"{i:04d}"}) for pk, n in partition_sizes.items() for i in range(n)]


def test_batches_never_exceed_100_nor_mix_partitions():
    operations = ops({"A": 250, "B": 100, "C": 1})
    operations.insert(3, ("upsert", {"PartitionKey": "B", "RowKey": "x"}))  # interleaved partitions
    batches = list(transaction_batches(operations))
    assert [(b[0][1]["PartitionKey"], len(b)) for b in batches] == [
        ("A", 100), ("A", 100), ("A", 50), ("B", 100), ("B", 1), ("C", 1)
    ]
    assert all(len({op[1]["PartitionKey"] for op in batch}) == 1 for batch in batches)
    assert [op[1]["RowKey"] for op in batches[3]][:2] == ["x", "0000"]  # order within a partition kept
    assert sum(len(b) for b in batches) == len(operations)


def test_batches_refuse_an_entity_without_partition_key():
    with pytest.raises(KeyError):
        list(transaction_batches([("upsert", {"RowKey": "1"})]))


def test_the_shared_transaction_check_refuses_what_azure_refuses():
    from shared.storage.transactions import check_transaction

    with pytest.raises(TransactionTooLarge):
        check_transaction(ops({"A": 101}))
    with pytest.raises(TransactionTooLarge):
        check_transaction(ops({"A": 1, "B": 1}))


def test_escape_key_escapes_forbidden_characters_reversibly():
    text = "8:acs:x/y\\z#w?v%u\x01"
    escaped = escape_key(text)
    assert not set("/\\#?\x01") & set(escaped)
    assert unquote(escaped) == text


# --- background writer against a fake table ---------------------------------------------------

class FakeTable:
    """Records transactions; optionally fails the first `failures` submits with `error`."""

    def __init__(self, failures: int = 0, error: Exception | None = None, delay: float = 0.0):
        self.transactions: list[list[tuple]] = []
        self.failures = failures
        self.error = error
        self.delay = delay
        self.attempts = 0

    def create_table(self):
        raise ResourceExistsError("exists")

    def submit_transaction(self, operations):
        self.attempts += 1
        time.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise self.error
        self.transactions.append(list(operations))


def http_error(status: int) -> HttpResponseError:
    error = HttpResponseError(message=f"status {status}")
    error.status_code = status
    return error


def test_writer_flushes_in_valid_transactions():
    table = FakeTable()
    writer = BackgroundTableWriter(lambda name: table, flush_interval=0.05)
    for i in range(250):
        writer.write("t", {"PartitionKey": "A" if i % 3 else "B", "RowKey": str(i)})
    assert writer.flush(5)
    assert writer.written == 250 and writer.dropped == 0
    assert all(len(t) <= 100 and len({op[1]["PartitionKey"] for op in t}) == 1 for t in table.transactions)
    assert sorted(int(op[1]["RowKey"]) for t in table.transactions for op in t) == list(range(250))
    assert writer.close(5)
    writer.write("t", {"PartitionKey": "A", "RowKey": "late"})
    assert writer.dropped == 1


def test_writer_retries_transient_errors_and_drops_permanent_ones():
    flaky = FakeTable(failures=2, error=ServiceRequestError("connection refused"))
    writer = BackgroundTableWriter(lambda name: flaky, flush_interval=0.01, retry_delays=(0.01, 0.01, 0.01))
    writer.write("t", {"PartitionKey": "A", "RowKey": "1"})
    assert writer.flush(5) and writer.written == 1 and flaky.attempts == 3

    broken = FakeTable(failures=99, error=http_error(400))
    writer = BackgroundTableWriter(lambda name: broken, flush_interval=0.01, retry_delays=(0.01,))
    writer.write("t", {"PartitionKey": "A", "RowKey": "1"})
    assert writer.flush(5) and writer.dropped == 1 and broken.attempts == 1

    down = FakeTable(failures=99, error=http_error(503))
    writer = BackgroundTableWriter(lambda name: down, flush_interval=0.01, retry_delays=(0.01, 0.01))
    writer.write("t", {"PartitionKey": "A", "RowKey": "1"})
    assert writer.flush(5) and writer.dropped == 1 and down.attempts == 3


def test_writer_never_blocks_or_raises_while_storage_hangs():
    slow = FakeTable(delay=0.5)
    writer = BackgroundTableWriter(lambda name: slow, max_queue=10, flush_interval=0.01)
    started = time.perf_counter()
    for i in range(200):
        writer.write("t", {"PartitionKey": "A", "RowKey": str(i)})
    assert time.perf_counter() - started < 0.2
    assert writer.dropped >= 150  # the bounded queue overflowed instead of blocking
    assert writer.flush(10)
    assert writer.written + writer.dropped == 200


def test_operation_log_write_survives_a_factory_that_raises():
    def factory(name):
        raise RuntimeError("no storage configured")

    log = TableOperationLog(factory, flush_interval=0.01, retry_delays=())
    log.write(record())
    assert log.flush(5) and log.dropped == 1


# --- Azurite -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def connection_string(starts_processes):
    with azurite_tables() as value:
        yield value


def test_operation_log_round_trips_through_azurite(connection_string, tmp_path):
    log = TableOperationLog(connection_string, table_name="opsroundtrip", flush_interval=0.05)
    written = [
        record(time_generated=T0 + timedelta(minutes=13 * i), correlation_id=f"cid{i:03d}/{i}",
               result_signature=(201, 404, 503)[i % 3])
        for i in range(230)  # about 50 hours: many partitions, several full transactions each
    ]
    started = time.perf_counter()
    for item in written:
        log.write(item)
    assert time.perf_counter() - started < 0.5  # write() only enqueues
    assert log.close(30)
    assert (log.written, log.dropped) == (230, 0)

    with TableClient.from_connection_string(connection_string, "opsroundtrip") as table:
        rows = list(read_operation_records(table))
        assert len(rows) == 230
        first = next(row for row in rows if row["CorrelationId"] == "cid000/0")
        assert first == written[0].to_log_analytics()
        assert isinstance(first["TimeGenerated"], datetime)
        since, until = T0 + timedelta(hours=2), T0 + timedelta(hours=5)
        window = list(read_operation_records(table, since=since, until=until))
        expected = [w for w in written if since <= w.time_generated < until]
        assert sorted(r["CorrelationId"] for r in window) == sorted(w.correlation_id for w in expected)
        assert expected  # the window is not empty by accident

        files = export_diagnostic_settings(read_operation_records(table), tmp_path, RESOURCE)
    lines = [json.loads(line) for path in files for line in path.read_text().splitlines()]
    assert len(lines) == 230
    first_file = files[0].relative_to(tmp_path).as_posix()
    assert first_file == (
        "insights-logs-roomsoperational/resourceId=/SUBSCRIPTIONS/1111/RESOURCEGROUPS/RG-A/PROVIDERS/"
        "MICROSOFT.COMMUNICATION/COMMUNICATIONSERVICES/ACS-A/y=2026/m=11/d=24/h=15/m=00/PT1H.json"
    )
    for path in files:
        hour = path.relative_to(tmp_path).parts[-3]
        assert all(json.loads(line)["time"][11:13] == hour[2:] for line in path.read_text().splitlines())


def test_export_cli_writes_the_storage_layout(connection_string, tmp_path, capsys):
    log = TableOperationLog(connection_string, table_name="opscli")
    log.write(record())
    log.write(record(time_generated=T0 + timedelta(hours=1), correlation_id="second", result_signature=500))
    assert log.close(30)
    code = oplog.main(["export", "--connection-string", connection_string, "--table", "opscli",
                       "--out", str(tmp_path), "--resource-id", RESOURCE, "--since", "2026-11-24T16:00:00Z"])
    assert code == 0
    files = sorted(tmp_path.rglob("PT1H.json"))
    assert [f.parts[-3] for f in files] == ["h=16"]
    exported = json.loads(files[0].read_text())
    assert (exported["correlationId"], exported["level"], exported["resultType"]) == ("second", "Error", "Failed")


def test_call_log_merges_start_and_end_writes(connection_string):
    log = TableCallLog(connection_string, calls_table="callsmerge", participants_table="partsmerge")
    call = RoomCallRecord(call_id="call-1", server_call_id="c2VydmVy/x", room_id="r1", started_at=T0)
    joined = CallParticipantRecord(call_id="call-1", participant_id="p1", identifier="8:acs:u1", room_id="r1",
                                   joined_at=T0 + timedelta(seconds=5), role="Presenter", call_started_at=T0)
    pstn = CallParticipantRecord(call_id="call-1", participant_id="p2", identifier="4:+14255550123", room_id="r1",
                                 joined_at=T0 + timedelta(minutes=1), endpoint_type="PSTN", call_started_at=T0,
                                 left_at=T0 + timedelta(minutes=3), end_reason="0")
    log.write(call)
    log.write(joined)
    log.write(pstn)
    assert log.flush(30)
    log.write(RoomCallRecord(call_id="call-1", room_id="r1", started_at=T0, ended_at=T0 + timedelta(minutes=30),
                             end_reason="CallEnded"))
    log.write(CallParticipantRecord(call_id="call-1", participant_id="p1", identifier="8:acs:u1", room_id="r1",
                                    joined_at=T0 + timedelta(seconds=5), left_at=T0 + timedelta(minutes=20)))
    assert log.close(30)
    with TableClient.from_connection_string(connection_string, "callsmerge") as table:
        (stored_call,) = list(read_call_records(table))
    assert stored_call["ServerCallId"] == "c2VydmVy/x"  # kept from the first write
    assert stored_call["CallDuration"] == 1800.0 and stored_call["CallEndReason"] == "CallEnded"
    with TableClient.from_connection_string(connection_string, "partsmerge") as table:
        parts = {row["ParticipantId"]: row for row in read_participant_records(table)}
    assert parts["p1"]["Role"] == "Presenter" and parts["p1"]["ParticipantDuration"] == 1195.0
    assert parts["p2"]["EndpointType"] == "PSTN" and "Role" not in parts["p2"]


def test_operation_log_keeps_requests_fast_when_storage_is_down():
    dead = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" \
           "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" \
           "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    log = TableOperationLog(dead, max_queue=50, retry_delays=(0.01,))
    started = time.perf_counter()
    for i in range(100):
        log.write(record(correlation_id=f"c{i}"))
    assert time.perf_counter() - started < 0.5
    assert log.close(20)
    assert log.written == 0 and log.dropped == 100
    assert not [t for t in threading.enumerate() if t.name == "table-batch-writer" and t.is_alive()
                and t is log._writer._thread]


def test_writer_drops_entities_without_keys_instead_of_failing_later():
    table = FakeTable()
    writer = BackgroundTableWriter(lambda name: table, flush_interval=0.01)
    writer.write("t", {"RowKey": "1"})
    writer.write("t", {"PartitionKey": "A", "RowKey": "2"})
    assert writer.flush(5)
    assert (writer.written, writer.dropped) == (1, 1)


def test_writer_folds_records_for_one_row_into_one_write_per_transaction():
    table = FakeTable(delay=0.2)  # the first submit is slow, so later records queue up and drain together
    writer = BackgroundTableWriter(lambda name: table, flush_interval=0.01, merge=True)
    writer.write("t", {"PartitionKey": "A", "RowKey": "warm-up"})
    time.sleep(0.05)
    writer.write("t", {"PartitionKey": "A", "RowKey": "1", "Joined": 1})
    writer.write("t", {"PartitionKey": "A", "RowKey": "1", "Left": 2})
    writer.write("t", {"PartitionKey": "A", "RowKey": "2", "Joined": 3})
    assert writer.flush(5)
    assert (writer.written, writer.dropped) == (4, 0)
    for transaction in table.transactions:
        keys = [(op[1]["PartitionKey"], op[1]["RowKey"]) for op in transaction]
        assert len(keys) == len(set(keys))
    rows = {op[1]["RowKey"]: op[1] for t in table.transactions for op in t}
    assert rows["1"] == {"PartitionKey": "A", "RowKey": "1", "Joined": 1, "Left": 2}
