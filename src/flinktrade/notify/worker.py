"""Delivery to one destination, on its own thread, so a slow or broken channel holds up no other.

The worker paces its channel (``Throttle``): a notice alone is posted as itself, several waiting
for the same slot as one summary. Transient errors are retried with exponential back-off (at least
as long as Slack's ``Retry-After``). A destination error (bad token, channel not found or
archived) is reported once, after which the destination's notices are released without posting.
A rejected message is retried once as text only, then reported and released, and so is a batch that
cannot be rendered (the consumer refuses such records first; this is the backstop). ``on_done`` is called
for every notice the worker is finished with, so the consumer can commit its offset.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flinktrade.bus.offsets import RecordRef
from flinktrade.notify.format import Formatter, Message
from flinktrade.notify.notices import Notice
from flinktrade.notify.sinks import (
    DestinationError,
    MessageRejected,
    Sink,
    TransientDeliveryError,
)
from flinktrade.notify.throttle import Throttle

log = logging.getLogger(__name__)

CONTINUATION_S = 60.0
"""A summary this soon after the channel's last message reads "N more ..."."""


@dataclass(frozen=True)
class Delivery:
    """A notice on its way to one destination, with the record it came from."""

    notice: Notice
    ref: RecordRef


@dataclass
class WorkerStats:
    messages: int = 0
    summaries: int = 0
    delivered: int = 0
    skipped: int = 0
    retries: int = 0
    rate_limited: int = 0
    """Answers of HTTP 429 (each waited out as Retry-After says)."""
    error: str | None = None


class DestinationWorker:
    """Posts the deliveries submitted for one sink, paced, until stopped."""

    def __init__(
        self,
        sink: Sink,
        formatter: Formatter,
        on_done: Callable[[Sequence[Delivery]], None],
        *,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.stats = WorkerStats()
        self._formatter = formatter
        self._on_done = on_done
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._clock = clock
        self._throttle: Throttle[Delivery] = Throttle(sink.min_interval_s)
        self._cond = threading.Condition()
        self._stopping = False
        self._drain_until = float("inf")
        self._dead: DestinationError | None = None
        self._failures = 0
        self._last_accepted = float("-inf")
        self._rejections: set[str] = set()
        self._thread = threading.Thread(
            target=self._run, name=f"notify-{sink.description}", daemon=True
        )

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._throttle)

    def start(self) -> None:
        self._thread.start()

    def submit(self, delivery: Delivery) -> None:
        with self._cond:
            dead = self._dead is not None
            if dead:
                self.stats.skipped += 1
            else:
                self._throttle.add(delivery)
                self._cond.notify()
        if dead:
            self._on_done([delivery])

    def stop(self, drain_s: float) -> None:
        """Finish: keep posting what is pending for up to ``drain_s`` seconds, then end."""
        with self._cond:
            self._stopping = True
            self._drain_until = self._clock() + drain_s
            self._cond.notify()

    def join(self, timeout_s: float) -> bool:
        """Wait for the thread to end; False if it is still running (e.g. inside a request)."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._deliver(batch)
            except Exception:  # a bug must not end the thread and stall the offsets
                log.exception("%s: unexpected error while posting; retrying", self.sink.description)
                self._retry_later(batch, None)

    def _next_batch(self) -> list[Delivery] | None:
        with self._cond:
            while True:
                now = self._clock()
                wait = self._throttle.wait_s(now)
                if self._stopping and (
                    wait is None or self._dead is not None or now + wait > self._drain_until
                ):
                    return None
                if wait == 0.0:
                    return self._throttle.take(now)
                self._cond.wait(wait)

    def _deliver(self, batch: list[Delivery]) -> None:
        try:
            message = self._render(batch)
        except Exception:  # retrying would fail the same way for ever
            log.exception(
                "%s: cannot render %d notice(s); skipped", self.sink.description, len(batch)
            )
            with self._cond:
                self.stats.skipped += len(batch)
            self._on_done(batch)
            return
        try:
            self._post(message)
        except TransientDeliveryError as exc:
            self._retry_later(batch, exc)
            return
        except DestinationError as exc:
            self._give_up(batch, exc)
            return
        except MessageRejected as exc:
            self._rejected(batch, exc)
            return
        self._accepted(batch)

    def _render(self, batch: list[Delivery]) -> Message:
        if len(batch) == 1:
            return self._formatter.notice(batch[0].notice)
        recent = self._clock() - self._last_accepted < CONTINUATION_S
        return self._formatter.summary([d.notice for d in batch], more=recent)

    def _post(self, message: Message) -> None:
        try:
            self.sink.post(message)
        except MessageRejected as exc:
            if not message.blocks:
                raise
            log.warning(
                "%s rejected a message's blocks (%s); sending it as text only",
                self.sink.description,
                exc.code,
            )
            self.sink.post(message.text_only())

    def _accepted(self, batch: list[Delivery]) -> None:
        with self._cond:
            self._last_accepted = self._clock()
            self._throttle.sent(self._last_accepted)
            self._failures = 0
            self.stats.messages += 1
            self.stats.summaries += len(batch) > 1
            self.stats.delivered += len(batch)
        if len(batch) > 1:
            log.info("%s: posted a summary of %d notices", self.sink.description, len(batch))
        self._on_done(batch)

    def _retry_later(self, batch: list[Delivery], exc: TransientDeliveryError | None) -> None:
        delay = min(self._retry_max_s, self._retry_initial_s * 2**self._failures)
        if exc is not None and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        self._failures += 1
        if exc is not None:
            log.warning(
                "%s: not delivered (%s); retrying %d notice(s) in %.1fs (attempt %d)",
                self.sink.description,
                exc,
                len(batch),
                delay,
                self._failures,
            )
        with self._cond:
            self.stats.retries += 1
            if exc is not None and exc.retry_after is not None:
                self.stats.rate_limited += 1
            self._throttle.retry(batch, self._clock() + delay)

    def _give_up(self, batch: list[Delivery], exc: DestinationError) -> None:
        log.error(
            "%s cannot be posted to: %s. Fix the Slack configuration and restart the notifier; "
            "until then its notifications are skipped (other destinations carry on)",
            self.sink.description,
            exc,
        )
        with self._cond:
            self._dead = exc
            released = batch + self._throttle.drain()
            self.stats.error = exc.code
            self.stats.skipped += len(released)
        self._on_done(released)

    def _rejected(self, batch: list[Delivery], exc: MessageRejected) -> None:
        first = batch[0].notice
        what = (
            f"{first.id} ({first.symbol or '-'})"
            if len(batch) == 1
            else f"a summary of {len(batch)} notices"
        )
        level = logging.DEBUG if exc.code in self._rejections else logging.ERROR
        self._rejections.add(exc.code)
        log.log(level, "%s rejected %s: %s; skipped", self.sink.description, what, exc)
        with self._cond:
            self.stats.skipped += len(batch)
        self._on_done(batch)
