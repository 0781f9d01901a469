"""A simulated PSTN network for local runs and tests: rings numbers, answers by rule, acts as the phone.

It is the app's PSTN gateway (`ANTEROOM_PSTN_GATEWAY_URL`): the app `POST`s `/calls` with
`{source, target, reference}` and gets `{"outcome": ...}` back once the number rang, and
`DELETE`s `/calls/<reference>` to hang up a leg it ended (ringing: cancelled; connected: ended;
404 when no leg of that reference is up). What a number does is decided by rules,
deterministically: every number answers unless a rule says otherwise.

Rules come from a JSON file (`{"decline": [...], "busy": [...], "noAnswer": [...], "answer": [...],
"ringSeconds": {"<E.164>": seconds}}`, every key optional; `run` reads `<state-dir>/pstn-rules.json`
or `--pstn-rules FILE`) and can be changed at run time with `PUT /numbers/<E.164>`
`{"behaviour": "answer"|"decline"|"busy"|"noAnswer"}`; an optional `"ringSeconds"` (0 to 300) makes
the number ring that long before its outcome (to cancel a dial-out while it rings).

Acting as the phone: `POST /phones/<E.164>/<action>` sends `action` for the number's call in
progress to the app's `/pstn/events` (signed with the access key, like any trusted caller). The
actions the app knows are `leave` (hang up), `muteMic` and `unmuteMic` — a phone may do nothing
else, and the app refuses anything else with 403, which the simulator relays. `GET /calls` lists
every call placed, with its outcome and state.
"""
from __future__ import annotations

import asyncio
import base64
import json
import ssl
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
from aiohttp import web

from shared.auth.hmac import sign_headers
from shared.core.timefmt import format_imf_fixdate

from .host import quiet_malformed_request_logs

BEHAVIOURS = ("answer", "decline", "busy", "noAnswer")
MAX_RING_SECONDS = 300
PSTN_RULES_FILE = "pstn-rules.json"  # read by `run` from its state dir
_OUTCOMES = {"answer": "answered", "decline": "declined", "busy": "busy", "noAnswer": "noAnswer"}


@dataclass
class PlacedCall:
    reference: str
    source: str
    target: str
    outcome: str | None  # None while it rings; "cancelled" when the app hung up before it answered
    state: str  # "ringing", then "connected" while the phone is on the call, "ended" after, "failed" if never answered


def _ring_time(value: object) -> float | None:
    """A ring time in seconds (0 to 300), or None if `value` is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_RING_SECONDS:
        return None
    return value


def load_rules(path: str | Path) -> tuple[dict[str, str], dict[str, float]]:
    """(number -> behaviour, number -> ring seconds) from a rules file; raises ValueError naming a bad entry."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{path}: the rules file is one JSON object")
    rules: dict[str, str] = {}
    ring: dict[str, float] = {}
    for key, value in document.items():
        if key == "ringSeconds" and isinstance(value, dict):
            for number, seconds in value.items():
                if _ring_time(seconds) is None:
                    raise ValueError(f"{path}: ringSeconds of {number} must be a number from 0 to {MAX_RING_SECONDS}")
                ring[number] = _ring_time(seconds)
        elif key in BEHAVIOURS and isinstance(value, list) and all(isinstance(n, str) for n in value):
            rules.update({number: key for number in value})
        else:
            raise ValueError(f"{path}: {key!r} is not one of {BEHAVIOURS} with a list of numbers, nor ringSeconds")
    return rules, ring


