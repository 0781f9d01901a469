"""Event delivery: the outbox safety net (timer) and replays of stored call events to a webhook."""
from __future__ import annotations

import logging

import azure.functions as func

from shared.core.errors import InvalidRequest
from shared.events.replay import replay
from shared.bootstrap import get_services
from shared.core.timefmt import parse_rfc3339

from .errors import EVENTS_ERRORS
from .pipeline import ApiRequest, ApiResponse, acs_operation

bp = func.Blueprint()
log = logging.getLogger("anteroom.events")


@bp.function_name("DispatchPendingEvents")
@bp.timer_trigger(arg_name="timer", schedule="*/10 * * * * *", run_on_startup=True, use_monitor=False)
def dispatch_pending_events(timer: func.TimerRequest) -> None:
    """Publishes what the after-commit path could not (topic down, callback receiver down, PSTN gateway
    down, process killed)."""
    services = get_services()
    if services.dispatcher is not None:
        sent = services.dispatcher.sweep()
        if sent:
            log.info("published %d pending events", sent)
    delivered = services.callbacks.sweep()
    if delivered:
        log.info("delivered %d pending Call Automation callback batches", delivered)
    if services.hang_ups is not None:
        hung_up = services.hang_ups.sweep()
        if hung_up:
            log.info("told the PSTN gateway about %d pending hang-ups", hung_up)


@bp.function_name("ReplayCallEvents")
@bp.route(route="callEvents:replay", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@acs_operation("ReplayCallEvents", None, EVENTS_ERRORS)
def replay_call_events(request: ApiRequest) -> ApiResponse:
    body = request.json_object()
    times = {}
    for key in ("from", "until"):
        if body.get(key) is not None:
            try:
                times[key] = parse_rfc3339(body[key])
            except ValueError:
                raise InvalidRequest(f"{key} must be an RFC 3339 date-time.", target=key) from None
    for key in ("endpoint", "roomId", "serverCallId", "schema"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise InvalidRequest(f"{key} must be a string.", target=key)
    if not body.get("endpoint"):
        raise InvalidRequest("endpoint is required.", target="endpoint")
    services = request.services
    result = replay(
        services.outbox, services.settings.arm_resource_id, body["endpoint"],
        body["schema"] if body.get("schema") is not None else services.settings.eventgrid_schema,
        room_id=body.get("roomId"), server_call_id=body.get("serverCallId"),
        since=times.get("from"), until=times.get("until"),
    )
    return ApiResponse(200, {"replayed": result.replayed, "failed": result.failed})
