"""Screenshot the console (docs/console.png) with Debian's headless Chromium, over a scene made through it.

Starts `python -m localdev run --in-memory --port 0` in a temporary folder, sets a scene up through
the console's own actions (a webhook, a dead webhook retrying, a room with three users and a phone
in its call, a Call Automation connection, a refused request), then drives Chromium with Playwright.

    .venv/bin/python scripts/screenshot_console.py [--out docs/console.png]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from localdev.eventgrid.subscriber import WebhookSubscriber  # noqa: E402
from localdev.pytest_plugin import Anteroom, AnteroomProcess  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def _scene(anteroom: Anteroom, hook: WebhookSubscriber, failing: WebhookSubscriber, act) -> None:
    act("addSubscription", {"subscription": {"name": "my-app", "destination": {"endpointUrl": hook.url}}})
    room = act("createRoom", {"pstnDialOutEnabled": True})["id"]
    users = []
    for role in ("Presenter", "Collaborator", "Attendee"):
        users.append(act("addNewUser", {"roomId": room, "role": role})["identity"]["id"])
    for user in users:
        act("join", {"roomId": room, "userId": user})
    act("me", {"roomId": room, "userId": users[1], "action": "startScreenShare"})
    act("me", {"roomId": room, "userId": users[2], "action": "muteMic"})
    act("me", {"roomId": room, "userId": users[0], "action": "startVideo"})
    act("dialOut", {"roomId": room, "userId": users[0], "phoneNumber": "+14255550123", "behaviour": "answer",
                    "callerIdNumber": anteroom.caller_numbers[0]})
    anteroom.call_automation.connect_call(hook.url, room_id=room)
    act("me", {"roomId": room, "userId": users[2], "action": "startScreenShare"}, allow_refusal=True)
    act("createRoom", {"validUntil": "2020-01-01T00:00:00Z"}, allow_refusal=True)
    # A subscriber answering 503: its deliveries retry, with their next attempt time.
    act("addSubscription", {"subscription": {"name": "analytics", "eventDeliverySchema": "CloudEventSchemaV1_0",
                                             "destination": {"endpointUrl": failing.url}}})
    act("me", {"roomId": room, "userId": users[2], "action": "leave"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console.png")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)

    import requests
    from playwright.sync_api import sync_playwright

    failing = WebhookSubscriber()
    failing.status = 503
    with tempfile.TemporaryDirectory(prefix="anteroom-screenshot-") as state, WebhookSubscriber() as hook, failing:
        process = AnteroomProcess(Path(state), ROOT, 90)
        anteroom = Anteroom(process.start())
        base = anteroom.control_url.removesuffix("/control")
        headers = {"X-Anteroom-Secret": anteroom.description["secret"]}

        def act(name: str, body: dict, allow_refusal: bool = False) -> dict:
            answer = requests.post(f"{base}/api/actions/{name}", json=body, headers=headers, timeout=60).json()
            if not allow_refusal and answer.get("status", 500) >= 400:
                raise RuntimeError(f"{name}: {answer}")
            return answer.get("body") or {}

        try:
            _scene(anteroom, hook, failing, act)
            time.sleep(1.5)  # the first retry is scheduled, callbacks delivered
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1500, "height": 1080}, device_scale_factor=1)
                page.goto(anteroom.console_url)
                page.wait_for_selector("[data-testid=delivery][data-state=delivered]")
                page.wait_for_selector("[data-testid=delivery][data-state=retrying]")
                page.locator("[data-testid=delivery][data-event-type='Microsoft.Communication.CallStarted'] summary") \
                    .first.click()
                page.evaluate("document.querySelector('#answer').hidden = true")
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=True)
                browser.close()
        finally:
            anteroom.close()
            process.stop()
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
