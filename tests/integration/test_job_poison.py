"""Poison pills for the job: hostile records among valid ones; the job finishes and stays right.

One bounded run of the real job (MiniCluster, real broker) for the whole module, with restarts
switched off, so a record that fails the job fails the run instead of being retried away. The
input is a small simulated trade stream, daily provider bars and news, with every variant of
``flinktrade.testing.hostile.hostile_records`` interleaved into each topic (plus the reported
cases: a trade at 0.0000001, a provider bar with low 0) and a table of prices at the edges of the
bounds. The tests then check that:

- the valid records' bars and signals equal the plain reference (``flinktrade.testing.reference``),
- each hostile record that must be refused has a dead letter naming a reason (matched by its
  partition and offset), and the few harmless ones (a valid record with 1 MB of padding, a
  provider bar with volume 0 or without ``interval_ms``) were used as valid records,
- the job's Java trade parser and the Python ``events.Trade`` model accept exactly the same trades,
- a second run of the same trades topic in a job with no other input (where each bar is applied as
  it arrives) refuses the same trades and writes the same trade bars and signals.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flinktrade import bus, events
from flinktrade.config import AnalyticsSettings, KafkaSettings
from flinktrade.ingest.simulator import MarketSimulator
from flinktrade.pipeline.analytics import StrategySpec
from flinktrade.pipeline.job import JobIO, JobOptions, run
from flinktrade.testing import reference
from flinktrade.testing.hostile import hostile_records

pytestmark = pytest.mark.integration

SYMBOLS = ["AAA", "BBB", "CCC"]
TRADES = 3_000  # ~1 trade/s: ~50 one-minute bars per symbol
STRATEGY = StrategySpec("sma_cross", {"fast": 3, "slow": 8}, frozenset(SYMBOLS))
PRV = "PRV"
TOMBSTONE = "tombstone"
"""The hostile record without a value (Kafka's null value, not an empty one), on every input."""
DAY = 86_400_000
PROVIDER_DAYS = 30

ACCEPTED_TRADES = {"one_mb"}
"""Hostile trade variants that are valid trades (a valid record with an extra 1 MB field)."""
ACCEPTED_BARS = {"one_mb", "volume_zero", "missing_interval_ms"}
"""Valid provider bars among the variants: padding, a bar with no volume, the default interval."""
ACCEPTED_NEWS = {"one_mb"}

EDGE_PRICES: list[tuple[str, bool]] = [  # (price as JSON text, a valid price?)
    ("0.000001", True),
    ("999999999999.999999", True),
    ("1.500000000", True),  # trailing zeros are not decimals
    ('"12.25"', True),  # a price as a JSON string is read as a decimal too
    ("0.0000001", False),  # the reported case: DECIMAL(18, 6) rounded it to 0
    ("0.0000009", False),
    ("1E-400", False),
    ("1000000000000", False),
    ("12.0000001", False),
    ('"NaN"', False),
    ("-0.0", False),
]


@dataclass
class Run:
    trades: list[tuple[str, Decimal, int, int]]
    """Every trade the job should have used, ``(symbol, price, size, ts)`` in arrival order."""
    provider_bars: list[events.Bar]
    """Every provider bar the job should have used, in time order."""
    hostile: dict[tuple[str, int, int], tuple[str, str]]
    """``(topic, partition, offset) -> (input, variant name)`` of each hostile record sent."""
    edge: dict[tuple[str, int, int], tuple[str, bool]]
    """``(topic, partition, offset) -> (price text, valid)`` of each edge-price trade."""
    bars: list[events.AnalyticsBar]
    signals: list[events.Signal]
    alerts: list[events.Alert]
    deadletters: list[events.DeadLetter]
    names: dict[str, str]


def _trade_json(symbol: str, price: Decimal | str, size: int, ts: int, trade_id: str) -> bytes:
    text = price if isinstance(price, str) else format(price, "f")
    return (
        f'{{"id":"{trade_id}","symbol":"{symbol}","price":{text},"size":{size},"ts":{ts}}}'
    ).encode()


def _positions(servers: str, topic: str) -> dict[bytes | None, list[tuple[int, int]]]:
    """Where each value landed in ``topic``: value (None: a record without one) ->
    [(partition, offset), ...]."""
    where: dict[bytes | None, list[tuple[int, int]]] = {}
    for msg in bus.read_all(servers, topic):
        partition, offset = msg.partition(), msg.offset()
        assert partition is not None and offset is not None
        where.setdefault(msg.value(), []).append((partition, offset))
    return where


@pytest.fixture(scope="module")
def poison_run(kafka, tmp_path_factory: pytest.TempPathFactory) -> Run:  # type: ignore[no-untyped-def]
    servers = kafka.bootstrap_servers
    suffix = tmp_path_factory.mktemp("poison").name
    names = {
        "trades": f"ptrades.{suffix}",
        "news": f"pnews.{suffix}",
        "bars": f"ppbars.{suffix}",
        "analytics_bars": f"pabars.{suffix}",
        "signals": f"psignals.{suffix}",
        "alerts": f"palerts.{suffix}",
        "deadletter": f"pdl.{suffix}",
    }
    bus.ensure_topics(KafkaSettings(bootstrap_servers=servers, partitions=2), names.values())
    # 1 MB variants pass the broker because the producer compresses them
    producer = bus.EventProducer(servers, extra={"message.max.bytes": 8_000_000})

    raws = MarketSimulator(symbols=SYMBOLS, seed=5, gap_ms=1000, news=False).trades(TRADES)
    template = hostile_records({"id": "h", "symbol": "AAA", "price": 1.5, "size": 1, "ts": 1})
    every = len(raws) // (len(template) + len(EDGE_PRICES) + 2)
    used: list[tuple[str, Decimal, int, int]] = []
    sent_hostile: list[tuple[str, str, bytes | None]] = []  # (topic key, name, bytes)
    sent_edge: list[tuple[str, bool, bytes]] = []
    extras = (
        [("hostile", i) for i in range(len(template))]
        + [("edge", i) for i in range(len(EDGE_PRICES))]
        + [("tombstone", 0)]
    )
    for i, raw in enumerate(raws):
        producer.send_raw(names["trades"], raw.to_json(raw.ts), raw.symbol.encode(), raw.ts)
        used.append((raw.symbol, Decimal(raw.cents) / 100, raw.size, raw.ts))
        if i % every or i == 0 or not extras:
            continue
        what, j = extras.pop(0)
        value: bytes | None
        if what == "tombstone":  # a record without a value, as a compacting producer deletes
            value = None
            sent_hostile.append(("trades", TOMBSTONE, value))
        elif what == "hostile":
            base = {
                "id": f"h{i}",
                "symbol": raw.symbol,
                "price": float(Decimal(raw.cents) / 100),
                "size": 1,
                "ts": raw.ts,
            }
            name, value = hostile_records(base)[j]
            assert name == template[j][0]
            sent_hostile.append(("trades", name, value))
            if name in ACCEPTED_TRADES:
                used.append((raw.symbol, Decimal(raw.cents) / 100, 1, raw.ts))
        else:
            text, valid = EDGE_PRICES[j]
            symbol = f"EDGE{j}"
            value = _trade_json(symbol, text, 1, raw.ts, f"e{j}")
            sent_edge.append((text, valid, value))
            if valid:
                used.append((symbol, Decimal(text.strip('"')), 1, raw.ts))
        producer.send_raw(names["trades"], value, raw.symbol.encode(), raw.ts)
    assert not extras, "the stream is too short for every hostile record"

    # Provider bars: one valid daily bar per day, a hostile variant of it after most of them.
    t0 = raws[0].ts - raws[0].ts % DAY
    provider: list[events.Bar] = []
    bar_variants = hostile_records(
        {
            "symbol": PRV,
            "ts": t0,
            "open": 100.25,
            "high": 102.5,
            "low": 99.125,
            "close": 101.75,
            "volume": 7,
            "interval_ms": DAY,
        }
    )
    per_day = math.ceil(len(bar_variants) / PROVIDER_DAYS)
    for day in range(PROVIDER_DAYS):
        bar = events.Bar(
            symbol=PRV,
            ts=t0 + day * DAY,
            open=Decimal(f"{100 + day}.25"),
            high=Decimal(f"{102 + day}.5"),
            low=Decimal(f"{99 + day}.125"),
            close=Decimal(f"{99 + day + (day * 7) % 4}.5"),  # within [low, high]
            volume=10_000 + day,
            interval_ms=DAY,
        )
        producer.send(bar, names["bars"])
        provider.append(bar)
        if day == 1:
            producer.send_raw(names["bars"], None, PRV.encode(), bar.ts)
            sent_hostile.append(("bars", TOMBSTONE, None))
        base = json.loads(events.encode(bar))
        base.pop("ingest_ts")
        for name, value in hostile_records(base)[day * per_day : (day + 1) * per_day]:
            producer.send_raw(names["bars"], value, PRV.encode(), bar.ts)
            sent_hostile.append(("bars", name, value))
            if name in ACCEPTED_BARS:
                interval = DAY if name != "missing_interval_ms" else 60_000
                volume = 0 if name == "volume_zero" else bar.volume
                provider.append(bar.model_copy(update={"volume": volume, "interval_ms": interval}))

    # News: valid stories between the hostile variants of one.
    story = {"id": "n1", "headline": "Quarterly report due", "symbols": ["AAA"], "ts": raws[10].ts}
    for k, (name, value) in enumerate(hostile_records(story)):
        item = events.NewsItem(id=f"n{k}", headline="Quarterly report due", symbols=["BBB"],
                               ts=raws[10 + k].ts)  # fmt: skip
        producer.send(item, names["news"])
        producer.send_raw(names["news"], value, b"AAA", raws[10 + k].ts)
        sent_hostile.append(("news", name, value))
    producer.send_raw(names["news"], None, b"AAA", raws[9].ts)
    sent_hostile.append(("news", TOMBSTONE, None))
    producer.flush()

    hostile: dict[tuple[str, int, int], tuple[str, str]] = {}
    edge: dict[tuple[str, int, int], tuple[str, bool]] = {}
    for key in ("trades", "bars", "news"):
        where = _positions(servers, names[key])
        for topic_key, name, value in sent_hostile:
            if topic_key == key:
                for partition, offset in where[value]:
                    hostile[(names[key], partition, offset)] = (key, name)
        if key == "trades":
            for text, valid, value in sent_edge:
                ((partition, offset),) = where[value]
                edge[(names[key], partition, offset)] = (text, valid)

    io = JobIO(
        bootstrap_servers=servers, bounded=True, from_earliest=True, group_id=suffix, **names
    )
    options = JobOptions(
        strategies=(STRATEGY,),
        checkpoint_dir=Path(str(tmp_path_factory.mktemp("poison-checkpoints"))),
        checkpoint_interval_ms=2000,
        restart_attempts=0,  # a poison pill must fail the run, not be retried away
        analytics=AnalyticsSettings(),
    )
    run(io, options)  # raises if the job failed
    provider.sort(key=lambda b: b.ts + b.interval_ms)
    return Run(
        trades=used,
        provider_bars=provider,
        hostile=hostile,
        edge=edge,
        bars=bus.decode_all(servers, names["analytics_bars"], events.AnalyticsBar),
        signals=bus.decode_all(servers, names["signals"], events.Signal),
        alerts=bus.decode_all(servers, names["alerts"], events.Alert),
        deadletters=bus.decode_all(servers, names["deadletter"], events.DeadLetter),
        names=names,
    )


@pytest.fixture(scope="module")
def trades_only_run(kafka, poison_run: Run, tmp_path_factory: pytest.TempPathFactory) -> Run:  # type: ignore[no-untyped-def]
    """The same trades topic, hostile records and all, through a job with no news and no provider
    bars: the bars reach Python in bundles (``BundledBarOperator``), no buffer, no timer per bar."""
    servers = kafka.bootstrap_servers
    suffix = tmp_path_factory.mktemp("poison-trades-only").name
    outputs = {key: f"t{key}.{suffix}" for key in ("analytics_bars", "signals", "alerts",
                                                   "deadletter")}  # fmt: skip
    bus.ensure_topics(KafkaSettings(bootstrap_servers=servers, partitions=2), outputs.values())
    io = JobIO(bootstrap_servers=servers, trades=poison_run.names["trades"], news=None, bars=None,
               bounded=True, from_earliest=True, group_id=suffix, **outputs)  # fmt: skip
    options = JobOptions(
        strategies=(STRATEGY,),
        checkpoint_dir=Path(str(tmp_path_factory.mktemp("poison-trades-only-checkpoints"))),
        checkpoint_interval_ms=2000,
        restart_attempts=0,
        analytics=AnalyticsSettings(),
    )
    run(io, options)  # raises if the job failed
    return Run(
        trades=poison_run.trades,
        provider_bars=[],
        hostile={k: v for k, v in poison_run.hostile.items() if v[0] == "trades"},
        edge=poison_run.edge,
        bars=bus.decode_all(servers, outputs["analytics_bars"], events.AnalyticsBar),
        signals=bus.decode_all(servers, outputs["signals"], events.Signal),
        alerts=bus.decode_all(servers, outputs["alerts"], events.Alert),
        deadletters=bus.decode_all(servers, outputs["deadletter"], events.DeadLetter),
        names={**outputs, "trades": poison_run.names["trades"]},
    )


def test_a_job_with_trades_only_refuses_the_same_trades_and_writes_the_same_bars(
    poison_run: Run, trades_only_run: Run
) -> None:
    """Without news or provider bars the operator takes its other path (bars in bundles): the
    hostile trades are each one dead letter with a reason, and its trade bars and signals are
    those of the run with every input."""
    letters = _letters(trades_only_run)
    for position, (_key, name) in trades_only_run.hostile.items():
        found = letters.get(position, [])
        if name in ACCEPTED_TRADES:
            assert not found, (name, found[0].reason)
        else:
            assert len(found) == 1 and found[0].reason.strip(), (name, len(found))

    def content(bars: list[events.AnalyticsBar]) -> list[str]:
        """Bars less ingest time and the news features (only the other run has news)."""
        out = []
        for bar in bars:
            if bar.symbol != PRV:
                data = bar.model_dump(mode="json", exclude={"ingest_ts"})
                for name in ("sentiment", "sentiment_avg"):
                    data["indicators"].pop(name, None)
                out.append(json.dumps(data, sort_keys=True))
        return sorted(out)

    assert content(trades_only_run.bars) == content(poison_run.bars)
    assert {(s.symbol, s.bar_ts, s.side) for s in trades_only_run.signals} == {
        (s.symbol, s.bar_ts, s.side) for s in poison_run.signals
    }
    assert trades_only_run.signals


@pytest.fixture(scope="module")
def expected_bars(poison_run: Run) -> list[reference.RefBar]:
    bars = reference.bars(poison_run.trades)
    reference.add_sma(bars, [3, 8])
    return bars


def _letters(run: Run) -> dict[tuple[str, int, int], list[events.DeadLetter]]:
    out: dict[tuple[str, int, int], list[events.DeadLetter]] = {}
    for letter in run.deadletters:
        if letter.partition is not None and letter.offset is not None:
            out.setdefault((letter.source_topic, letter.partition, letter.offset), []).append(
                letter
            )
    return out


def test_trade_bars_equal_the_reference(
    poison_run: Run, expected_bars: list[reference.RefBar]
) -> None:
    got = sorted((b for b in poison_run.bars if b.symbol != PRV), key=lambda b: (b.symbol, b.ts))
    assert [(b.symbol, b.ts) for b in got] == [(r.symbol, r.ts) for r in expected_bars]
    for bar, ref in zip(got, expected_bars, strict=True):
        assert (bar.open, bar.high, bar.low, bar.close) == (ref.open, ref.high, ref.low, ref.close)
        assert (bar.volume, bar.trades) == (ref.volume, ref.trades), (bar.symbol, bar.ts)
        assert bar.vwap is not None and math.isclose(bar.vwap, ref.vwap, rel_tol=1e-12)
        for name in ("sma_3", "sma_8"):
            want, got_value = ref.indicators[name], bar.indicators[name]
            assert (got_value is None) == (want is None), (bar.symbol, bar.ts, name)
            if want is not None and got_value is not None:
                assert math.isclose(got_value, want, rel_tol=1e-12), (bar.symbol, bar.ts, name)
    assert {b.symbol for b in got} >= set(SYMBOLS)


def test_signals_equal_the_reference(
    poison_run: Run, expected_bars: list[reference.RefBar]
) -> None:
    mine = [b for b in expected_bars if b.symbol in SYMBOLS]
    expected = set(reference.sma_cross_signals(mine, 3, 8))
    got = [(s.symbol, s.bar_ts, s.side.value) for s in poison_run.signals]
    assert len(got) == len(set(got)), "duplicate signals"
    assert set(got) == expected
    assert len(expected) >= 3


def test_provider_bars_are_the_valid_ones(poison_run: Run) -> None:
    got = [b for b in poison_run.bars if b.symbol == PRV]

    def content(bar: events.Bar) -> tuple[Any, ...]:
        return (bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.interval_ms)

    refused = [  # shown if it fails
        (d.offset, d.reason)
        for d in poison_run.deadletters
        if d.source_topic == poison_run.names["bars"]
    ]
    symbols = Counter(b.symbol for b in poison_run.bars)
    assert Counter(map(content, got)) == Counter(map(content, poison_run.provider_bars)), (
        symbols,
        sorted(refused),
    )
    # SMA(3) over the closes in bar-end order (equal ends have equal closes: any order will do)
    closes = [b.close for b in poison_run.provider_bars]
    want = Counter(
        round(float(sum(closes[i - 2 : i + 1], Decimal(0)) / 3), 9) for i in range(2, len(closes))
    )
    have = Counter(round(v, 9) for b in got if (v := b.indicators.get("sma_3")) is not None)
    assert have == want


def test_every_refused_record_has_a_dead_letter_with_a_reason(poison_run: Run) -> None:
    letters = _letters(poison_run)
    accepted = {"trades": ACCEPTED_TRADES, "bars": ACCEPTED_BARS, "news": ACCEPTED_NEWS}
    missing, unexpected = [], []
    for position, (key, name) in poison_run.hostile.items():
        found = letters.get(position, [])
        if name in accepted[key]:
            if found:
                unexpected.append((key, name, found[0].reason))
        elif len(found) != 1 or not found[0].reason.strip():
            missing.append((key, name, len(found)))
    assert not missing, f"refused records without exactly one dead letter: {missing}"
    assert not unexpected, f"valid records dead-lettered: {unexpected}"
    # the reported cases, by name
    names = {
        (key, name): letters[pos][0].reason
        for pos, (key, name) in poison_run.hostile.items()
        if pos in letters
    }
    assert "price" in names[("trades", "price_tiny")]
    assert "low" in names[("bars", "low_zero")]
    assert "more than 6 decimals" in names[("trades", "price_too_many_decimals")]
    for key in ("trades", "bars", "news"):  # a record without a value, on every input
        assert names[(key, TOMBSTONE)].strip(), key


def test_dead_letters_are_bounded(poison_run: Run) -> None:
    assert poison_run.deadletters
    for letter in poison_run.deadletters:
        assert 0 < len(letter.reason) <= events.MAX_DEAD_REASON_CHARS
        assert len(letter.payload.encode()) <= events.MAX_DEAD_PAYLOAD_BYTES
    by_name = {
        name: letters[0]
        for pos, (key, name) in poison_run.hostile.items()
        if key == "trades" and (letters := _letters(poison_run).get(pos))
    }
    garbage = by_name["one_mb_garbage"]  # a 1 MB record: cut, its size kept
    assert garbage.payload_bytes == 1024 * 1024
    long_symbol = by_name["symbol_very_long"]  # 10,000 characters of symbol: not in the reason
    assert len(long_symbol.reason) < 200, long_symbol.reason


def test_java_parser_and_python_model_accept_the_same_trades(poison_run: Run) -> None:
    letters = _letters(poison_run)
    for position, (text, valid) in poison_run.edge.items():
        refused_by_job = position in letters
        assert refused_by_job == (not valid), (text, letters.get(position))
        try:
            events.decode(events.Trade, _trade_json("X", text, 1, 1, "e"))
            refused_by_model = False
        except events.DecodeError:
            refused_by_model = True
        assert refused_by_model == refused_by_job, text
    edge_bars = {b.symbol: b for b in poison_run.bars if b.symbol.startswith("EDGE")}
    for j, (text, valid) in enumerate(EDGE_PRICES):
        if valid:  # exact, never rounded by DECIMAL(18, 6)
            assert edge_bars[f"EDGE{j}"].close == Decimal(text.strip('"')), text


def test_no_bad_input_reached_the_model(poison_run: Run) -> None:
    """The edges refused every hostile record before the analytics operator: it raised nothing."""
    assert not [a for a in poison_run.alerts if a.kind in ("bad_bar", "bad_news")]
