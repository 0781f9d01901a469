"""Timer-triggered housekeeping: purge rooms past validity plus grace, and old repeatability records."""
from __future__ import annotations

import logging
from datetime import timedelta

import azure.functions as func

from shared.bootstrap import get_services

bp = func.Blueprint()
log = logging.getLogger("anteroom.maintenance")


@bp.function_name("PurgeExpiredRooms")
@bp.timer_trigger(arg_name="timer", schedule="0 */5 * * * *", run_on_startup=False, use_monitor=False)
def purge_expired_rooms(timer: func.TimerRequest) -> None:
    services = get_services()
    grace = timedelta(hours=services.settings.expired_room_grace_hours)
    rooms = services.rooms.sweep(grace)
    records = services.repeatability.sweep()
    log.info("purged %d rooms and %d repeatability records", rooms, records)


@bp.function_name("EndExpiredCalls")
@bp.timer_trigger(arg_name="timer", schedule="*/30 * * * * *", run_on_startup=True, use_monitor=False)
def end_expired_calls(timer: func.TimerRequest) -> None:
    """Calls end at their room's validUntil even when nobody touches them (every access checks too)."""
    services = get_services()
    ended = services.calls.sweep()
    if ended:
        log.info("ended %d calls of expired or deleted rooms", ended)
    expired = services.call_automation.expire_invitations()
    if expired:
        log.info("%d Call Automation invitations went unanswered", expired)
