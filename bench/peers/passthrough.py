"""Pass-through: consume and produce every record unchanged (no decoding, no logic).

The plumbing ceiling of a Python consume/produce loop on this machine. Each output record's
timestamp is the wall-clock time it was produced, so the runner measures from the records.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer

from bench.peers.common import Stats, parse_args


def main() -> None:
    args = parse_args(__doc__ or "")
    stats = Stats(args.stats)
    consumer = Consumer(
        {"bootstrap.servers": args.servers, "group.id": args.group, "auto.offset.reset": "earliest"}
    )
    producer = Producer({"bootstrap.servers": args.servers, "linger.ms": 5})
    consumer.subscribe([args.input], on_assign=lambda _c, _p: stats.mark("ready_ms"))
    try:
        while True:
            msgs = consumer.consume(500, 0) or consumer.consume(1, 0.5)
            if not msgs:
                continue
            stats.mark("first_consumed_ms")
            now = time.time_ns() // 1_000_000
            for msg in msgs:
                while True:
                    try:
                        producer.produce(args.bars, msg.value(), msg.key(), timestamp=now)
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
