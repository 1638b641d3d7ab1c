"""One map of topic name <-> event type, and one decoder per topic, whoever reads it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from flinktrade import events, topics

ORDER = (
    b'{"event_id": "e1", "id": "o-42", "client_order_id": "sig-abc", "symbol": "NVDA",'
    b' "side": "buy", "qty": "10", "status": "filled", "filled_qty": "10",'
    b' "filled_avg_price": "901.25", "ts": 1714573805000}'
)


def test_every_topic_is_named_as_its_event_says_and_names_are_unique() -> None:
    names = [t.name for t in topics.ALL]
    assert len(set(names)) == len(names)
    for topic in topics.ALL:
        assert topic.event.topic == topic.name


def test_a_topic_decodes_its_own_event() -> None:
    order = topics.decode("trading.orders", ORDER)
    assert isinstance(order, events.OrderEvent)
    assert order.filled_avg_price == Decimal("901.25")
    assert order.status is events.OrderStatus.FILLED
    again = topics.ORDERS.decode(ORDER)  # ``ingest_ts`` is when it was decoded: the rest is equal
    assert again.model_dump(exclude={"ingest_ts"}) == order.model_dump(exclude={"ingest_ts"})


def test_a_record_of_another_shape_fails_the_topics_contract() -> None:
    # alternative field names that a lenient reader once took: one contract now, so refused
    lenient = b'{"order_id": "o-43", "symbol": "TSLA", "status": "rejected"}'
    with pytest.raises(events.DecodeError, match="Field required"):
        topics.ORDERS.decode(lenient)
    with pytest.raises(events.DecodeError):
        topics.decode("trading.fills", b"not json")


def test_an_unknown_topic_has_no_decoder() -> None:
    with pytest.raises(KeyError, match="known"):
        topics.decode("trading.nope", ORDER)
