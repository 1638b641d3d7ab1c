"""A crash hook for the executor's crash tests, kept out of the core.

``FLINKTRADE_EXECUTOR_CRASH_AT=step:n[,step:n]`` makes the process SIGKILL itself the n-th time it
reaches ``step`` (``intent_stored``, ``offset_committed``, ``request_sent``,
``response_received``; for an entry with its own exits, ``entry_final`` after its final state is
stored and before its exits are, and ``exits_stored`` after their intents are stored and before
any is sent; for an order that closes what open exits protect, ``cancel_stored`` after their
cancel is stored and before any cancel request, and ``exits_canceled`` after the cancels are
confirmed and before the order is sent). The core only calls a ``checkpoint(step)`` it is given (a no-op by
default); the loop gives it a ``CrashHook`` read from the environment.
"""

from __future__ import annotations

import logging
import os
import signal as signals

log = logging.getLogger(__name__)

CRASH_ENV = "FLINKTRADE_EXECUTOR_CRASH_AT"


class CrashHook:
    """Kills this process (SIGKILL) at the n-th pass through a named step, for crash tests."""

    def __init__(self, spec: str | None) -> None:
        self.at: dict[str, int] = {}
        self.seen: dict[str, int] = {}
        for part in filter(None, (spec or "").split(",")):
            step, _, n = part.partition(":")
            self.at[step.strip()] = int(n or 1)

    @classmethod
    def from_env(cls) -> CrashHook:
        return cls(os.environ.get(CRASH_ENV))

    def __call__(self, step: str) -> None:
        if step not in self.at:
            return
        self.seen[step] = self.seen.get(step, 0) + 1
        if self.seen[step] == self.at[step]:
            log.warning("crash hook: SIGKILL at %s #%d", step, self.seen[step])
            logging.shutdown()
            os.kill(os.getpid(), signals.SIGKILL)


def no_checkpoint(_step: str) -> None:
    """The core's default checkpoint: nothing happens."""
