"""The shared base of the loopback fakes (Alpaca data, Alpaca trading, Slack).

``Loopback`` owns what every fake needs and none should write again: its servers' threads
(a ``ThreadingHTTPServer`` and/or a websockets server on its own event loop), ``start``/``stop``
and the context-manager protocol, ``wait_for`` (wait on a condition with a deadline: woken by
``_changed()`` and checked every ``poll_s`` in any case), and ``FaultPlan``, the queue of armed
faults each fake answers from ("the next ``times`` matching requests, after letting ``after``
through").

A fake subclasses it, sets ``label``, starts its servers in ``_start`` and may release extra
resources in ``_stopping_hook``; the wire protocol stays in the fake.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Self, TypeVar

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve

F = TypeVar("F")
T = TypeVar("T")


@dataclass
class Armed(Generic[F]):
    """One armed fault: ``fault`` answers the next ``remaining`` requests whose scope matches,
    once ``after`` matching requests have gone through untouched."""

    fault: F
    remaining: int
    scope: object = None
    after: int = 0


class FaultPlan(Generic[F]):
    """The faults armed on a fake, first armed first served; safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[Armed[F]] = []

    def arm(
        self, fault: F, times: int = 1, *, scope: object = None, after: int = 0,
        replace: bool = False,
    ) -> None:  # fmt: skip
        """Answer the next ``times`` requests in ``scope`` with ``fault``; ``replace`` first
        forgets what is armed in the same scope."""
        with self._lock:
            if replace:
                self._armed = [a for a in self._armed if a.scope != scope]
            if times > 0:
                self._armed.append(Armed(fault, times, scope, after))

    def take(self, in_scope: Callable[[object], bool]) -> F | None:
        """The fault that answers this request (its scope passed ``in_scope``), if any."""
        with self._lock:
            for armed in self._armed:
                if not in_scope(armed.scope):
                    continue
                if armed.after > 0:
                    armed.after -= 1
                    continue
                armed.remaining -= 1
                if armed.remaining <= 0:
                    self._armed.remove(armed)
                return armed.fault
            return None

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()


class Loopback:
    """A fake service on 127.0.0.1: started in ``start`` (or ``with``), stopped in ``stop``."""

    label = "fake"
    """How errors name the fake."""
    poll_s = 0.02
    """``wait_for`` re-checks its predicate at least this often."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        """Guards the fake's recorded state; ``wait_for`` is woken under it."""
        self._condition = threading.Condition(self.lock)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http_servers: list[ThreadingHTTPServer] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_done: asyncio.Event | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> Self:
        self._stop.clear()
        self._start()
        return self

    def _start(self) -> None:
        raise NotImplementedError

    def _stopping_hook(self) -> None:
        """Called by ``stop`` before the servers close (e.g. to wake a worker thread)."""

    def stop(self) -> None:
        self._stop.set()
        self._stopping_hook()
        for server in self._http_servers:
            server.shutdown()
            server.server_close()
        self._http_servers.clear()
        loop, done = self._loop, self._loop_done
        if loop is not None and done is not None and loop.is_running():
            loop.call_soon_threadsafe(done.set)
        for thread in self._threads:
            thread.join(10)
        self._threads.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def pause(self, seconds: float) -> None:
        """Hold the calling thread ``seconds``, or until the fake stops."""
        self._stop.wait(seconds)

    # -- waiting ----------------------------------------------------------------------------------

    def wait_for(
        self, predicate: Callable[[Self], bool], timeout_s: float = 10.0, what: str = ""
    ) -> None:
        """Wait until ``predicate(self)`` holds; ``TimeoutError`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"{self.label}: {what or 'condition'} not met within {timeout_s}s"
                )
            with self._condition:
                self._condition.wait(min(remaining, self.poll_s))

    def _changed(self) -> None:
        """Wake ``wait_for``: the recorded state changed."""
        with self._condition:
            self._condition.notify_all()

    # -- servers ----------------------------------------------------------------------------------

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _serve_http(
        self, handler: type[BaseHTTPRequestHandler], host: str, port: int
    ) -> ThreadingHTTPServer:
        """Serve ``handler`` (it finds the fake as ``self.fake``) on a thread of its own."""
        bound = type(handler.__name__, (handler,), {"fake": self})
        server = ThreadingHTTPServer((host, port), bound)
        server.daemon_threads = True
        self._http_servers.append(server)
        self._spawn(lambda: server.serve_forever(poll_interval=0.05), f"{self.label}-http")
        return server

    def _serve_websockets(
        self,
        handler: Callable[[ServerConnection], Coroutine[Any, Any, None]],
        host: str,
        port: int,
        **options: Any,
    ) -> Server:
        """Serve websockets with ``handler`` on an event loop in a thread of its own; returns
        once it listens (a start-up error is raised here)."""
        started = threading.Event()
        outcome: list[Server | BaseException] = []

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._loop_done = asyncio.Event()
            async with ws_serve(handler, host, port, **options) as server:
                outcome.append(server)
                started.set()
                await self._loop_done.wait()

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # surfaced to the caller of start()
                outcome.append(exc)
            finally:
                started.set()

        self._spawn(run, f"{self.label}-websockets")
        if not started.wait(10) or not outcome:
            raise RuntimeError(f"{self.label}: the websocket server did not start")
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    def _call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 10.0) -> T:
        """Run ``coro`` on the websockets loop and return its result."""
        if self._loop is None:
            raise RuntimeError(f"{self.label} is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def _submit(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` on the websockets loop without waiting for it."""
        if self._loop is None or self._stop.is_set():
            coro.close()
            return
        asyncio.run_coroutine_threadsafe(coro, self._loop)
