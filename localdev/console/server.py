"""The console and control-plane HTTP server of `localdev run`: loopback only, one secret per run.

- `GET /?secret=...` the console page (plain HTML, CSS and JS from ./static: no build step);
  `GET /events` its live feed (server-sent events, one event per section when it changes);
  `GET /api/state` the same sections at once; `POST /api/actions/<name>` the page's actions, each
  through the real API (or the PSTN simulator's), answered with that API's status and body verbatim.
- `/control/...` the control plane for test suites and the CLI: `GET /control/instance`,
  `POST /control/reset`, `GET /control/export`, `POST /control/import`, `POST /control/tokens`,
  `POST /control/subscriptions` (an Event Grid subscription entry), `DELETE /control/subscriptions/<name>`.

Every request needs the secret: header `X-Anteroom-Secret` (or `Authorization: Bearer`), query
`secret`, or, for GETs of the page and its files, the cookie the page was served with. Without
it: 401; from a non-loopback address: 403; either way nothing runs.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import secrets
from pathlib import Path
from typing import Any, Awaitable, Callable

import requests
from aiohttp import web

from ..control.api import AnteroomApi, Answer
from ..control.plane import ControlError, ControlPlane, refusal
from ..eventgrid import EventGridTopic
from ..host import LOOPBACK, bind_loopback_socket, quiet_malformed_request_logs
from ..pstn import BEHAVIOURS, PstnSimulator
from .state import DeliveryTracker, RequestTap, loop_sections, storage_sections

log = logging.getLogger("localdev.console")
STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "anteroom_console"
SECRET_HEADER = "X-Anteroom-Secret"
REFRESH_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}
PHONE_ACTIONS = ("leave", "muteMic", "unmuteMic")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda value: json.dumps(value, default=str))


def _answer(answer: Answer) -> web.Response:
    """The API's answer to an action, with the API's status, its body verbatim."""
    return _json({"status": answer.status, "body": answer.body}, status=answer.status if answer.status >= 400 else 200)


class ConsoleServer:
    def __init__(self, plane: ControlPlane, api: AnteroomApi, *, topic: EventGridTopic | None,
                 pstn: PstnSimulator | None, describe: Callable[[], dict[str, Any]], port: int = 0,
                 secret: str | None = None) -> None:
        self.plane, self.api, self.topic, self.pstn = plane, api, topic, pstn
        self.describe = describe
        self.port = port
        self.secret = secret or secrets.token_urlsafe(24)
        self.tap = RequestTap()
        self.tracker = DeliveryTracker(topic) if topic is not None else None
        self._sections: dict[str, str] = {}
        self._clients: set[asyncio.Queue[str | None]] = set()
        self._wake = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._refresher: asyncio.Task[None] | None = None
        self.base_url = ""
        plane.change_listeners.append(self.nudge)
        plane.reset_listeners.append(self._forget)
        if self.tracker is not None:
            topic.log.listeners.append(lambda entry: self.nudge())

    # -- addresses -------------------------------------------------------------------------------
    @property
    def console_url(self) -> str:
        return f"{self.base_url}/?secret={self.secret}"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/control"

    # -- life cycle ------------------------------------------------------------------------------
    async def start(self) -> "ConsoleServer":
        application = web.Application(middlewares=[self._guard], client_max_size=16 * 1024 * 1024)
        router = application.router
        router.add_get("/", self._page)
        router.add_get("/static/{name}", self._static)
        router.add_get("/events", self._events)
        router.add_get("/api/state", self._state)
        router.add_post("/api/actions/{name}", self._action)
        router.add_get("/control/instance", self._instance)
        router.add_post("/control/reset", self._control(self._reset))
        router.add_get("/control/export", self._control(lambda request: self.plane.export_seed()))
        router.add_post("/control/import", self._control(self._import))
        router.add_post("/control/tokens", self._control(self._token))
        router.add_post("/control/subscriptions", self._control(self._add_subscription))
        router.add_delete("/control/subscriptions/{name}", self._control(
            lambda request: self.plane.remove_subscription(request.match_info["name"])))
        quiet_malformed_request_logs()
        self._runner = web.AppRunner(application, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        sock = bind_loopback_socket(self.port)
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self._refresher = asyncio.create_task(self._refresh_forever(), name="console-refresh")
        return self

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
            self._refresher = None
        for queue in list(self._clients):
            queue.put_nowait(None)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _forget(self) -> None:
        self.tap.clear()
        if self.tracker is not None:
            self.tracker.clear()

    # -- the guard -------------------------------------------------------------------------------
    def _presented_secret(self, request: web.Request) -> str | None:
        header = request.headers.get(SECRET_HEADER)
        if header:
            return header
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token:
            return token.strip()
        if request.query.get("secret"):
            return request.query["secret"]
        if request.method == "GET" and (request.path == "/" or request.path.startswith("/static/")):
            return request.cookies.get(COOKIE)
        return None

    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        try:
            loopback = ipaddress.ip_address((request.remote or "").split("%")[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return _json({"error": {"code": "Forbidden", "message": "The console answers loopback callers only."}}, 403)
        presented = self._presented_secret(request)
        if not presented or not hmac.compare_digest(presented.encode(), self.secret.encode()):
            message = "The console's secret is missing." if not presented else "The console's secret is wrong."
            return _json({"error": {"code": "Unauthorized", "message": message + " Use the URL `localdev run` printed "
                                    "(or instance.json's consoleUrl), or send the secret in X-Anteroom-Secret."}}, 401)
        return await handler(request)

    # -- the page --------------------------------------------------------------------------------
    async def _page(self, request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})
        response.set_cookie(COOKIE, self.secret, httponly=True, samesite="Strict", path="/")
        return response

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file() or path.suffix not in _STATIC_TYPES:
            return _json({"error": {"code": "NotFound", "message": f"No file {name}."}}, 404)
        return web.FileResponse(path, headers={"Content-Type": _STATIC_TYPES[path.suffix], "Cache-Control": "no-store"})

    # -- state and the live feed -----------------------------------------------------------------
    def nudge(self) -> None:
        self._wake.set()

    async def sections(self) -> dict[str, Any]:
        stored = await asyncio.get_running_loop().run_in_executor(None, storage_sections, self.tap, self.topic)
        return {"instance": self.describe(), **stored, **loop_sections(self.tracker, self.topic, self.pstn)}

    async def _refresh(self) -> None:
        changed = []
        for name, value in (await self.sections()).items():
            text = json.dumps(value, default=str, sort_keys=True)
            if self._sections.get(name) != text:
                self._sections[name] = text
                changed.append(f"event: {name}\ndata: {text}\n\n")
        for message in changed:
            for queue in list(self._clients):
                queue.put_nowait(message)

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), REFRESH_SECONDS)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            if not self._clients:
                continue
            try:
                await self._refresh()
            except Exception:
                log.exception("console refresh failed")
            await asyncio.sleep(0.1)  # at most ten refreshes a second, however many changes

    async def _state(self, request: web.Request) -> web.Response:
        return _json(await self.sections())

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._clients.add(queue)
        try:
            await self._refresh_sections_for(queue)
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except asyncio.TimeoutError:
                    message = ": keep-alive\n\n"
                if message is None:
                    break
                await response.write(message.encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(queue)
        return response

    async def _refresh_sections_for(self, queue: asyncio.Queue) -> None:
        """A new page gets every section at once, then changes."""
        for name, value in (await self.sections()).items():
            text = json.dumps(value, default=str, sort_keys=True)
            self._sections[name] = text
            queue.put_nowait(f"event: {name}\ndata: {text}\n\n")

    # -- actions ---------------------------------------------------------------------------------
    async def _blocking(self, function: Callable, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, function, *args)

    async def _action(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return _json({"error": {"code": "BadRequest", "message": "The body must be JSON."}}, 400)
        if not isinstance(body, dict):
            return _json({"error": {"code": "BadRequest", "message": "The body must be a JSON object."}}, 400)
        handler = getattr(self, f"_do_{name}", None)
        if handler is None:
            return _json({"error": {"code": "NotFound", "message": f"No console action {name}."}}, 404)
        try:
            return await handler(body)
        except ControlError as error:
            return _json(error.body, error.status)
        except requests.RequestException as error:
            return _json({"error": {"code": "Unreachable", "message": f"{type(error).__name__}: {error}"}}, 502)
        finally:
            self.nudge()

    @staticmethod
    def _text(body: dict, key: str, required: bool = True) -> str | None:
        value = body.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise refusal(400, "BadRequest", f"{key} is required (a string).", key)
        return value

    async def _do_createUser(self, body: dict) -> web.Response:
        return _answer(await self._blocking(self.api.create_user))

    async def _do_createRoom(self, body: dict) -> web.Response:
        room = {key: body[key] for key in ("validFrom", "validUntil", "pstnDialOutEnabled", "participants")
                if body.get(key) not in (None, "")}
        return _answer(await self._blocking(self.api.create_room, room))

    async def _do_updateRoom(self, body: dict) -> web.Response:
        room_id = self._text(body, "roomId")
        patch = {key: body[key] for key in ("validFrom", "validUntil", "pstnDialOutEnabled") if key in body}
        return _answer(await self._blocking(self.api.update_room, room_id, patch))

    async def _do_deleteRoom(self, body: dict) -> web.Response:
        return _answer(await self._blocking(self.api.delete_room, self._text(body, "roomId")))

    async def _do_setParticipants(self, body: dict) -> web.Response:
        participants = body.get("participants")
        if not isinstance(participants, dict):
            raise refusal(400, "BadRequest", "participants must be an object: {rawId: {role} | null}.", "participants")
        return _answer(await self._blocking(self.api.update_participants, self._text(body, "roomId"), participants))

    async def _do_addNewUser(self, body: dict) -> web.Response:
        """A new identity (Identity API), then on the roster with the role asked (Rooms API)."""
        room_id = self._text(body, "roomId")
        created = await self._blocking(self.api.create_user)
        if not created.ok:
            return _answer(created)
        user_id = created.body["identity"]["id"]
        role = body.get("role") or "Attendee"
        answer = await self._blocking(self.api.update_participants, room_id, {user_id: {"role": role}})
        if not answer.ok:
            return _answer(answer)
        return _json({"status": answer.status, "body": {"identity": {"id": user_id}, "role": role}})

    async def _do_join(self, body: dict) -> web.Response:
        return _answer(await self._blocking(self.api.join, self._text(body, "roomId"), self._text(body, "userId")))

    async def _do_me(self, body: dict) -> web.Response:
        return _answer(await self._blocking(self.api.act_self, self._text(body, "roomId"), self._text(body, "userId"),
                                            self._text(body, "action")))

    async def _do_actOn(self, body: dict) -> web.Response:
        return _answer(await self._blocking(self.api.act_on, self._text(body, "roomId"), self._text(body, "userId"),
                                            self._text(body, "participantId"), self._text(body, "action")))

    def _gateway(self) -> str:
        if self.pstn is None:
            raise refusal(409, "PstnNotRunning", "This instance runs without the PSTN simulator (--no-pstn).")
        return self.pstn.url

    async def _do_dialOut(self, body: dict) -> web.Response:
        """Tell the simulated number how to behave, then dial it from the room call (as the user)."""
        number, behaviour = self._text(body, "phoneNumber"), body.get("behaviour") or "answer"
        ring = body.get("ringSeconds") or 0
        rule = await self._blocking(lambda: requests.put(f"{self._gateway()}/numbers/{number}",
                                                         json={"behaviour": behaviour, "ringSeconds": ring}, timeout=30))
        if rule.status_code != 200:
            return _json({"status": rule.status_code, "body": rule.json()}, rule.status_code)
        return _answer(await self._blocking(self.api.dial_out, self._text(body, "roomId"), self._text(body, "userId"),
                                            number, self._text(body, "callerIdNumber")))

    async def _do_phone(self, body: dict) -> web.Response:
        """The phone's side: hang up (`leave`), mute or unmute, as the simulator relays it to the app."""
        number, action = self._text(body, "phoneNumber"), self._text(body, "action")
        if action not in PHONE_ACTIONS:
            raise refusal(400, "BadRequest", f"action must be one of {', '.join(PHONE_ACTIONS)}.", "action")
        reply = await self._blocking(lambda: requests.post(f"{self._gateway()}/phones/{number}/{action}", timeout=60))
        try:
            answer = reply.json()
        except ValueError:
            answer = reply.text
        return _json({"status": reply.status_code, "body": answer}, reply.status_code if reply.status_code >= 400 else 200)

    async def _do_phoneRule(self, body: dict) -> web.Response:
        number, behaviour = self._text(body, "phoneNumber"), body.get("behaviour")
        if behaviour not in BEHAVIOURS:
            raise refusal(400, "BadRequest", f"behaviour must be one of {', '.join(BEHAVIOURS)}.", "behaviour")
        reply = await self._blocking(lambda: requests.put(
            f"{self._gateway()}/numbers/{number}", json={"behaviour": behaviour,
                                                         "ringSeconds": body.get("ringSeconds") or 0}, timeout=30))
        return _json({"status": reply.status_code, "body": reply.json()}, reply.status_code)

    async def _do_addSubscription(self, body: dict) -> web.Response:
        entry = body.get("subscription", body)
        return _json({"status": 200, "body": await self.plane.add_subscription(entry)})

    async def _do_removeSubscription(self, body: dict) -> web.Response:
        return _json({"status": 200, "body": await self.plane.remove_subscription(self._text(body, "name"))})

    async def _do_replay(self, body: dict) -> web.Response:
        request = {key: body[key] for key in ("roomId", "serverCallId", "from", "until", "endpoint", "schema")
                   if body.get(key) not in (None, "")}
        return _answer(await self._blocking(self.api.replay, request))

    async def _do_reset(self, body: dict) -> web.Response:
        return _json({"status": 200, "body": await self.plane.reset(body)})

    # -- the control plane -----------------------------------------------------------------------
    def _control(self, operation: Callable[[web.Request], Awaitable[Any]]):
        async def handle(request: web.Request) -> web.Response:
            try:
                return _json(await operation(request))
            except ControlError as error:
                return _json(error.body, error.status)
            finally:
                self.nudge()
        return handle

    async def _instance(self, request: web.Request) -> web.Response:
        return _json(self.describe())

    @staticmethod
    async def _object(request: web.Request) -> dict:
        if not request.can_read_body:
            return {}
        try:
            body = await request.json()
        except ValueError:
            raise refusal(400, "BadRequest", "The body must be JSON.") from None
        if not isinstance(body, dict):
            raise refusal(400, "BadRequest", "The body must be a JSON object.")
        return body

    async def _reset(self, request: web.Request) -> Any:
        return await self.plane.reset(await self._object(request))

    async def _import(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise refusal(400, "InvalidSeed", "The seed is not UTF-8 text.") from None
        return await self.plane.import_seed(text, request.query.get("source") or "seed")

    async def _add_subscription(self, request: web.Request) -> Any:
        return await self.plane.add_subscription(await self._object(request))

    async def _token(self, request: web.Request) -> Any:
        return await self.plane.mint_token(await self._object(request))