class PstnSimulator:
    """The simulated network as an HTTP server on 127.0.0.1, run on its own thread."""

    def __init__(
        self, access_key: str, *, app_base_url: str = "", ca_file: str | None = None,
        rules: dict[str, str] | None = None, ring_seconds: dict[str, float] | None = None, port: int = 0,
    ):
        # The app's URL may be set after start: the app needs our URL before it can start.
        self.app_base_url = app_base_url.rstrip("/")
        self._key = base64.b64decode(access_key)
        # Built once: loading the CA file for every phone action is wasted work.
        self._ssl = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self.rules = dict(rules or {})
        self._initial_rules = dict(self.rules)
        self.ring_seconds: dict[str, float] = dict(ring_seconds or {})
        self._initial_ring_seconds = dict(self.ring_seconds)
        self.calls: list[PlacedCall] = []
        self._port = port
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None  # lives on the simulator's loop, start to stop
        self.url = ""

    # -- the gateway side (called by the app) -------------------------------------------------
    async def _place_call(self, request: web.Request) -> web.Response:
        body = await request.json()
        call = PlacedCall(body["reference"], body["source"], body["target"], None, "ringing")
        with self._lock:
            self.calls.append(call)
        await asyncio.sleep(self.ring_seconds.get(body["target"], 0))
        outcome = _OUTCOMES[self.rules.get(body["target"], "answer")]
        with self._lock:
            if call.state == "ended":  # the app hung up while it rang: the phone never answers
                call.outcome = "cancelled"
                return web.json_response({"outcome": "noAnswer"})
            call.outcome, call.state = outcome, "connected" if outcome == "answered" else "failed"
        return web.json_response({"outcome": outcome})

    async def _hang_up(self, request: web.Request) -> web.Response:
        reference = request.match_info["reference"]
        with self._lock:
            call = next((c for c in reversed(self.calls)
                         if c.reference == reference and c.state in ("ringing", "connected")), None)
            if call is not None:
                call.state = "ended"
        if call is None:
            return web.json_response({"error": f"no leg of {reference} is up"}, status=404)
        return web.Response(status=204)

    async def _set_rule(self, request: web.Request) -> web.Response:
        body = await request.json()
        behaviour, ring = body.get("behaviour"), _ring_time(body.get("ringSeconds", 0))
        if behaviour not in BEHAVIOURS:
            return web.json_response({"error": f"behaviour must be one of {BEHAVIOURS}"}, status=400)
        if ring is None:
            return web.json_response({"error": f"ringSeconds must be a number from 0 to {MAX_RING_SECONDS}"},
                                     status=400)
        self.rules[request.match_info["number"]] = behaviour
        self.ring_seconds[request.match_info["number"]] = ring
        return web.json_response({"number": request.match_info["number"], "behaviour": behaviour})

    async def _list_calls(self, request: web.Request) -> web.Response:
        with self._lock:
            return web.json_response([asdict(call) for call in self.calls])

    # -- the phone side (driven by people or tests) ---------------------------------------------
    async def _phone_action(self, request: web.Request) -> web.Response:
        number, action = request.match_info["number"], request.match_info["action"]
        with self._lock:
            call = next((c for c in reversed(self.calls) if c.target == number and c.state == "connected"), None)
        if call is None:
            return web.json_response({"error": f"{number} is not on a call"}, status=404)
        status, answer = await self._tell_app(call.reference, action)
        if (status == 200 and action == "leave") or status == 404:
            call.state = "ended"  # hung up, or the app already ended the call
        return web.json_response(answer, status=status)

    async def _tell_app(self, reference: str, action: str) -> tuple[int, object]:
        url = f"{self.app_base_url}/pstn/events"
        body = json.dumps({"reference": reference, "action": action}).encode()
        headers = sign_headers(self._key, "POST", url, body, format_imf_fixdate(datetime.now(timezone.utc)))
        headers["Content-Type"] = "application/json"
        async with self._session.post(url, data=body, headers=headers, ssl=self._ssl) as response:
            return response.status, await response.json(content_type=None)

    @staticmethod
    async def _open_session() -> aiohttp.ClientSession:
        # A session must be made on a running loop. No cookie jar: each action stands alone, as it
        # did when every action had a session of its own.
        return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())

    # -- inspection and reset (the console, the control plane) --------------------------------
    def snapshot(self) -> dict:
        """Every call placed and the number rules, as plain data."""
        with self._lock:
            calls = [asdict(call) for call in self.calls]
        behaviours, ring = dict(self.rules), dict(self.ring_seconds)
        rules = {number: {"behaviour": behaviours.get(number, "answer"), "ringSeconds": ring.get(number, 0)}
                 for number in {**behaviours, **ring}}
        return {"calls": calls, "rules": rules}

    def reset(self) -> None:
        """Forget the calls placed and the rules set at run time (those given at start come back)."""
        with self._lock:
            self.calls.clear()
            self.rules = dict(self._initial_rules)
            self.ring_seconds = dict(self._initial_ring_seconds)

    # -- running ----------------------------------------------------------------------------
    def _application(self) -> web.Application:
        application = web.Application()
        application.router.add_post("/calls", self._place_call)
        application.router.add_get("/calls", self._list_calls)
        application.router.add_delete("/calls/{reference}", self._hang_up)
        application.router.add_put("/numbers/{number}", self._set_rule)
        application.router.add_post("/phones/{number}/{action}", self._phone_action)
        return application

    def start(self) -> "PstnSimulator":
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            # Before the server starts, so no phone action can arrive without it.
            self._session = self._loop.run_until_complete(self._open_session())
            quiet_malformed_request_logs()  # the app's requests carry HMAC signatures
            self._runner = web.AppRunner(self._application(), access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self._port)
            self._loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            # After the server: an action still finishing during its cleanup may need the session.
            self._loop.run_until_complete(self._session.close())
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="pstn-simulator", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the PSTN simulator did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> "PstnSimulator":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
