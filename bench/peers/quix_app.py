"""Quix Streams 3.28 application doing the trades-1m work with its own state store.

Idiomatic Quix: a StreamingDataFrame over the input topic (JSON deserializer), a stateful
``apply`` per message (per-key RocksDB state, changelog topics on: the framework default),
``expand`` the outputs and route them to the bar, signal and alert topics. Delivery:
at-least-once (Quix default), commit every 5 s (default).
"""

from __future__ import annotations

from typing import Any

from quixstreams import Application, State

from bench.peers import logic
from bench.peers.common import Stats, parse_args


def main() -> None:
    args = parse_args(__doc__ or "")
    stats = Stats(args.stats)
    extra: dict[str, Any] = {}
    producer_extra: dict[str, Any] = {}
    if args.low_latency:
        extra = {"fetch.wait.max.ms": 1}
        producer_extra = {"linger.ms": 0}
    app = Application(
        broker_address=args.servers,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=str(args.stats.parent / f"quix-state-{args.group}"),
        consumer_extra_config=extra,
        producer_extra_config=producer_extra,
        on_processing_error=None,
    )
    source = app.topic(args.input, value_deserializer="json")
    outputs = {
        kind: app.topic(name, value_serializer="json")
        for kind, name in (("bar", args.bars), ("signal", args.signals), ("alert", args.alerts))
    }

    def step(rec: dict[str, Any], state: State) -> list[logic.Output]:
        stats.mark("first_consumed_ms")
        new, out = logic.on_record(state.get("s"), rec)
        state.set("s", new)
        return out

    sdf = app.dataframe(source)
    sdf = sdf.apply(step, stateful=True, expand=True)
    for kind, topic in outputs.items():
        sdf[sdf.apply(lambda o, k=kind: o[0] == k)].apply(lambda o: o[1]).to_topic(topic)
    stats.mark("ready_ms")
    app.run()


if __name__ == "__main__":
    main()
