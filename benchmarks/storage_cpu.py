"""CPU per storage call of the app's TableStore, and per roster change, in one thread on a fresh Azurite: where a request's storage time goes.

`.venv/bin/python -m benchmarks.storage_cpu [--plain-connection-string CS]` prints CPU per point
read, 4-entity transaction and 3-row query (best of 3 rounds), and per
`RoomsService.update_participants` of 3 participants with the storage requests it sends. By
default Azurite is started over HTTPS with a dev certificate; `--plain-connection-string` points
at an Azurite already serving plain HTTP instead (to separate what TLS costs). Older commits run
from a `git archive` copy with this file: Azurite is started the way their `AzuriteTable` allows.
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import inspect
import os
import tempfile
import time
from typing import Callable

from localdev.azurite import AzuriteTable
from localdev.certs import ensure_dev_certificate
from localdev.settings import generate_app_settings

PARTICIPANTS = [f"8:acs:{index:08d}-0000-0000-0000-000000000000_0000" for index in range(3)]


def best_cpu_ms(call: Callable[[], object], repeat: int, rounds: int = 3) -> float:
    """The lowest CPU milliseconds per call over `rounds` rounds of `repeat` calls, after a warm-up."""
    for _ in range(50):
        call()
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(repeat):
            call()
        best = min(best, (time.process_time() - started) / repeat * 1000)
    return best


def exchange_costs(store, table, repeat: int) -> list[tuple[str, float]]:
    """CPU ms of the HTTP exchange alone for one signed point read: the app's transport, urllib3, bare http.client."""
    import ssl
    from urllib.parse import urlsplit

    import urllib3

    transport = getattr(store, "_transport", None)  # this file's own run: the TableStore's transport
    captured = []
    if transport is not None and hasattr(transport, "send"):
        send = transport.send
        transport.send = lambda request, **named: captured.append(request) or send(request, **named)
        table.get_entity("p", "0")
        transport.send = send
    if not captured:
        return []  # a commit whose store has no transport of its own
    request = captured[0]
    headers = dict(request.headers)
    url = urlsplit(request.url)
    target = url.path + (f"?{url.query}" if url.query else "")
    ca_file = os.environ["REQUESTS_CA_BUNDLE"]
    costs = [("the app's transport", best_cpu_ms(lambda: transport.send(request), repeat))]
    manager = urllib3.PoolManager(maxsize=4, cert_reqs="CERT_REQUIRED", ca_certs=ca_file, retries=False)
    costs.append(("urllib3 PoolManager", best_cpu_ms(
        lambda: manager.urlopen("GET", request.url, headers=headers, redirect=False).data, repeat)))
    pool = manager.connection_from_url(request.url)
    costs.append(("urllib3 HTTPSConnectionPool", best_cpu_ms(
        lambda: pool.urlopen("GET", target, headers=headers, redirect=False).data, repeat)))
    if url.scheme == "https":
        connection = http.client.HTTPSConnection(url.hostname, url.port, context=ssl.create_default_context(cafile=ca_file))
    else:
        connection = http.client.HTTPConnection(url.hostname, url.port)

    def bare() -> None:
        connection.request("GET", target, headers=headers)
        connection.getresponse().read()

    costs.append(("bare http.client", best_cpu_ms(bare, repeat)))
    manager.clear()
    connection.close()
    return costs


def _azurite(certificate):
    if "certificate" in inspect.signature(AzuriteTable).parameters:
        return AzuriteTable(certificate=certificate)
    return AzuriteTable()  # commits before Azurite served HTTPS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain-connection-string", help="an Azurite already serving plain HTTP")
    parser.add_argument("--repeat", type=int, default=1000)
    args = parser.parse_args()
    certificate = ensure_dev_certificate(tempfile.mkdtemp(prefix="storage-cpu-certs-"))
    os.environ["REQUESTS_CA_BUNDLE"] = str(certificate.ca_cert)
    # Imported after the CA bundle is set: the transport reads the environment once.
    from shared.bootstrap import build_services
    from shared.config.settings import Settings
    from shared.rooms.model import CreateRoomRequest, Role
    from shared.storage.tables import TableStore

    sent = [0]
    send = http.client.HTTPConnection.request

    def counted(self, *positional, **named):
        sent[0] += 1
        return send(self, *positional, **named)

    http.client.HTTPConnection.request = counted  # counts requests sent through http.client
    azurite = contextlib.nullcontext() if args.plain_connection_string else _azurite(certificate)
    with azurite:
        connection_string = args.plain_connection_string or azurite.connection_string
        store = TableStore(connection_string)
        table = store.table("StorageCpu" + os.urandom(4).hex())
        operations = [("upsert", {"PartitionKey": "p", "RowKey": str(i), "a": "x" * 40, "b": 5, "c": True})
                      for i in range(4)]
        table.submit_transaction(operations)
        read = best_cpu_ms(lambda: table.get_entity("p", "0"), args.repeat)
        transaction = best_cpu_ms(lambda: table.submit_transaction(operations), args.repeat // 2)
        query = best_cpu_ms(lambda: list(table.query_entities("PartitionKey eq 'p' and RowKey lt '3'")),
                            args.repeat // 2)
        print(f"point read {read:.3f} ms CPU, 4-entity transaction {transaction:.3f}, 3-row query {query:.3f}")
        print("the HTTP exchange of one signed point read, sent again:",
              ", ".join(f"{name} {cpu * 1000:.0f} µs CPU" for name, cpu in exchange_costs(store, table, args.repeat)))
        store.close()

        settings = {**generate_app_settings(connection_string), "WEBSITE_HOSTNAME": "127.0.0.1:1"}
        services = build_services(Settings.from_env(settings))
        room = services.rooms.create(CreateRoomRequest(None, None, False, {p: Role.ATTENDEE for p in PARTICIPANTS}))
        flips = [0]

        def update() -> None:
            flips[0] += 1  # every update flips the roles, so each one commits
            role = Role.PRESENTER if flips[0] % 2 else Role.ATTENDEE
            services.rooms.update_participants(room.room.id, {p: role for p in PARTICIPANTS})

        before = sent[0]
        per_update = best_cpu_ms(update, args.repeat // 4)
        updates = 50 + 3 * (args.repeat // 4)
        services.close()
        print(f"update_participants {per_update:.3f} ms CPU, "
              f"{(sent[0] - before) / updates:.1f} storage requests per update over http.client")


if __name__ == "__main__":
    main()
