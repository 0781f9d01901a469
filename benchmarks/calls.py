"""Room-call join and leave through the local host, against the raw Table round trips each one needs on the same Azurite."""
from __future__ import annotations

import argparse
import os
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Sequence

import requests

from benchmarks.api import PhaseResult, format_table, measure, quiet_sdk_logging, run_phase, write_results

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CALL_ROW, ROOM_ROW, USER_ROW = "call", "room", "user"
WARMUP_S = 1.0  # untimed seconds per side first: fills the connection pools on both sides


@dataclass
class Seat:
    """One benchmark thread: its own room (whose call a resident keeps open), user, token and clients."""

    room_id: str
    raw_id: str
    token: str
    generation: str
    session: requests.Session
    rooms_table: object  # azure.data.tables.TableClient
    users_table: object
    base_url: str
    in_call: bool = False
    raw_participant: str | None = None
    raw_in_call: bool = False
    server_call_id: str = ""
    timings: dict[str, PhaseResult] = field(default_factory=dict)

    # -- through the host: what a calling client does ----------------------------------------------
    def post(self, path: str) -> None:
        response = self.session.post(self.base_url + path, headers={"Authorization": f"Bearer {self.token}"}, timeout=60)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")

    def join_or_leave(self) -> str:
        """Alternate: join when out, leave when in. Returns which one ran."""
        if self.in_call:
            self.post(f"/roomCalls/{self.room_id}/me/leave")
        else:
            self.post(f"/roomCalls/{self.room_id}/join")
        self.in_call = not self.in_call
        return "leave" if not self.in_call else "join"

    # -- raw: the round trips a join or a leave needs, and nothing else -------------------------------
    def raw_join_or_leave(self) -> str:
        """Read the token's user, the room, the caller's roster row, the call and its endpoints; commit one transaction."""
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        self.users_table.get_entity(self.raw_id.split("_", 1)[1], USER_ROW)
        self.rooms_table.get_entity(self.room_id, ROOM_ROW)
        self.rooms_table.get_entity(self.room_id, f"p{self.generation}|{self.raw_id}")
        call = self.rooms_table.get_entity(self.room_id, CALL_ROW)
        list(self.rooms_table.query_entities(
            "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
            parameters={"pk": self.room_id, "low": f"cp|{call['ServerCallId']}|", "high": f"cp|{call['ServerCallId']}}}"},
        ))
        now = datetime.now(timezone.utc)
        if not self.raw_in_call:
            self.raw_participant = str(uuid.uuid4())
        endpoint = {
            "PartitionKey": self.room_id, "RowKey": f"cp|{call['ServerCallId']}|{self.raw_participant}",
            # Its own raw id: the app must never mistake the baseline's endpoint for the mover's.
            "RawId": f"{self.raw_id}#baseline", "Kind": "communicationUser", "State": "disconnected" if self.raw_in_call else "connected",
            "JoinedAt": now, "LeftAt": now if self.raw_in_call else None,
        }
        updated = dict(call)
        updated["Connected"] = call["Connected"] + (-1 if self.raw_in_call else 1)
        updated["Sequence"] = call["Sequence"] + 1
        self.rooms_table.submit_transaction([
            ("update", updated, {"mode": UpdateMode.REPLACE, "etag": call.metadata["etag"],
                                 "match_condition": MatchConditions.IfNotModified}),
            ("upsert", endpoint, {"mode": UpdateMode.REPLACE}),
        ])
        self.raw_in_call = not self.raw_in_call
        return "leave" if not self.raw_in_call else "join"


