"""Command line: `python -m localdev serve|run|eventgrid|describe|control ...` (host only, the whole local service,
the Event Grid topic only, a running instance's description, its control plane)."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Coroutine, Mapping, Sequence
from urllib.parse import urlparse

from .azurite import REPO_ROOT, AzuriteFolderInUse, AzuriteTable, empty_data_folder
from .certs import DevCertificate, ensure_dev_certificate, requests_ca_bundle
from .console.run import RunConsole
from .control.cli import add_control_commands
from .eventgrid import EventGridTopic
from .eventgrid_trigger import EventGridTriggerAdapter
from .host import READY_PREFIX, FunctionHost, bind_loopback_socket, load_app
from .pstn import PSTN_RULES_FILE, PstnSimulator, load_rules
from .settings import (ACCESS_KEY, EVENTGRID_ENDPOINT, EVENTGRID_KEY, PSTN_CALLER_NUMBERS, PSTN_GATEWAY_URL,
                       STORAGE_CONNECTION_STRING, HostConfig, acs_connection_string, ensure_local_settings,
                       generate_companion_settings)

DEFAULT_STATE_DIR = ".localdev"


def _say(line: str) -> None:
    # Parents wait for these lines on a pipe: flush each one.
    print(line, flush=True)


def _signalled() -> asyncio.Event:
    """An event SIGINT (Ctrl-C), SIGTERM or SIGHUP (the terminal closed) sets, on the running loop."""
    loop, stop = asyncio.get_running_loop(), asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    return stop


def _announce_topic(topic: EventGridTopic) -> None:
    _say(f"Event Grid topic: {topic.endpoint}")
    _say(f"Event Grid key: {topic.key}")
    _say(f"Event Grid subscriptions: {topic.subscriptions_file}")
    _say(f"Event Grid admin: {topic.base_url} (GET /subscriptions, /deliveries, /deadletters)")


async def serve_until_signalled(host: FunctionHost, *, https_port: int | None,
                                http_port: int | None, certificate: DevCertificate | None,
                                access_log: bool = False, grace: float = 10.0,
                                on_ready: Callable[[FunctionHost], None] | None = None) -> None:
    """Start the host, print the readiness line, and stop cleanly on SIGINT/SIGTERM/SIGHUP."""
    signalled = _signalled()
    try:
        urls = await host.start(https_port=https_port, http_port=http_port,
                                certificate=certificate, access_log=access_log)
        if on_ready is not None:
            on_ready(host)
        _say(READY_PREFIX + " ".join(urls))
        await signalled.wait()
    finally:
        await host.stop(grace)
        _say("localdev: stopped")


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run the local servers on uvloop when it is installed: its TLS and loop cost a fraction of asyncio's."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def _exit_status(host: FunctionHost, status: int, *, before_exit: Callable[[], None] | None = None) -> int:
    """`status`, or the process ends here when the host left function calls running.

    concurrent.futures joins its worker threads at interpreter exit, so one thread stuck in a call
    would keep the process alive for as long as that call lasts. Ending at once skips exit
    handlers, so `before_exit` does what they would have done for us.
    """
    if host.abandoned_calls:
        if before_exit is not None:
            before_exit()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def _build_host(args: argparse.Namespace, app_dir: Path) -> FunctionHost:
    app = load_app(args.app, app_dir)
    overrides: dict[str, object] = {"thread_pool_size": args.threads} if args.threads else {}
    if args.header_timeout is not None:
        overrides["header_timeout"] = args.header_timeout
    return FunctionHost(app, HostConfig.load(app_dir, **overrides))


def command_serve(args: argparse.Namespace) -> int:
    app_dir = Path(args.app_dir).resolve()
    certificate = ensure_dev_certificate(args.cert_dir or app_dir / DEFAULT_STATE_DIR / "certs")
    _trust_dev_ca_for_requests(certificate)  # Azurite beside it serves HTTPS with this CA's certificate
    host = _build_host(args, app_dir)
    run_event_loop(serve_until_signalled(host, https_port=args.port, http_port=args.http_port,
                                         certificate=certificate, access_log=args.access_log,
                                         grace=args.grace_seconds))
    return _exit_status(host, 0)


def _previous_storage_port(state_dir: Path) -> int:
    """Azurite's port from the stored connection string, so it stays the same across runs."""
    stored = ensure_local_settings(state_dir).get(STORAGE_CONNECTION_STRING, "")
    for part in stored.split(";"):
        name, _, value = part.partition("=")
        if name == "TableEndpoint":
            return urlparse(value).port or 0
    return 0


