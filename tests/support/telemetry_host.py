"""The local host serving the app in this process, with OpenTelemetry's InMemorySpanExporter beside
the Azure Monitor exporter the app configures: `python -m tests.support.telemetry_host`.

Run as a child (the providers and instrumentations azure-monitor-opentelemetry installs are global
to a process). It prints `listening <url>` once serving; each `spans` line on stdin answers one
JSON line with every span finished so far; `stop` (or the end of stdin) stops it.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import threading

from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from localdev.certs import ensure_dev_certificate
from localdev.host import FunctionHost, load_app
from localdev.settings import HostConfig
from shared.bootstrap import get_services


async def serve(cert_dir: str) -> None:
    root = os.getcwd()
    host = FunctionHost(load_app("function_app:app", root), HostConfig.load(root))
    [url] = await host.start(https_port=0, certificate=ensure_dev_certificate(cert_dir))
    # What the first request would do: build the services, which configures telemetry from
    # APPLICATIONINSIGHTS_CONNECTION_STRING. Then record the spans here too.
    services = get_services()
    provider = trace.get_tracer_provider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    print(f"listening {url}", flush=True)
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()

    def commands() -> None:
        for line in sys.stdin:
            if line.strip() == "spans":
                spans = [json.loads(span.to_json()) for span in exporter.get_finished_spans()]
                print(json.dumps(spans), flush=True)
            elif line.strip() == "stop":
                break
        loop.call_soon_threadsafe(stopped.set)

    threading.Thread(target=commands, daemon=True).start()
    await stopped.wait()
    await host.stop(grace=5)
    services.close()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
    os._exit(0)  # the exporters' threads would hold the exit for their export timeouts
