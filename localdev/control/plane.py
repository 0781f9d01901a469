"""The control plane of a running instance: reset, seed export and import, token minting, subscriptions.

Used by the console's HTTP server (`/control/...`) and, through it, by `python -m localdev control`.
Runs on the event loop of `localdev run`; storage work goes to a thread.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Callable

from ..eventgrid import EventGridTopic
from ..eventgrid.subscriptions import SubscriptionError, parse_subscription
from ..pstn import PstnSimulator
from . import appstate
from .api import AnteroomApi
from .seed import SeedError, check_seed, export_document

log = logging.getLogger("localdev.control")
MAX_TOKEN_SECONDS = 24 * 3600


class ControlError(Exception):
    """A refusal: HTTP status and the JSON error body to answer with (ACS's shape)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(json.dumps(body))
        self.status, self.body = status, body


def refusal(status: int, code: str, message: str, target: str | None = None) -> ControlError:
    error = {"code": code, "message": message}
    if target:
        error["target"] = target
    return ControlError(status, {"error": error})


class ControlPlane:
    def __init__(self, api: AnteroomApi, *, topic: EventGridTopic | None, pstn: PstnSimulator | None) -> None:
        self.api, self.topic, self.pstn = api, topic, pstn
        # Called after any change (the console refreshes at once) and after a reset (caches go).
        self.change_listeners: list[Callable[[], None]] = []
        self.reset_listeners: list[Callable[[], None]] = []
        self._lock = asyncio.Lock()  # one import or reset at a time

    async def _blocking(self, function: Callable, *args: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(None, function, *args)
        except appstate.HttpError as error:
            raise ControlError(error.status, error.to_body()) from None

    def changed(self) -> None:
        for listener in list(self.change_listeners):
            listener()

    # -- reset -------------------------------------------------------------------------------------
    async def reset(self, body: dict[str, Any]) -> dict[str, Any]:
        room_id, keep = body.get("roomId"), body.get("keepSubscriptions", False)
        if room_id is not None and not isinstance(room_id, str):
            raise refusal(400, "BadRequest", "roomId must be a string.", "roomId")
        if not isinstance(keep, bool):
            raise refusal(400, "BadRequest", "keepSubscriptions must be true or false.", "keepSubscriptions")
        async with self._lock:
            try:
                if room_id is not None:
                    return await self._reset_room(room_id)
                return await self._reset_all(keep)
            finally:
                self.changed()

    async def _reset_room(self, room_id: str) -> dict[str, Any]:
        # Through the API first: the call ends for everyone (CallEnded, callbacks) as a delete does.
        answer = await self._blocking(self.api.delete_room, room_id)
        if not answer.ok:
            raise ControlError(answer.status, answer.body)
        await self._blocking(appstate.dispatch_pending, room_id)
        await self._blocking(appstate.purge_room, room_id)
        return {"reset": "room", "roomId": room_id}

    async def _reset_all(self, keep_subscriptions: bool) -> dict[str, Any]:
        deleted = await self._blocking(appstate.reset_tables)
        if self.topic is not None:
            await self.topic.reset(keep_subscriptions=keep_subscriptions)
        if self.pstn is not None:
            self.pstn.reset()
        self.api.forget_tokens()
        for listener in list(self.reset_listeners):
            listener()
        return {"reset": "all", "entitiesDeleted": deleted, "subscriptionsKept": keep_subscriptions}

    # -- subscriptions -----------------------------------------------------------------------------
    def subscription_entries(self) -> list[dict[str, Any]]:
        if self.topic is None:
            return []
        try:
            document = json.loads(self.topic.subscriptions_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        entries = document.get("subscriptions", []) if isinstance(document, dict) else document
        return [entry for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []

    def _require_topic(self) -> EventGridTopic:
        if self.topic is None:
            raise refusal(409, "EventGridNotRunning", "This instance runs without its Event Grid topic (--no-eventgrid).")
        return self.topic

    async def add_subscription(self, entry: Any) -> dict[str, Any]:
        topic = self._require_topic()
        try:
            subscription = parse_subscription(entry)
        except SubscriptionError as error:
            raise refusal(400, "InvalidSubscription", str(error)) from None
        entries = self.subscription_entries()
        if any(str(e.get("name", "")).lower() == subscription.name.lower() for e in entries):
            raise refusal(409, "Conflict", f"A subscription named {subscription.name} exists already.", "name")
        states = await topic.set_subscriptions([*entries, entry])
        self.changed()
        return {"name": subscription.name, "state": states.get(subscription.name)}

    async def remove_subscription(self, name: Any) -> dict[str, Any]:
        topic = self._require_topic()
        entries = self.subscription_entries()
        kept = [e for e in entries if str(e.get("name", "")).lower() != str(name).lower()]
        if len(kept) == len(entries):
            raise refusal(404, "NotFound", f"No subscription is named {name}.", "name")
        await topic.set_subscriptions(kept)
        self.changed()
        return {"removed": name}

    # -- seeds -------------------------------------------------------------------------------------
    async def export_seed(self) -> dict[str, Any]:
        identities = await self._blocking(appstate.identities)
        rooms = await self._blocking(appstate.rooms, 10_000)
        return export_document(identities, rooms, self.subscription_entries())

    async def import_seed(self, text: str, source: str = "seed") -> dict[str, Any]:
        """Check the seed whole, then write it; a refusal (ControlError 400) writes nothing."""
        async with self._lock:
            try:
                seed = await asyncio.get_running_loop().run_in_executor(None, lambda: check_seed(text, source))
            except SeedError as error:
                raise ControlError(400, error.to_body()) from None
            if seed.subscriptions and self.topic is None:
                raise ControlError(400, SeedError(source, None, "subscriptions",
                                                  "this instance runs without its Event Grid topic").to_body())
            existing = {str(e.get("name", "")).lower() for e in self.subscription_entries()}
            new_subscriptions = [e for e in seed.subscriptions if e["name"].lower() not in existing]
            result = await self._blocking(self._write_seed, seed)
            if new_subscriptions:
                assert self.topic is not None
                await self.topic.set_subscriptions([*self.subscription_entries(), *new_subscriptions])
            self.changed()
            result["imported"]["subscriptions"] = len(new_subscriptions)
            result["kept"]["subscriptions"] = len(seed.subscriptions) - len(new_subscriptions)
            return result

    @staticmethod
    def _write_seed(seed) -> dict[str, Any]:
        """Identities and rooms not there yet (what exists is kept); undone whole if a write fails."""
        identities = [part for part in seed.identities if not appstate.identity_exists(part)]
        rooms = [spec for spec in seed.rooms if not appstate.room_exists(spec.room_id)]
        created_identities, created_rooms = [], []
        try:
            for part in identities:
                appstate.create_identity(part)
                created_identities.append(part)
            for spec in rooms:
                appstate.create_room(spec)
                created_rooms.append(spec.room_id)
        except Exception:
            for room_id in created_rooms:
                appstate.purge_room(room_id)
            for part in created_identities:
                appstate.delete_identity(part)
            raise
        return {
            "imported": {"identities": len(identities), "rooms": len(rooms)},
            "kept": {"identities": len(seed.identities) - len(identities), "rooms": len(seed.rooms) - len(rooms)},
            "movedIds": seed.moved_ids,
        }

    # -- tokens ------------------------------------------------------------------------------------
    async def mint_token(self, body: dict[str, Any]) -> dict[str, Any]:
        user_id, seconds, scopes = body.get("userId"), body.get("seconds"), body.get("scopes", ["voip"])
        if not isinstance(user_id, str) or not user_id:
            raise refusal(400, "BadRequest", "userId is required.", "userId")
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= MAX_TOKEN_SECONDS:
            raise refusal(400, "BadRequest", f"seconds must be an integer from 1 to {MAX_TOKEN_SECONDS}.", "seconds")
        return await self._blocking(appstate.mint_token, user_id, seconds, scopes)