def _previous_port_if_free(settings: Mapping[str, str], url_setting: str) -> int:
    """The port of a stored URL when it is free again (URLs handed out stay valid), else 0 (any)."""
    port = urlparse(settings.get(url_setting, "")).port or 0
    if not port:
        return 0
    try:
        bind_loopback_socket(port).close()
    except OSError:
        logging.getLogger("localdev").info("port %d is taken; %s gets a new one", port, url_setting)
        return 0
    return port


def _start_azurite(state_dir: Path, certificate: DevCertificate, *, in_memory: bool, port: int,
                   repo_root: Path = REPO_ROOT) -> AzuriteTable:
    """Azurite on the state dir's folder (locked: a previous Azurite still saving there is waited for), over HTTPS."""
    location = None if in_memory else state_dir / "azurite"
    if port:
        return AzuriteTable(certificate=certificate, location=location, port=port, repo_root=repo_root).start()
    previous = _previous_storage_port(state_dir)
    if previous:
        try:
            return AzuriteTable(certificate=certificate, location=location, port=previous, repo_root=repo_root).start()
        except AzuriteFolderInUse:
            raise
        except RuntimeError:
            logging.getLogger("localdev").info("port %d is taken; Azurite gets a new one", previous)
    return AzuriteTable(certificate=certificate, location=location, port=0, repo_root=repo_root).start()


def _trust_dev_ca_for_requests(certificate: DevCertificate) -> None:
    """Let the app's requests-based clients (Table storage, the Event Grid publisher) reach Azurite and the topic."""
    os.environ["REQUESTS_CA_BUNDLE"] = str(requests_ca_bundle(certificate))


def _start_topic(args: argparse.Namespace, state_dir: Path, settings: Mapping[str, str], certificate: DevCertificate,
                 host: FunctionHost) -> EventGridTopic:
    """The topic, delivering to the app's Event Grid-triggered functions in this process."""
    adapter = host.adapters.get(EventGridTriggerAdapter.binding_type)
    port = args.eventgrid_port if args.eventgrid_port is not None else \
        _previous_port_if_free(settings, EVENTGRID_ENDPOINT)
    return EventGridTopic(state_dir / "eventgrid", key=settings[EVENTGRID_KEY], port=port, certificate=certificate,
                          time_scale=args.eventgrid_time_scale,
                          function_invoker=adapter.deliver if isinstance(adapter, EventGridTriggerAdapter) else None)


