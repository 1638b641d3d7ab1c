import re

import pytest

from flinktrade import events, topics


def test_prices_are_scaled_decimals_and_never_floats() -> None:
    columns = dict(topics.sql_columns(events.AnalyticsBar))
    for name in ("open", "high", "low", "close"):
        assert columns[name] == "DECIMAL(18, 6)"
    assert columns["indicators"] == "MAP<STRING, DOUBLE>"
    assert columns["volume"] == "BIGINT"


@pytest.mark.parametrize("event", list(events.EVENT_TYPES.values()))
def test_no_decimal_without_scale_anywhere(event: type[events.Event]) -> None:
    for _name, typ in topics.sql_columns(event):
        assert not re.search(r"DECIMAL(?!\(\d+, \d+\))", typ)


def test_topic_lookup() -> None:
    assert topics.by_name("trading.signals").event is events.Signal
    with pytest.raises(KeyError, match="known"):
        topics.by_name("nope")
