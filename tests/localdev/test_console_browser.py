"""The console in a real browser: Playwright driving Debian's Chromium headless against `localdev run`."""
from __future__ import annotations

import re

import pytest

from localdev.eventgrid.subscriber import WebhookSubscriber

from .instance_support import running_instance

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CALL_STARTED = "Microsoft.Communication.CallStarted"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def instance():
    with running_instance() as (anteroom, _process):
        yield anteroom


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(instance, browser):
    instance.reset()
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto(instance.console_url)
    opened.wait_for_selector("#live.up")
    yield opened
    context.close()
    assert errors == [], errors


def act(page, target, action: str, *, status: int | None = None) -> str:
    """Click `target` (a locator) and wait for the console to show the API's answer to `action`."""
    page.evaluate("document.querySelector('#answer-title').textContent = ''")
    target.click()
    title = page.locator("#answer-title")
    title.filter(has_text=re.compile(rf"^{action} → ")).wait_for()
    if status is not None:
        assert title.inner_text() == f"{action} → {status}", page.inner_text("#answer")
    return page.inner_text("#answer-body")


def room_card(page):
    return page.locator("[data-testid=room]").first


def roster_rows(page):
    return room_card(page).locator("[data-testid=roster-entry]")


def test_a_call_started_in_the_console_is_delivered_and_a_roster_removal_ends_a_users_call(page, instance):
    with WebhookSubscriber() as hook:
        page.fill("[data-testid=subscription-name]", "console-hook")
        page.fill("[data-testid=subscription-endpoint]", hook.url)
        act(page, page.locator("[data-testid=add-subscription]"), "addSubscription", status=200)
        page.locator("[data-testid=subscription][data-name=console-hook] .badge.active").wait_for()

        act(page, page.locator("[data-testid=create-room]"), "createRoom", status=201)
        room_id = room_card(page).get_attribute("data-room-id")
        for expected in (1, 2):
            act(page, room_card(page).locator("[data-testid=new-user]"), "addNewUser", status=200)
            page.wait_for_function(f"document.querySelectorAll('[data-testid=roster-entry]').length === {expected}")
        first, second = [roster_rows(page).nth(i).get_attribute("data-raw-id") for i in (0, 1)]
        for user in (first, second):
            row = room_card(page).locator(f"[data-testid=roster-entry][data-raw-id='{user}']")
            act(page, row.locator("button[data-act=join]"), "join", status=200)
            room_card(page).locator(f"[data-testid=call-participant][data-raw-id='{user}'][data-state=connected]").wait_for()

        delivered = page.locator(f"[data-testid=delivery][data-event-type='{CALL_STARTED}'][data-state=delivered]")
        delivered.wait_for()
        assert [e["data"]["room"]["id"] for e in hook.events() if e["eventType"] == CALL_STARTED] == [room_id]
        delivered.locator("summary").click()  # the payload, collapsible and readable
        assert room_id in delivered.locator("pre.json").inner_text()

        row = room_card(page).locator(f"[data-testid=roster-entry][data-raw-id='{second}']")
        act(page, row.locator("button[data-act=remove]"), "setParticipants", status=200)
        room_card(page).locator(f"[data-testid=call-participant][data-raw-id='{second}'][data-state=disconnected]").wait_for()
        assert roster_rows(page).count() == 1
        room_card(page).locator(f"[data-testid=call-participant][data-raw-id='{first}'][data-state=connected]").wait_for()
        page.locator("[data-testid=delivery][data-event-type='Microsoft.Communication.CallParticipantRemoved']"
                     "[data-state=delivered]").wait_for()


def test_refusals_show_the_apis_error_body_verbatim(page, instance):
    page.fill("#create-room input[name=validUntil]", "2020-01-01T10:00")
    body = act(page, page.locator("[data-testid=create-room]"), "createRoom", status=400)
    assert '"BadArgument"' in body and "The time range end is in the past." in body
    assert page.locator("#answer.error").count() == 1
    assert page.locator("[data-testid=room]").count() == 0  # nothing was created

    page.fill("#create-room input[name=validUntil]", "")
    act(page, page.locator("[data-testid=create-room]"), "createRoom", status=201)
    act(page, room_card(page).locator("[data-testid=new-user]"), "addNewUser", status=200)  # an Attendee
    row = roster_rows(page).first
    act(page, row.locator("button[data-act=join]"), "join", status=200)
    share = row.locator("button[data-self=startScreenShare]")
    body = act(page, share, "me", status=403)
    assert '"MissingCapability"' in body and "does not have the shareScreen capability" in body

    page.click("#tabs button[data-tab=requests]")
    page.locator("[data-testid=request][data-operation=CreateRoom][data-status='400']").wait_for()
    failed_share = page.locator("[data-testid=request][data-operation=ActOnSelf][data-status='403']")
    failed_share.wait_for()
    assert "MissingCapability" in failed_share.inner_text()


def test_a_phone_dialled_from_the_console_answers_and_hangs_up(page, instance):
    act(page, page.locator("[data-testid=create-room]"), "createRoom", status=201)
    card = room_card(page)
    act(page, card.locator("[data-room-action=pstn]"), "updateRoom", status=200)
    card.locator(".badge.ok", has_text="PSTN on").wait_for()
    card.locator(".add-participant select[name=role]").select_option("Presenter")
    act(page, card.locator("[data-testid=new-user]"), "addNewUser", status=200)
    act(page, roster_rows(page).first.locator("button[data-act=join]"), "join", status=200)
    page.wait_for_function("document.querySelector('[data-testid=room] .dialer-choice').value.startsWith('8:acs:')")

    card.locator(".dial-out input[name=phoneNumber]").fill("+14255550111")
    card.locator(".dial-out select[name=behaviour]").select_option("busy")
    body = act(page, card.locator(".dial-out button[type=submit]"), "dialOut", status=200)
    assert '"busy"' in body

    card.locator(".dial-out input[name=phoneNumber]").fill("+14255550112")
    card.locator(".dial-out select[name=behaviour]").select_option("answer")
    body = act(page, card.locator(".dial-out button[type=submit]"), "dialOut", status=200)
    assert '"answered"' in body
    phone = card.locator("[data-testid=call-participant][data-raw-id='4:+14255550112'][data-state=connected]")
    phone.wait_for()
    act(page, phone.locator("button[data-phone=leave]"), "phone", status=200)
    card.locator("[data-testid=call-participant][data-raw-id='4:+14255550112'][data-state=disconnected]").wait_for()
    page.click("#tabs button[data-tab=phones]")
    page.locator("[data-testid=phone-call][data-number='+14255550111'] .badge.busy").wait_for()
    page.locator("[data-testid=phone-call][data-number='+14255550112'][data-state=ended]").wait_for()
