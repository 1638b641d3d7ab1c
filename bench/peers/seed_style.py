"""The seed's style: kafka-python, stdlib json, and a blocking ``send(...).get()`` per message.

Every consumed trade is forwarded with ``send(...).get()`` (the seed acknowledged each tick
before moving on), then the same bar/SMA logic runs and its outputs are sent the same way. The
runner caps its input (50,000 trades by default) because it is slow; the figure says so.
"""

from __future__ import annotations

import json

from kafka import KafkaConsumer, KafkaProducer

from bench.peers import logic
from bench.peers.common import Stats, parse_args


def main() -> None:
    args = parse_args(__doc__ or "")
    stats = Stats(args.stats)
    consumer = KafkaConsumer(
        args.input,
        bootstrap_servers=args.servers,
        group_id=args.group,
        auto_offset_reset="earliest",
    )
    producer = KafkaProducer(bootstrap_servers=args.servers)
    topic_of = {"bar": args.bars, "signal": args.signals, "alert": args.alerts}
    states: dict[str, list] = {}
    stats.mark("ready_ms")
    try:
        for msg in consumer:
            stats.mark("first_consumed_ms")
            rec = json.loads(msg.value)
            symbol = rec["symbol"]
            producer.send(args.input + ".ticks", msg.value, key=msg.key).get()
            state, out = logic.on_record(states.get(symbol), rec)
            states[symbol] = state
            for kind, value in out:
                producer.send(topic_of[kind], json.dumps(value).encode(), key=msg.key).get()
    except KeyboardInterrupt:
        pass
    finally:
        producer.close()
        consumer.close()


if __name__ == "__main__":
    main()
