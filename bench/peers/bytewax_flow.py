"""Bytewax 0.21 dataflow doing the trades-1m work: Kafka input -> key by symbol ->
``stateful_flat_map`` (the shared logic) -> route -> Kafka outputs.

Run in one process with one worker (``bytewax.testing.run_main``); recovery (snapshots) is off,
which is the framework default, so delivery is at-most/at-least-once as the Kafka sink gives it.
"""

from __future__ import annotations

import contextlib
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main

from bench.peers import logic
from bench.peers.common import Stats, parse_args


def build(args: Any, stats: Stats) -> Dataflow:
    flow = Dataflow("trades_1m")
    consumer_extra = {"group.id": args.group}
    producer_extra: dict[str, str] = {"linger.ms": "5"}
    batch = 1000
    if args.low_latency:
        consumer_extra |= {"fetch.wait.max.ms": "1"}
        producer_extra = {"linger.ms": "0"}
        batch = 1
    source = kop.input(
        "in",
        flow,
        brokers=[args.servers],
        topics=[args.input],
        tail=True,
        add_config=consumer_extra,
        batch_size=batch,
    )

    def decode(msg: Any) -> tuple[str, dict[str, Any]]:
        stats.mark("first_consumed_ms")
        rec = orjson.loads(msg.value)
        return rec["symbol"], rec

    keyed = op.map("decode", source.oks, decode)
    outs = op.stateful_flat_map("bars", keyed, logic.on_record)
    topic_of = {"bar": args.bars, "signal": args.signals, "alert": args.alerts}

    def encode(item: tuple[str, logic.Output]) -> KafkaSinkMessage[bytes, bytes]:
        symbol, (kind, value) = item
        return KafkaSinkMessage(symbol.encode(), orjson.dumps(value), topic=topic_of[kind])

    kop.output(
        "out",
        op.map("encode", outs, encode),
        brokers=[args.servers],
        topic=args.bars,
        add_config=producer_extra,
    )
    return flow


def main() -> None:
    args = parse_args(__doc__ or "")
    stats = Stats(args.stats)
    flow = build(args, stats)
    stats.mark("ready_ms")
    with contextlib.suppress(KeyboardInterrupt):
        run_main(flow)


if __name__ == "__main__":
    main()
