"""Keeps ``make soak``'s harness from rotting, in seconds: its load generator against the real
broker, and its verdicts on data that is right and data that is wrong.

The full soak (job, executor, notifier, faults) takes minutes of the whole machine and is run by
``make soak``, not here. What this checks is what the soak's verdict rests on: the generator sends
its whole schedule (valid and malformed records), its reference bars are those of the records on
the topic (recomputed here with ``flinktrade.testing.reference``, independently of the
generator's own fold), and the comparisons catch a missing or wrong bar and a missing dead letter.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from bench.soak_check import compare_bars, compare_dead_letters, failed_criteria, reference_bars
from bench.soak_load import DEAD_VARIANTS, PRICE_UNITS, run

from flinktrade import bus
from flinktrade.testing import reference

pytestmark = pytest.mark.integration

RATE, DURATION, SYMBOLS, MALFORMED = 2_000.0, 1.5, 5, 60


@pytest.fixture(scope="module")
def sent(kafka, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from flinktrade.config import KafkaSettings

    topic = f"soak-trades.{tmp_path_factory.mktemp('soak').name}"
    bus.ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [topic])
    args = argparse.Namespace(
        servers=kafka.bootstrap_servers,
        topic=topic,
        rate=RATE,
        duration=DURATION,
        symbols=SYMBOLS,
        malformed=MALFORMED,
        seed=3,
        t0_ms=int(time.time() * 1000) + 200,
        event_offset_ms=0,
        flush_timeout=60.0,
    )
    load = json.loads(json.dumps(run(args)))  # as the soak reads it back from its file
    records = [msg.value() or b"" for msg in bus.read_all(kafka.bootstrap_servers, topic)]
    return {"load": load, "records": records}


def _is_malformed(raw: bytes, shas: set[str]) -> bool:
    return hashlib.sha1(raw).hexdigest() in shas


def test_the_whole_schedule_is_on_the_topic(sent: dict[str, Any]) -> None:
    load, records = sent["load"], sent["records"]
    total = int(RATE * DURATION)
    assert load["sent"] == total and load["acked"] == total and load["send_failures"] == 0
    assert len(records) == total
    shas = {sha for _name, sha in load["malformed"]}
    assert sum(_is_malformed(r, shas) for r in records) == MALFORMED
    assert {name for name, _sha in load["malformed"]} == set(DEAD_VARIANTS)


def test_reference_bars_are_those_of_the_valid_records_on_the_topic(sent: dict[str, Any]) -> None:
    load, records = sent["load"], sent["records"]
    shas = {sha for _name, sha in load["malformed"]}
    trades = []
    for raw in records:
        if _is_malformed(raw, shas):
            continue
        t = json.loads(raw, parse_float=Decimal)
        trades.append((t["symbol"], Decimal(t["price"]), int(t["size"]), int(t["ts"])))
    trades.sort(key=lambda t: t[3])  # arrival order per symbol is event-time order
    expected = {
        (b.symbol, b.ts): [b.open, b.high, b.low, b.close, b.volume, b.trades]
        for b in reference.bars(trades)
    }
    ours = {
        key: [*(Decimal(u) / PRICE_UNITS for u in agg[:4]), agg[4], agg[6]]
        for key, agg in reference_bars(load).items()
    }
    assert ours == expected


def _as_job_bar(key: tuple[str, int], agg: list[int]) -> dict[str, Any]:
    prices = dict(zip(("open", "high", "low", "close"), agg[:4], strict=True))
    volume, notional, trades = agg[4:]
    return {
        "symbol": key[0],
        "ts": key[1],
        **{name: Decimal(units) / PRICE_UNITS for name, units in prices.items()},
        "volume": volume,
        "vwap": notional / volume / PRICE_UNITS,
        "trades": trades,
    }


def test_compare_bars_catches_a_missing_and_a_wrong_bar(sent: dict[str, Any]) -> None:
    load = json.loads(json.dumps(sent["load"]))
    first = min(load["bars"], key=lambda b: b[1])[1]
    # Pretend the load went on two minutes longer, so every bar it made must have closed.
    load["last_ts"] = first + 3 * 60_000 + 5_000
    ref = reference_bars(load)
    good = {key: [_as_job_bar(key, agg)] for key, agg in ref.items()}
    assert compare_bars(load, good)["ok"]

    wrong = dict(good)
    key = next(iter(ref))
    wrong[key] = [{**good[key][0], "close": good[key][0]["close"] + Decimal("0.0001")}]
    result = compare_bars(load, wrong)
    assert not result["ok"] and result["mismatched"] == 1

    missing = {k: v for k, v in good.items() if k != key}
    result = compare_bars(load, missing)
    assert not result["ok"] and result["missing"] == 1


def test_compare_dead_letters_wants_exactly_one_per_malformed_record(sent: dict[str, Any]) -> None:
    load, records = sent["load"], sent["records"]
    shas = {sha for _name, sha in load["malformed"]}
    letters = [
        {"source_topic": "t", "reason": "invalid", "payload": raw.decode("utf-8", "replace")}
        for raw in records
        if _is_malformed(raw, shas)
    ]
    assert compare_dead_letters(load, letters, "t")["ok"]
    assert not compare_dead_letters(load, letters[1:], "t")["ok"]
    assert not compare_dead_letters(load, [*letters, letters[0]], "t")["ok"]
    no_reason = [{**letters[0], "reason": ""}, *letters[1:]]
    assert not compare_dead_letters(load, no_reason, "t")["ok"]


def test_dead_letters_are_counted_by_source_record(sent: dict[str, Any]) -> None:
    """The job's dead-letter sink is at-least-once: a dead letter written twice for the same source
    partition and offset (a producer retry after a broker restart) is one; a second dead letter
    for another offset is an extra one."""
    load, records = sent["load"], sent["records"]
    shas = {sha for _name, sha in load["malformed"]}
    letters = [
        {
            "source_topic": "t",
            "reason": "invalid",
            "payload": raw.decode("utf-8", "replace"),
            "partition": 0,
            "offset": offset,
        }
        for offset, raw in enumerate(records)
        if _is_malformed(raw, shas)
    ]
    repeated = [*letters, letters[0], letters[-1]]
    result = compare_dead_letters(load, repeated, "t")
    assert result["ok"], result
    assert result["repeated_offsets"] == 2 and result["received"] == MALFORMED + 2
    assert result["distinct_source_records"] == MALFORMED
    elsewhere = {**letters[0], "offset": len(records) + 1}
    assert not compare_dead_letters(load, [*letters, elsewhere], "t")["ok"]
    assert not compare_dead_letters(load, [*letters[1:], letters[2]], "t")["ok"]


def test_a_failed_soak_names_each_failed_criterion_with_its_figures() -> None:
    result = {
        "criteria": {"bars_equal_reference": True, "dead_letters_exact": False,
                     "no_repeats_by_id": False, "job_never_failed_over": False},
        "bars": {"wire_repeats": 0},
        "signals": {"wire_repeats": 3},
        "orders": {"order_event_wire_repeats": 0, "fill_wire_repeats": 0},
        "dead_letters": {"expected": 10_000, "distinct_source_records": 9_998,
                         "without_reason": 0, "other_sources": 0},
        "job": {"restarts": 1},
    }  # fmt: skip
    assert failed_criteria(result) == [
        "dead_letters_exact: expected 10000, distinct_source_records 9998, without_reason 0, "
        "other_sources 0",
        "no_repeats_by_id: bar_repeats 0, signal_repeats 3, order_event_repeats 0, fill_repeats 0",
        "job_never_failed_over: restarts 1",
    ]
    assert failed_criteria({**result, "criteria": {"dead_letters_exact": True}}) == []
    assert failed_criteria({"pass": False, "error": "the job exited at start"}) == [
        "error: the job exited at start"
    ]
