"""Delivery to one destination: pacing, summaries, retries, permanent errors, draining."""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import pytest
from pydantic import SecretStr

from flinktrade.bus.offsets import RecordRef
from flinktrade.events import Alert, Severity
from flinktrade.notify.format import Formatter, Message
from flinktrade.notify.notices import Notice
from flinktrade.notify.settings import EventType
from flinktrade.notify.sinks import TransientDeliveryError
from flinktrade.notify.slack import WebApiSink, WebhookSink
from flinktrade.notify.worker import Delivery, DestinationWorker
from flinktrade.testing.fake_slack import FakeSlack, Received

SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA", "AMD"]
T0 = 1_714_573_800_000


def delivery(i: int, kind: str = "volume_spike") -> Delivery:
    alert = Alert(
        id=f"a{i}",
        kind=kind,
        severity=Severity.WARNING,
        symbol=SYMBOLS[i % len(SYMBOLS)],
        message=f"alert {i}",
        value=float(i),
        ts=T0 + i,
    )
    notice = Notice(
        f"alert:a{i}", EventType.ALERT, kind, alert.severity, alert.symbol, alert.ts, alert
    )
    return Delivery(notice, RecordRef("alerts", 0, i))


class Done:
    """Collects what a worker is finished with; waits on a condition, never sleeps for luck."""

    def __init__(self) -> None:
        self.items: list[Delivery] = []
        self._cond = threading.Condition()

    def __call__(self, deliveries: Sequence[Delivery]) -> None:
        with self._cond:
            self.items += deliveries
            self._cond.notify_all()

    def wait(self, count: int, timeout_s: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.items) >= count, timeout_s):
                raise TimeoutError(f"{len(self.items)} of {count} deliveries finished")


@pytest.fixture
def workers() -> Iterator[Callable[..., DestinationWorker]]:
    started: list[DestinationWorker] = []

    def start(sink: object, done: Done, **options: float) -> DestinationWorker:
        worker = DestinationWorker(sink, Formatter(), done, **options)  # type: ignore[arg-type]
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(0)
        assert worker.join(10)


def accounted(messages: list[Received]) -> int:
    """How many alerts the messages stand for: 1 per single alert, N per summary ("N ...")."""
    total = 0
    for message in messages:
        summary = re.match(r"(\d+) ", message.text)
        total += int(summary.group(1)) if summary else 1
    return total


def test_burst_of_500_alerts_is_paced_per_channel_and_nothing_is_lost(
    workers: Callable[..., DestinationWorker],
) -> None:
    with FakeSlack(min_interval_s=1.0) as fake:  # the fake answers 429 to anything faster
        done = Done()
        worker = workers(WebhookSink(SecretStr(fake.webhook_url("#alerts"))), done)
        for wave in range(5):  # 500 alerts arriving over two seconds
            for i in range(wave * 100, wave * 100 + 100):
                worker.submit(delivery(i, "volume_spike" if i % 4 else "price_gap"))
            time.sleep(0.5)  # input pacing of the test, not a wait for a result
        done.wait(500)
        messages = fake.messages("#alerts")
    assert all(r.accepted for r in fake.requests), "the fake had to rate-limit us"
    gaps = [b.at - a.at for a, b in itertools.pairwise(messages)]
    assert len(messages) >= 3
    assert min(gaps) >= 1.0
    assert accounted(messages) == 500
    assert sorted(d.ref.offset for d in done.items) == list(range(500))
    summaries = [m.text for m in messages if re.match(r"\d+ more ", m.text)]  # after the first
    assert summaries
    assert re.search(
        r"\d+ volume_spike alerts on 5 symbols; \d+ price_gap alerts on 5", summaries[-1]
    )
    assert worker.stats.delivered == 500
    assert worker.stats.messages == len(messages)


class FlakySink:
    """A sink that fails as told and records when it was called."""

    key = "flaky"
    description = "flaky sink"
    min_interval_s = 0.0

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls: list[float] = []
        self.posted: list[Message] = []

    def post(self, message: Message) -> None:
        self.calls.append(time.monotonic())
        if self.failures:
            raise self.failures.pop(0)
        self.posted.append(message)

    def close(self) -> None:
        pass


def test_transient_errors_retry_with_growing_back_off(
    workers: Callable[..., DestinationWorker],
) -> None:
    sink = FlakySink([TransientDeliveryError("service_unavailable") for _ in range(3)])
    done = Done()
    worker = workers(sink, done, retry_initial_s=0.05, retry_max_s=1.0)
    worker.submit(delivery(1))
    done.wait(1)
    gaps = [b - a for a, b in itertools.pairwise(sink.calls)]
    assert len(sink.calls) == 4
    for gap, back_off in zip(gaps, [0.05, 0.1, 0.2], strict=True):
        assert gap >= back_off
    assert len(sink.posted) == 1
    assert worker.stats.retries == 3


