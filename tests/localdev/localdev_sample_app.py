"""A tiny FunctionApp that exercises the localdev host (not product code)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

import azure.functions as func


def describe(req: func.HttpRequest, **extra: object) -> func.HttpResponse:
    """Echo what the host handed to the function, as JSON."""
    document = {
        "method": req.method,
        "url": req.url,
        "headers": dict(req.headers),
        "params": dict(req.params),
        "route_params": dict(req.route_params),
        "body": req.get_body().decode("utf-8", errors="replace"),
        "thread": threading.current_thread().name,
        **extra,
    }
    return func.HttpResponse(json.dumps(document), mimetype="application/json")


def create_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="echo/{*rest}", methods=["GET", "POST", "PUT", "DELETE"])
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        return describe(req)

    @app.route(route="rooms/{roomId}", methods=["GET"])
    def get_room(req: func.HttpRequest) -> func.HttpResponse:
        return describe(req, function="get_room")

    @app.route(route="rooms/{roomId}", methods=["PATCH"])
    async def patch_room(req: func.HttpRequest) -> func.HttpResponse:
        return describe(req, function="patch_room")

    @app.route(route="identities/{id}/:issueAccessToken", methods=["POST"])
    def issue_token(req: func.HttpRequest) -> func.HttpResponse:
        return describe(req, function="issue_token")

    @app.route(route="calling/callConnections:connect", methods=["POST"])
    def connect_call(req: func.HttpRequest) -> func.HttpResponse:
        return describe(req, function="connect_call")

    @app.route(route="calling/callConnections/{id}:terminate", methods=["POST"])
    def terminate_call(req: func.HttpRequest) -> func.HttpResponse:
        return describe(req, function="terminate_call")

    @app.route(route="calling/callConnections/{id}", methods=["GET"])
    def get_call(req: func.HttpRequest) -> func.HttpResponse:
        return describe(req, function="get_call")

    @app.route(route="no-content", methods=["DELETE", "GET"])
    def no_content(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(status_code=204, headers={"x-deleted": "yes"})

    @app.route(route="created", methods=["POST"])
    def created(req: func.HttpRequest) -> func.HttpResponse:
        response = func.HttpResponse(b'{"id": 1}', status_code=201, mimetype="application/json",
                                     headers={"Location": "/created/1", "x-ms-request-id": "r-1"})
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        return response

    @app.route(route="teapot")
    def teapot(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("short and stout", status_code=418, charset="latin-1",
                                 mimetype="text/html")

    @app.route(route="text")
    def text(req: func.HttpRequest) -> str:
        return "plain words"

    @app.route(route="boom")
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("sync failure")

    @app.route(route="async-boom")
    async def async_boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("async failure")

    @app.route(route="thread")
    def which_thread(req: func.HttpRequest) -> func.HttpResponse:
        return describe(req)

    @app.route(route="async-thread")
    async def which_thread_async(req: func.HttpRequest) -> func.HttpResponse:
        return describe(req)

    @app.route(route="sleep-sync")
    def sleep_sync(req: func.HttpRequest) -> func.HttpResponse:
        # A line tests can wait for: the call is under way.
        logging.getLogger("sample").warning("sleep-sync: sleeping")
        time.sleep(float(req.params.get("seconds", "0.3")))
        return func.HttpResponse("slept")

    @app.route(route="sleep-async")
    async def sleep_async(req: func.HttpRequest) -> func.HttpResponse:
        await asyncio.sleep(float(req.params.get("seconds", "0.3")))
        return func.HttpResponse("slept")

    @app.route(route="context")
    def with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return describe(req, function_name=context.function_name,
                        invocation_id=context.invocation_id)

    @app.route(route="out-binding", binding_arg_name="res")
    def out_binding(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
        res.set(func.HttpResponse("via out", status_code=202))

    @app.route(route="keyed", auth_level=func.AuthLevel.FUNCTION)
    def keyed(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("function key accepted")

    @app.route(route="admin-only", auth_level=func.AuthLevel.ADMIN)
    def admin_only(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("master key accepted")

    @app.route(route="items/{id:int}")
    def item_by_id(req: func.HttpRequest) -> func.HttpResponse:
        return describe(req, function="item_by_id")

    @app.route(route="items/new")
    def new_item(req: func.HttpRequest) -> func.HttpResponse:
        return describe(req, function="new_item")

    @app.route(route="settings/{name}")
    def setting(req: func.HttpRequest) -> func.HttpResponse:
        import os
        return func.HttpResponse(os.environ.get(req.route_params["name"], "<unset>"))

    @app.queue_trigger(arg_name="message", queue_name="work", connection="AzureWebJobsStorage")
    def on_queue_message(message: func.QueueMessage) -> None:
        """Not supported by the host yet: must be skipped with a log line."""

    return app


app = create_app()