def timed_side(seats: list[Seat], side: str, duration: float, max_ops: int) -> dict[str, PhaseResult]:
    """Run one side on every seat for `duration` seconds; split the latencies into joins and leaves."""
    kinds: dict[int, list[str]] = {}

    failed = {"join": PhaseResult(), "leave": PhaseResult()}

    def call_for(seat: Seat):
        done = kinds.setdefault(id(seat), [])

        def call() -> None:
            # A failed step leaves the seat where it was, so what it was about to do is known here.
            in_call = seat.in_call if side == "sdk" else seat.raw_in_call
            try:
                done.append(seat.join_or_leave() if side == "sdk" else seat.raw_join_or_leave())
            except Exception as error:
                kind = failed["leave" if in_call else "join"]
                kind.errors += 1
                kind.first_error = kind.first_error or f"{type(error).__name__}: {error}"[:300]
                raise
        return call

    total = run_phase([call_for(seat) for seat in seats], duration, max_ops)
    # run_phase keeps latencies in completion order per thread, merged thread by thread: rebuild per kind.
    split = {"join": PhaseResult(), "leave": PhaseResult()}
    offset = 0
    for seat in seats:
        names = kinds.get(id(seat), [])
        for name, latency in zip(names, total.latencies[offset:offset + len(names)]):
            split[name].latencies.append(latency)
            split[name].ops += 1
        offset += len(names)
    for name, result in split.items():
        result.elapsed = total.elapsed
        result.errors, result.first_error = failed[name].errors, failed[name].first_error
    return split


def setup(service, count: int) -> list[Seat]:
    """Rooms with a resident who keeps each call open, and a mover per room who joins and leaves."""
    from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
    from azure.communication.rooms import CommunicationUserIdentifier, RoomParticipant, RoomsClient
    from azure.data.tables import TableClient

    from shared.config.settings import Settings

    settings = Settings.from_env(service.settings, served_at=service.base_url)
    identity = CommunicationIdentityClient.from_connection_string(service.connection_string)
    rooms = RoomsClient.from_connection_string(service.connection_string)
    seats = []
    for _ in range(count):
        (resident, resident_token), (mover, mover_token) = (
            identity.create_user_and_token([CommunicationTokenScope.VOIP]) for _ in range(2))
        room = rooms.create_room(participants=[
            RoomParticipant(communication_identifier=CommunicationUserIdentifier(user.raw_id), role="Attendee")
            for user in (resident, mover)])
        with requests.Session() as session:
            response = session.post(f"{service.base_url}/roomCalls/{room.id}/join",
                                    headers={"Authorization": f"Bearer {resident_token.token}"}, timeout=60)
            response.raise_for_status()
        rooms_table = TableClient.from_connection_string(service.storage_connection_string, settings.table_name("Rooms"))
        generation = rooms_table.get_entity(room.id, ROOM_ROW)["Generation"]
        seats.append(Seat(
            room_id=room.id, raw_id=mover.raw_id, token=mover_token.token, generation=generation,
            session=requests.Session(), rooms_table=rooms_table,
            users_table=TableClient.from_connection_string(service.storage_connection_string,
                                                           settings.table_name("Identities")),
            base_url=service.base_url,
        ))
    return seats


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.calls", description=__doc__)
    parser.add_argument("--concurrency", default="8,32", help="threads, comma separated (default 8,32)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per timed phase (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="timed phases per side, alternating (default 3)")
    parser.add_argument("--max-ops", type=int, default=50_000)
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    concurrency = [int(value) for value in args.concurrency.split(",")]

    from localdev.testing import local_service

    quiet_sdk_logging()
    started = datetime.now(timezone.utc)
    with local_service() as service:
        os.environ["REQUESTS_CA_BUNDLE"] = service.ca_file
        seats = setup(service, max(concurrency))
        rows = []
        for threads in concurrency:
            phase = partial(timed_side, seats[:threads], max_ops=args.max_ops)
            rows += measure(phase, ("join", "leave"), threads, WARMUP_S, args.duration, args.rounds)
            print("\n".join(format_table(rows[-2:]).splitlines()[2:]), file=sys.stderr, flush=True)
    fields = {
        "settings": {"duration_s": args.duration, "rounds": args.rounds,
                     "workload": "per thread: its own room whose call a resident keeps open; a mover joins and leaves",
                     "raw_round_trips": "user read, room read, roster-row read, call read, endpoints query, one transaction"},
        "results": rows,
    }
    print(format_table(rows))
    write_results("calls", started, argv, fields, args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
