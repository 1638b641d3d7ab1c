"""The simulator feed on the real broker: after a stall it goes on at its pace, with no burst.

A burst after a stall longer than the job's idle timeout is how the demo used to lose trades as
late (docs/reliability.md, "Late trades in the demo"): many seconds of event time in one moment,
read unevenly across partitions, while the watermark follows the partition read first.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import pytest

from flinktrade import bus
from flinktrade.infra.kafka import LocalKafka
from flinktrade.ingest.simulator import MarketSimulator, RawTrade, SimulatorFeed

pytestmark = pytest.mark.integration

RATE = 200.0  # trades per wall-clock second
STALL_S = 3.0
STALL_AT = 100  # the trade after which the generator stalls
TOTAL = 500


class StallingSimulator(MarketSimulator):
    """A simulator whose generator stops for ``STALL_S`` once, as a starved thread would."""

    def __iter__(self) -> Iterator[RawTrade]:  # type: ignore[override]
        for n, item in enumerate(super().__iter__()):
            if n == STALL_AT:
                threading.Event().wait(STALL_S)  # the stall itself is the scenario, not a wait
            assert isinstance(item, RawTrade)
            yield item


def test_a_stalled_feed_resumes_at_its_pace_instead_of_bursting(
    kafka: LocalKafka, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("feed.stall", partitions=1)
    feed = SimulatorFeed(
        kafka.bootstrap_servers,
        StallingSimulator(symbols=2, seed=3, news=False),
        RATE,
        trades_topic=topic,
    )
    feed.start()
    try:
        bus.wait_for(lambda: feed.produced_trades >= TOTAL or not feed.alive, 120, what="trades")
    finally:
        feed.stop()
    assert feed.error is None, feed.error
    assert feed.behind_s >= STALL_S - SimulatorFeed.MAX_BEHIND_S
    sent = sorted(
        json.loads(m.value() or b"{}")["ingest_ts"]
        for m in bus.read_all(kafka.bootstrap_servers, topic)
    )
    assert len(sent) >= TOTAL
    # In any window of wall time the feed's schedule moves by the window plus at most the
    # catch-up it allows; a burst after the stall would put STALL_S x RATE trades in one moment.
    window_ms = 300
    per_tick = RATE * 0.05
    most = RATE * (window_ms / 1000 + SimulatorFeed.MAX_BEHIND_S) + per_tick
    j = 0
    for i, start in enumerate(sent):
        while sent[j] < start - window_ms:
            j += 1
        assert i - j + 1 <= most, f"{i - j + 1} trades within {window_ms} ms (at most {most:.0f})"