def test_retry_waits_at_least_as_long_as_retry_after(
    workers: Callable[..., DestinationWorker],
) -> None:
    sink = FlakySink([TransientDeliveryError("ratelimited", retry_after=0.4)])
    done = Done()
    workers(sink, done, retry_initial_s=0.01).submit(delivery(1))
    done.wait(1)
    assert sink.calls[1] - sink.calls[0] >= 0.4


def test_permanent_error_is_reported_once_and_other_destinations_carry_on(
    workers: Callable[..., DestinationWorker], caplog: pytest.LogCaptureFixture
) -> None:
    with FakeSlack(channels={"gone", "ok"}) as fake:
        fake.remove_channel("#gone")
        gone_done, ok_done = Done(), Done()
        gone = workers(
            WebApiSink(SecretStr(fake.token), "#gone", fake.api_url, min_interval_s=0.2), gone_done
        )
        ok = workers(
            WebApiSink(SecretStr(fake.token), "#ok", fake.api_url, min_interval_s=0.2), ok_done
        )
        for i in range(10):
            gone.submit(delivery(i))
            ok.submit(delivery(i))
        gone_done.wait(10)
        for i in range(10, 20):  # after the destination was found broken
            gone.submit(delivery(i))
            ok.submit(delivery(i))
        gone_done.wait(20)
        ok_done.wait(20)
        ok_messages = fake.messages("#ok")
        gone_requests = [r for r in fake.requests if r.channel == "gone"]
    assert len(gone_requests) == 1
    assert gone.stats.error == "channel_not_found"
    assert gone.stats.skipped == 20
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "channel_not_found" in errors[0].getMessage()
    assert "#gone" in errors[0].getMessage()
    assert accounted(ok_messages) == 20


def test_rejected_blocks_are_sent_again_as_text_only(
    fake_slack: FakeSlack, workers: Callable[..., DestinationWorker]
) -> None:
    fake_slack.fail("invalid_blocks")
    done = Done()
    workers(WebhookSink(SecretStr(fake_slack.webhook_url("#alerts"))), done).submit(delivery(7))
    done.wait(1)
    [message] = fake_slack.messages()
    assert message.blocks == []
    assert message.text.startswith("[WARNING] Volume spike: NVDA")


def test_stop_drains_what_is_pending_then_ends(fake_slack: FakeSlack) -> None:
    done = Done()
    sink = WebhookSink(SecretStr(fake_slack.webhook_url("#alerts")), min_interval_s=0.3)
    worker = DestinationWorker(sink, Formatter(), done)
    worker.start()
    worker.submit(delivery(0))
    done.wait(1)
    for i in range(1, 11):
        worker.submit(delivery(i))
    worker.stop(drain_s=5.0)
    assert worker.join(5.0)
    assert len(done.items) == 11
    assert accounted(fake_slack.messages()) == 11


def test_stop_without_drain_time_leaves_pending_notices_unposted(fake_slack: FakeSlack) -> None:
    done = Done()
    sink = WebhookSink(SecretStr(fake_slack.webhook_url("#alerts")), min_interval_s=30.0)
    worker = DestinationWorker(sink, Formatter(), done)
    worker.start()
    worker.submit(delivery(0))
    done.wait(1)
    worker.submit(delivery(1))
    worker.stop(drain_s=1.0)  # the next slot is 30 s away
    assert worker.join(2.0)
    assert len(done.items) == 1
    assert worker.pending == 1


def test_a_notice_that_cannot_be_rendered_is_skipped_not_retried_for_ever(
    workers: Callable[..., DestinationWorker],
) -> None:
    sink = FlakySink([])
    done = Done()
    worker = workers(sink, done, retry_initial_s=0.01)
    bad = delivery(1)
    alert = bad.notice.event.model_copy(update={"ts": 10**30})  # no datetime holds this time
    worker.submit(Delivery(replace(bad.notice, event=alert), bad.ref))
    done.wait(1)
    worker.submit(delivery(2))
    done.wait(2)
    assert [d.ref.offset for d in done.items] == [1, 2]
    assert (worker.stats.skipped, worker.stats.delivered, worker.stats.retries) == (1, 1, 0)
    assert len(sink.posted) == 1