def command_run(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir).resolve()
    app_dir = Path(args.app_dir).resolve()
    console = RunConsole(state_dir, seed_file=args.seed, port=args.console_port)  # a bad seed stops here
    rules_file = Path(args.pstn_rules) if args.pstn_rules else state_dir / PSTN_RULES_FILE
    rules, ring_seconds = {}, {}
    if args.pstn and (args.pstn_rules or rules_file.exists()):
        try:
            rules, ring_seconds = load_rules(rules_file)
        except ValueError as error:
            print(f"PSTN rules refused: {error}", file=sys.stderr, flush=True)
            return 2
    if args.fresh:
        # Stored data goes (Azurite's once no previous Azurite still saves there); keys and the CA
        # stay, so clients keep working.
        empty_data_folder(state_dir / "azurite")
        shutil.rmtree(state_dir / "eventgrid" / "pending", ignore_errors=True)
    certificate = ensure_dev_certificate(state_dir / "certs")
    _trust_dev_ca_for_requests(certificate)
    azurite = _start_azurite(state_dir, certificate, in_memory=args.in_memory, port=args.storage_port,
                             repo_root=Path(args.azurite_dir or REPO_ROOT))
    # Stopped at exit, after the app's own exit handlers (registered later, so run earlier) have
    # written their last log records into it: storage outlives the app, as it does in Azure.
    atexit.register(azurite.stop)
    pstn: PstnSimulator | None = None
    try:
        settings = ensure_local_settings(state_dir, current={STORAGE_CONNECTION_STRING: azurite.connection_string},
                                         generated=generate_companion_settings())
        if args.pstn:
            port = args.pstn_port if args.pstn_port is not None else _previous_port_if_free(settings, PSTN_GATEWAY_URL)
            pstn = PstnSimulator(settings[ACCESS_KEY], ca_file=str(certificate.ca_cert), port=port,
                                 rules=rules, ring_seconds=ring_seconds).start()
            settings = ensure_local_settings(state_dir, current={PSTN_GATEWAY_URL: pstn.url})
        host = _build_host(args, app_dir)
        topic = _start_topic(args, state_dir, settings, certificate, host) if args.eventgrid else None

        def announce(started: FunctionHost) -> None:
            if started.https_port is not None:
                endpoint = f"https://127.0.0.1:{started.https_port}"
                _say(f"connection string: {acs_connection_string(endpoint, settings[ACCESS_KEY])}")
                if pstn is not None:
                    pstn.app_base_url = endpoint  # the phones report to the app here
            _say(f"CA certificate: {certificate.ca_cert}")
            if started.http_port is not None:
                _say(f"plain HTTP: http://127.0.0.1:{started.http_port}")
            _say(f"storage: {azurite.endpoint}")
            if topic is not None:
                _announce_topic(topic)
            if pstn is not None:
                _say(f"PSTN gateway: {pstn.url}")
            console.announce(started)

        async def serve_with_topic() -> None:
            nonlocal settings
            if topic is not None:
                await topic.start()
                settings = ensure_local_settings(state_dir, current={EVENTGRID_ENDPOINT: topic.endpoint})
            exported = dict(settings)
            # The app refuses a topic key without an endpoint, and numbers without a gateway are useless.
            if topic is None:
                exported.pop(EVENTGRID_ENDPOINT, None)
                exported.pop(EVENTGRID_KEY, None)
            if pstn is None:
                exported.pop(PSTN_GATEWAY_URL, None)
                exported.pop(PSTN_CALLER_NUMBERS, None)
            if args.http_port:
                # The host names itself by its HTTPS address (WEBSITE_HOSTNAME); requests signed for
                # the plain HTTP listener name that one, so it is one of the service's hosts too.
                extra = os.environ.get("ANTEROOM_PUBLIC_HOSTS", "")
                exported["ANTEROOM_PUBLIC_HOSTS"] = ",".join(
                    h for h in (extra, f"127.0.0.1:{args.http_port}") if h)
            os.environ.update(exported)  # before the host starts: timers may run at once
            try:
                await console.start(settings=exported, certificate=certificate, storage_endpoint=azurite.endpoint,
                                    topic=topic, pstn=pstn, host=host)
                await serve_until_signalled(host, https_port=args.port, http_port=args.http_port,
                                            certificate=certificate, access_log=args.access_log,
                                            grace=args.grace_seconds, on_ready=announce)
            finally:
                await console.stop()
                if topic is not None:
                    await topic.stop()

        run_event_loop(serve_with_topic())
    finally:
        if pstn is not None:
            pstn.stop()
    return _exit_status(host, console.exit_status, before_exit=azurite.stop)


