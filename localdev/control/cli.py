"""`python -m localdev describe` and `python -m localdev control ...`: a running instance, from a shell or a script.

Both find the instance through `<state-dir>/instance.json` (never log text); `control` sends its
request to the instance's control URL with the instance's secret. Answers go to stdout as JSON;
a refusal's error body goes to stderr and the exit status is 1; no instance running: 3.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import requests

from .instance import NotRunning, read_description

EXIT_REFUSED, EXIT_NOT_RUNNING = 1, 3


def _print(value: Any, stream=sys.stdout) -> None:
    print(json.dumps(value, indent=2), file=stream, flush=True)


def command_describe(args: argparse.Namespace) -> int:
    try:
        description = read_description(args.state_dir)
    except NotRunning as error:
        print(f"localdev describe: {error}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    if args.field:
        value: Any = description
        for part in args.field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        print(value if isinstance(value, str) else json.dumps(value))
        return 0
    _print(description)
    return 0


def _call(description: dict[str, Any], method: str, path: str, **options: Any) -> requests.Response:
    headers = {"X-Anteroom-Secret": description["secret"], **options.pop("headers", {})}
    return requests.request(method, description["controlUrl"] + path, headers=headers, timeout=300, **options)


def command_control(args: argparse.Namespace) -> int:
    try:
        description = read_description(args.state_dir)
    except NotRunning as error:
        print(f"localdev control: {error}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    if args.action == "reset":
        body: dict[str, Any] = {"keepSubscriptions": args.keep_subscriptions}
        if args.room:
            body["roomId"] = args.room
        response = _call(description, "POST", "/reset", json=body)
    elif args.action == "export":
        response = _call(description, "GET", "/export")
        if response.status_code == 200 and args.out:
            Path(args.out).write_text(json.dumps(response.json(), indent=2) + "\n", encoding="utf-8")
            print(args.out)
            return 0
    elif args.action == "import":
        data = Path(args.file).read_bytes()
        response = _call(description, "POST", "/import", data=data, params={"source": Path(args.file).name},
                         headers={"Content-Type": "application/json"})
    else:  # token
        response = _call(description, "POST", "/tokens",
                         json={"userId": args.user, "seconds": args.seconds, "scopes": args.scope or ["voip"]})
    try:
        answer = response.json()
    except ValueError:
        answer = response.text
    if response.status_code >= 400:
        _print(answer, sys.stderr)
        return EXIT_REFUSED
    _print(answer)
    return 0


def add_control_commands(commands: argparse._SubParsersAction, default_state_dir: str) -> None:
    describe = commands.add_parser("describe", help="print the running instance's description (instance.json)")
    describe.add_argument("--state-dir", default=default_state_dir, help="the state dir `run` uses")
    describe.add_argument("--field", default=None, help="print one field, e.g. consoleUrl or eventGrid.topic")
    describe.set_defaults(handler=command_describe)

    control = commands.add_parser("control", help="reset, export or import a seed, mint a token (running instance)")
    control.add_argument("--state-dir", default=default_state_dir, help="the state dir `run` uses")
    actions = control.add_subparsers(dest="action", required=True)
    reset = actions.add_parser("reset", help="delete all data (or one room's)")
    reset.add_argument("--room", default=None, help="only this room: deleted as the API deletes, then purged")
    reset.add_argument("--keep-subscriptions", action="store_true", help="keep the Event Grid subscriptions")
    export = actions.add_parser("export", help="identities, rooms, rosters and subscriptions as one seed")
    export.add_argument("--out", default=None, help="write the seed here (default: stdout)")
    load = actions.add_parser("import", help="import a seed; refused whole, with line and reason, if invalid")
    load.add_argument("file")
    token = actions.add_parser("token", help="mint a user token with a chosen lifetime (localdev only)")
    token.add_argument("--user", required=True, help="the user's raw id (8:acs:...)")
    token.add_argument("--seconds", type=int, required=True, help="lifetime in seconds (1 to 86400)")
    token.add_argument("--scope", action="append", help="scope (repeatable; default voip)")
    control.set_defaults(handler=command_control)
