"""Plain confluent-kafka consume/produce loop with orjson: the practical Python ceiling.

One process, one consumer, one producer, the shared per-symbol logic in a dict. At-least-once:
offsets auto-commit every 5 s (librdkafka default); outputs are produced asynchronously.
"""

from __future__ import annotations

import orjson
from confluent_kafka import Consumer, Producer

from bench.peers import logic
from bench.peers.common import Stats, parse_args


def main() -> None:
    args = parse_args(__doc__ or "")
    stats = Stats(args.stats)
    consumer_conf = {
        "bootstrap.servers": args.servers,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
    }
    producer_conf = {"bootstrap.servers": args.servers, "linger.ms": 5}
    if args.low_latency:
        consumer_conf |= {"fetch.wait.max.ms": 1}
        producer_conf |= {"linger.ms": 0}
    consumer = Consumer(consumer_conf)
    producer = Producer(producer_conf)
    consumer.subscribe([args.input], on_assign=lambda _c, _p: stats.mark("ready_ms"))
    topic_of = {"bar": args.bars, "signal": args.signals, "alert": args.alerts}
    states: dict[str, list] = {}
    loads, dumps, on_record = orjson.loads, orjson.dumps, logic.on_record
    batch = 1 if args.low_latency else 500
    try:
        while True:
            # Take what has arrived (up to a batch) without waiting for a full batch.
            msgs = consumer.consume(batch, 0) or consumer.consume(1, 0.5)
            if not msgs:
                producer.poll(0)
                continue
            stats.mark("first_consumed_ms")
            for msg in msgs:
                if msg.error():
                    continue
                rec = loads(msg.value())
                symbol = rec["symbol"]
                state, out = on_record(states.get(symbol), rec)
                states[symbol] = state
                for kind, value in out:
                    key = symbol.encode()
                    while True:
                        try:
                            producer.produce(topic_of[kind], dumps(value), key)
                            break
                        except BufferError:
                            producer.poll(0.05)
            producer.poll(0)
    except KeyboardInterrupt:
        pass
    finally:
        producer.flush(30)
        consumer.close()


if __name__ == "__main__":
    main()