def command_eventgrid(args: argparse.Namespace) -> int:
    """Only the Event Grid topic, e.g. for an app under `func start` (not beside `run` on one state dir)."""
    state_dir = Path(args.state_dir).resolve()
    settings = ensure_local_settings(state_dir, generated=generate_companion_settings())
    certificate = ensure_dev_certificate(state_dir / "certs")
    port = args.port if args.port is not None else _previous_port_if_free(settings, EVENTGRID_ENDPOINT)
    topic = EventGridTopic(state_dir / "eventgrid", key=settings[EVENTGRID_KEY], port=port,
                           certificate=None if args.http else certificate, ca_file=str(certificate.ca_cert),
                           time_scale=args.time_scale)

    async def serve() -> None:
        signalled = _signalled()
        await topic.start()
        try:
            ensure_local_settings(state_dir, current={EVENTGRID_ENDPOINT: topic.endpoint})
            _announce_topic(topic)
            _say(f"CA certificate: {certificate.ca_cert}")
            _say(READY_PREFIX + topic.base_url)
            await signalled.wait()
        finally:
            await topic.stop()
            _say("localdev: stopped")

    asyncio.run(serve())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m localdev", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="Python logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)

    def add_host_options(sub: argparse.ArgumentParser, default_app_dir: str) -> None:
        sub.add_argument("--app", default="function_app:app",
                         help="module:attribute of the FunctionApp (default function_app:app)")
        sub.add_argument("--app-dir", default=default_app_dir,
                         help="folder with the app module, host.json and local.settings.json")
        sub.add_argument("--port", type=int, default=7071, help="HTTPS port; 0 picks a free one")
        sub.add_argument("--http-port", type=int, default=None, help="also serve plain HTTP here")
        sub.add_argument("--threads", type=int, default=None,
                         help="thread pool for sync functions (default 64)")
        sub.add_argument("--access-log", action="store_true", help="log every request")
        sub.add_argument("--header-timeout", type=float, default=None,
                         help="seconds a connection may take to send a request's headers, from opening "
                              "or from the previous answer (default 60)")
        sub.add_argument("--grace-seconds", type=float, default=10.0,
                         help="on stop, how long running function calls may take to finish (default 10)")

    serve = commands.add_parser("serve", help="serve a FunctionApp with the environment as it is")
    add_host_options(serve, ".")
    serve.add_argument("--cert-dir", default=None,
                       help="dev certificate folder (default <app-dir>/.localdev/certs)")
    serve.set_defaults(handler=command_serve)

    run = commands.add_parser("run", help="Azurite + generated settings + the Anteroom app")
    add_host_options(run, str(REPO_ROOT))
    run.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                     help="settings, certificates and Azurite data (default .localdev)")
    run.add_argument("--fresh", action="store_true", help="wipe stored Azurite data first")
    run.add_argument("--in-memory", action="store_true", help="keep Azurite data in memory only")
    run.add_argument("--storage-port", type=int, default=0,
                     help="Azurite table port (default: the previous run's, else a free one)")
    run.add_argument("--no-eventgrid", dest="eventgrid", action="store_false",
                     help="do not start the local Event Grid topic (the app then keeps no call events)")
    run.add_argument("--eventgrid-port", type=int, default=None,
                     help="Event Grid topic port (default: the previous run's, else a free one)")
    run.add_argument("--eventgrid-time-scale", type=float, default=1.0,
                     help="multiply Event Grid's retry schedule and event time to live (default 1)")
    run.add_argument("--no-pstn", dest="pstn", action="store_false",
                     help="do not start the simulated PSTN network")
    run.add_argument("--pstn-port", type=int, default=None,
                     help="PSTN simulator port (default: the previous run's, else a free one)")
    run.add_argument("--pstn-rules", default=None, metavar="FILE",
                     help=f"what numbers do: decline, busy, noAnswer, ring time (default: <state-dir>/{PSTN_RULES_FILE} "
                          "if it exists)")
    run.add_argument("--azurite-dir", default=None, metavar="DIR",
                     help="folder whose node_modules holds Azurite (default: this checkout; for an installed copy)")
    run.add_argument("--seed", default=None, metavar="FILE",
                     help="import this seed (identities, rooms, subscriptions) once ready; refused whole if invalid")
    run.add_argument("--console-port", type=int, default=0,
                     help="port of the console and control plane (loopback, plain HTTP; default: a free one)")
    run.set_defaults(handler=command_run)

    eventgrid = commands.add_parser("eventgrid", help="only the local Event Grid topic")
    eventgrid.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                           help="key (settings.json), certificates and topic state (default .localdev)")
    eventgrid.add_argument("--port", type=int, default=None,
                           help="topic port (default: the previous one if free, else any)")
    eventgrid.add_argument("--http", action="store_true", help="plain HTTP instead of HTTPS")
    eventgrid.add_argument("--time-scale", type=float, default=1.0,
                           help="multiply Event Grid's retry schedule and event time to live (default 1)")
    eventgrid.set_defaults(handler=command_eventgrid)
    add_control_commands(commands, DEFAULT_STATE_DIR)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except AzuriteFolderInUse as error:  # a message, not a traceback: the user has something to stop
        logging.getLogger("localdev").error("%s", error)
        return 1


if __name__ == "__main__":
    sys.exit(main())
