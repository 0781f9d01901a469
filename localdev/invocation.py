"""Calling a user function the way the Python worker does: argument injection, sync in a pool, async awaited."""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import uuid
from concurrent.futures import Executor
from typing import Any, Callable

import azure.functions as func
from azure.functions.decorators.core import BindingDirection

_RETURN_BINDING = "$return"


class InvocationContext(func.Context):
    """The `context` argument: enough of the worker's context for logging and diagnostics."""

    _thread_local = threading.local()

    def __init__(self, function_name: str, function_directory: str) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> threading.local:
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> None:
        return None

    @property
    def retry_context(self) -> None:
        return None


class OutValue(func.Out):
    """An output binding parameter (`func.Out[...]`) whose value the host reads after the call."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


def _settle(future: asyncio.Future, outcome: Any, failed: bool) -> None:
    if future.done():  # the awaiting request was cancelled
        return
    if failed:
        if isinstance(outcome, StopIteration):  # asyncio futures refuse it, as run_in_executor's do
            error = RuntimeError("the function raised StopIteration")
            error.__cause__ = outcome
            outcome = error
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class RunningCalls:
    """Counts function calls on the pool, so a stopping host knows what it would leave behind."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return self._count

    def started(self) -> None:
        with self._lock:
            self._count += 1

    def finished(self) -> None:
        with self._lock:
            self._count -= 1


class HostedFunction:
    """One indexed function: its trigger, and how to call it with the trigger's value."""

    def __init__(self, function: func.Function, *, executor: Executor,
                 function_directory: str, running: RunningCalls) -> None:
        self.name: str = function.get_function_name()
        self.trigger = function.get_trigger()
        self.user_function: Callable[..., Any] = function.get_user_function()
        self.is_async = inspect.iscoroutinefunction(self.user_function)
        self._executor = executor
        self._running = running
        self._function_directory = function_directory
        parameters = inspect.signature(self.user_function).parameters
        self._wants_context = "context" in parameters and self.trigger.name != "context"
        # The result comes back through a named output parameter when an output
        # binding (e.g. the HTTP response) is not bound to `$return`.
        self._output_names = [
            b.name for b in function.get_bindings()
            if b is not self.trigger and b.direction == BindingDirection.OUT.value
            and b.name != _RETURN_BINDING and b.name in parameters
        ]

    @property
    def binding_type(self) -> str:
        return self.trigger.type

    async def _run_in_thread(self, call: Callable[[], Any]) -> Any:
        """`call()` on the thread pool, its outcome handed back to the loop with one wake-up.

        loop.run_in_executor wraps a concurrent.futures.Future in an asyncio one and copies the
        outcome across through callbacks and locks on both sides; this sets it once, on the loop.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def run() -> None:
            try:
                outcome, failed = call(), False
            except BaseException as error:  # noqa: BLE001 - handed to the awaiting coroutine
                outcome, failed = error, True
            try:
                loop.call_soon_threadsafe(_settle, future, outcome, failed)
            except RuntimeError:  # the loop closed while the function ran
                pass

        self._running.started()
        try:
            submitted = self._executor.submit(run)
        except BaseException:
            self._running.finished()
            raise
        # Done covers both ends: the call returned, or the pool cancelled it before it began.
        submitted.add_done_callback(lambda _: self._running.finished())
        return await future

    async def invoke(self, trigger_value: Any) -> Any:
        """Run the function and return its result (the first output parameter if it has no return binding)."""
        kwargs: dict[str, Any] = {self.trigger.name: trigger_value}
        if self._wants_context:
            kwargs["context"] = InvocationContext(self.name, self._function_directory)
        outputs = {name: OutValue() for name in self._output_names}
        kwargs.update(outputs)
        if self.is_async:
            result = await self.user_function(**kwargs)
        else:
            result = await self._run_in_thread(functools.partial(self.user_function, **kwargs))
        if result is None and outputs:
            return next(iter(outputs.values())).get()
        return result
