"""The composition root: every service built from settings in one function, once per process, on first use.

Nothing here runs at import. `build_services` is the one place that knows every context: it makes
the stores, wires the observers (the rooms' change hub to the calls, the calls' change listeners:
call events, Call Automation callbacks, attendance) by constructor, and hands back `Services`.
"""
from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from datetime import timedelta

from azure.core.credentials import TokenCredential

from .auth.hmac import HmacVerifier
from .auth.throttle import Throttle
from .automation.callbacks import CallbackDispatcher, CallbackPublisher, HttpCallbackSender
from .automation.service import CallAutomationService
from .automation.signing import CallbackSigner
from .calls.attendance import AttendanceRecorder
from .calls.changes import CallChangeListener
from .calls.events import CallEventsPublisher
from .calls.hangups import HangUpDispatcher, PhoneHangUps
from .calls.pstn import HttpPstnGateway, TablePstnLines
from .calls.service import CallsService
from .calls.store import TableCallsStore
from .config.settings import Settings
from .core.clock import Clock, utc_now
from .core.keys import load_signing_key
from .events.dispatcher import Dispatcher, EventGridSink
from .events.outbox import CALLBACK_PREFIX, HANG_UP_PREFIX, Outbox, TableOutbox
from .identity.service import IdentityService
from .identity.store import TableUsersStore
from .logs.attendance import CALLS_TABLE_SUFFIX, PARTICIPANTS_TABLE_SUFFIX, TableCallLog
from .logs.operations import OPERATIONS_TABLE_SUFFIX, TableOperationLog
from .repeatability.guard import RepeatabilityGuard
from .repeatability.store import TableRepeatabilityStore
from .rooms.changes import RoomChanges
from .rooms.service import RoomsService
from .rooms.store import TableRoomsStore
from .storage.tables import TableStore


@dataclass
class Services:
    settings: Settings
    clock: Clock
    tables: TableStore
    hmac: HmacVerifier
    rooms: RoomsService
    identity: IdentityService
    repeatability: RepeatabilityGuard
    operation_log: TableOperationLog
    call_log: TableCallLog
    calls: CallsService
    call_automation: CallAutomationService
    callbacks: CallbackDispatcher
    callback_signer: CallbackSigner | None
    outbox: Outbox
    dispatcher: Dispatcher | None
    hang_ups: HangUpDispatcher | None = None  # None without a PSTN gateway
    throttle: Throttle | None = None  # None when ANTEROOM_THROTTLE_REQUESTS is 0
    credential: TokenCredential | None = None  # the Entra identity, when a service is reached with one

    def close(self) -> None:
        """Write the queued log records, then stop the publishing threads.

        Logs first: they exist only in memory until written, while undelivered events and
        callbacks wait in the outbox for the next instance's sweep.
        """
        self.operation_log.close()
        self.call_log.close()
        self.callbacks.close()
        for dispatcher in (self.dispatcher, self.hang_ups):
            if dispatcher is not None:
                dispatcher.close()
        self.tables.close()
        close = getattr(self.credential, "close", None)
        if close is not None:
            close()


