"""The job running unbounded, fed while it runs: late trades and a feed that goes quiet.

Late data needs a watermark that has already moved on, so the input arrives in steps, each waiting
for the job's output to show that the previous step was processed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flinktrade import bus, events
from flinktrade.config import AnalyticsSettings, KafkaSettings
from flinktrade.pipeline.job import JobIO, JobOptions, run

pytestmark = pytest.mark.integration

T0 = 1_704_205_800_000  # 2024-01-02 14:30 UTC
MINUTE = 60_000
STALE_AFTER_MS = 3 * MINUTE


def trade(i: int, symbol: str, ts: int, price: str = "100.5") -> tuple[bytes, bytes, int]:
    value = f'{{"id":"{symbol}-{i}","symbol":"{symbol}","price":{price},"size":10,"ts":{ts}}}'
    return value.encode(), symbol.encode(), ts


@pytest.fixture(scope="module")
def live_job(kafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    servers = kafka.bootstrap_servers
    suffix = tmp_path_factory.mktemp("live").name
    names = {
        "trades": f"trades.{suffix}",
        "news": f"news.{suffix}",
        "analytics_bars": f"bars.{suffix}",
        "signals": f"signals.{suffix}",
        "alerts": f"alerts.{suffix}",
        "deadletter": f"dl.{suffix}",
    }
    bus.ensure_topics(KafkaSettings(bootstrap_servers=servers, partitions=2), names.values())
    # bars=None: this job reads no provider bars, only trades (and news)
    io = JobIO(bootstrap_servers=servers, from_earliest=True, group_id=suffix, bars=None, **names)
    options = JobOptions(
        checkpoint_dir=Path(str(tmp_path_factory.mktemp("chk"))),
        out_of_orderness_ms=1_000,
        idle_timeout_ms=500,
        analytics=AnalyticsSettings(stale_after_ms=STALE_AFTER_MS),
    )
    client: Any = run(io, options, wait=False)
    try:
        yield {"servers": servers, **names}
    finally:
        client.cancel().result()


def produce(servers: str, topic: str, records: list[tuple[bytes, bytes, int]]) -> None:
    producer = bus.EventProducer(servers)
    for value, key, ts in records:
        producer.send_raw(topic, value, key, ts)
    producer.flush()


def bars(job: dict[str, Any]) -> list[events.AnalyticsBar]:
    return bus.decode_all(job["servers"], job["analytics_bars"], events.AnalyticsBar)


def test_late_trades_go_to_the_deadletter_and_a_quiet_symbol_raises_stale_feed(
    live_job: dict[str, Any],
) -> None:
    servers = live_job["servers"]
    # Minutes 0..9 for AAA and BBB, one trade every 10 s.
    step1 = [trade(i, symbol, T0 + i * 10_000) for i in range(60) for symbol in ("AAA", "BBB")]
    produce(servers, live_job["trades"], step1)
    bus.wait_for(
        lambda: any(b.symbol == "BBB" and b.ts >= T0 + 8 * MINUTE for b in bars(live_job)),
        timeout_s=90,
        what="bars up to minute 8",
    )
    # A trade for minute 1, long closed: late. Then only AAA trades on, for 10 more minutes.
    late = trade(999, "BBB", T0 + MINUTE + 5_000, price="123.25")
    step2 = [trade(100 + i, "AAA", T0 + 10 * MINUTE + i * 10_000) for i in range(60)]
    produce(servers, live_job["trades"], [late, *step2])

    def late_letter() -> list[events.DeadLetter]:
        letters = bus.decode_all(servers, live_job["deadletter"], events.DeadLetter)
        return [d for d in letters if d.reason.startswith("late")]

    bus.wait_for(lambda: bool(late_letter()), timeout_s=60, what="the late trade dead-lettered")
    letter = late_letter()[0]
    assert '"id":"BBB-999"' in letter.payload
    assert letter.ts == T0 + MINUTE + 5_000
    # It was not counted in minute 1's bar.
    minute_1 = [b for b in bars(live_job) if b.symbol == "BBB" and b.ts == T0 + MINUTE]
    assert len(minute_1) == 1 and minute_1[0].trades == 6 and minute_1[0].high < 123

    def stale() -> list[events.Alert]:
        alerts = bus.decode_all(servers, live_job["alerts"], events.Alert)
        return [a for a in alerts if a.kind == "stale_feed"]

    bus.wait_for(lambda: bool(stale()), timeout_s=60, what="a stale_feed alert")
    alerts = stale()
    assert [a.symbol for a in alerts] == ["BBB"], alerts
    assert alerts[0].ts == T0 + 10 * MINUTE + STALE_AFTER_MS  # BBB's last bar ended at minute 10