def default_credential(settings: Settings) -> TokenCredential:
    """DefaultAzureCredential: the managed identity in Azure (the user-assigned one AZURE_CLIENT_ID
    names), a developer's Azure CLI or azd sign-in elsewhere."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id)


def configure_telemetry(settings: Settings) -> bool:
    """Send traces, logs and metrics to Application Insights when its connection string is set.

    azure-monitor-opentelemetry sets the process's OpenTelemetry providers and turns on azure-core
    tracing, so every storage and Event Grid call becomes a span under the request's. Called
    once per process, before any client is built. Returns whether telemetry is on.
    """
    if settings.telemetry_connection_string is None:
        return False
    from azure.monitor.opentelemetry import configure_azure_monitor

    # Ingestion with Entra auth (local auth off on the component) is the exporter's own
    # APPLICATIONINSIGHTS_AUTHENTICATION_STRING (`ClientId=<identity>;Authorization=AAD`).
    configure_azure_monitor(connection_string=settings.telemetry_connection_string, logger_name="anteroom")
    return True


def build_services(settings: Settings, clock: Clock = utc_now, credential: TokenCredential | None = None) -> Services:
    """Every service, wired. `credential` is the Entra identity used where no key is configured
    (storage without a connection string, Event Grid without a topic key); DefaultAzureCredential
    when not given."""
    if credential is None and settings.uses_entra:
        credential = default_credential(settings)
    if settings.storage_account_url is not None:
        tables = TableStore(account_url=settings.storage_account_url, credential=credential)
    else:
        tables = TableStore(settings.storage_connection_string)
    rooms_table = settings.table_name("Rooms")
    room_changes = RoomChanges()  # roster removals and deletions reach live calls at once
    rooms = RoomsService(TableRoomsStore(tables, rooms_table), clock, settings.max_room_participants, room_changes)
    outbox = TableOutbox(tables, rooms_table, clock)
    dispatcher = None  # no Event Grid topic configured: no call events are kept
    if settings.eventgrid_endpoint:
        sink = EventGridSink(
            settings.eventgrid_endpoint, settings.eventgrid_key or credential, settings.eventgrid_schema,
            settings.arm_resource_id,
        )
        dispatcher = Dispatcher(outbox, sink)
    call_log = TableCallLog(
        tables.table, settings.table_name(CALLS_TABLE_SUFFIX), settings.table_name(PARTICIPANTS_TABLE_SUFFIX)
    )
    signer = None
    if settings.callback_signing_key is not None:
        signer = CallbackSigner(load_signing_key(settings.callback_signing_key), settings.resource_id, clock,
                                settings.callback_token_issuer)
    callbacks = CallbackDispatcher(TableOutbox(tables, rooms_table, clock, prefix=CALLBACK_PREFIX),
                                   HttpCallbackSender(signer))
    gateway = HttpPstnGateway(settings.pstn_gateway_url) if settings.pstn_gateway_url else None
    hang_ups = None
    if gateway is not None:
        hang_ups = HangUpDispatcher(TableOutbox(tables, rooms_table, clock, prefix=HANG_UP_PREFIX), gateway)
    # What each committed call change produces, in transaction order: its events' outbox rows, its
    # callbacks' rows, the phone legs to hang up; after the commit each is told in the same order, and
    # attendance is written.
    listeners: list[CallChangeListener] = []
    if dispatcher is not None:
        listeners.append(CallEventsPublisher(dispatcher, clock))
    listeners.append(CallbackPublisher(callbacks, clock))
    if hang_ups is not None:
        listeners.append(PhoneHangUps(hang_ups, clock))
    listeners.append(AttendanceRecorder(call_log))
    calls = CallsService(
        rooms,
        TableCallsStore(tables, rooms_table),
        clock,
        gateway,
        TablePstnLines(tables, settings.table_name("PstnLines")),
        settings.caller_numbers,
        listeners,
        room_changes,
    )
    return Services(
        settings=settings,
        clock=clock,
        tables=tables,
        hmac=HmacVerifier(
            keys=settings.access_keys,
            clock_skew=timedelta(seconds=settings.hmac_clock_skew_seconds),
            hosts=settings.service_hosts,
        ),
        rooms=rooms,
        calls=calls,
        outbox=outbox,
        dispatcher=dispatcher,
        hang_ups=hang_ups,
        call_automation=CallAutomationService(rooms, calls, TableCallsStore(tables, rooms_table), clock),
        callbacks=callbacks,
        callback_signer=signer,
        identity=IdentityService(
            TableUsersStore(tables, settings.table_name("Identities")), settings.resource_id,
            settings.token_signing_key, clock,
        ),
        repeatability=RepeatabilityGuard(
            TableRepeatabilityStore(tables, settings.table_name("Repeatability")), clock,
            timedelta(seconds=settings.repeatability_window_seconds),
        ),
        operation_log=TableOperationLog(tables.table, settings.table_name(OPERATIONS_TABLE_SUFFIX)),
        call_log=call_log,
        throttle=(
            Throttle(settings.throttle_requests, settings.throttle_window_seconds)
            if settings.throttle_requests else None
        ),
        credential=credential,
    )


_lock = threading.Lock()
_services: Services | None = None
_telemetry_on = False


def get_services() -> Services:
    """The process's services, built from the environment on the first call (never at import)."""
    global _services, _telemetry_on
    if _services is None:
        with _lock:
            if _services is None:
                settings = Settings.from_env()
                if not _telemetry_on:  # once: a second configuration would stack a second exporter
                    _telemetry_on = configure_telemetry(settings)  # before any client: their calls become spans
                _services = build_services(settings)
                # A worker that exits normally (a scale-in, Ctrl-C on the local host) still
                # writes the last second of operation and attendance records.
                atexit.register(_services.close)
    return _services
