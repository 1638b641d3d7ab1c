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


def test_large_trade_alerts_select_on_time_valid_trades_at_the_threshold() -> None:
    from flinktrade.pipeline import sql

    statement = sql.large_trade_insert("parsed", 490)
    assert "WHERE ok AND late_wm IS NULL AND `size` >= 490" in statement
    assert "`size` >= 980 THEN 'critical'" in statement  # critical from twice the threshold
    columns = [name for name, _type in topics.sql_columns(events.Alert)]
    assert all(
        f"`{c}`" in sql.alerts_sink(sql.KafkaTable("b:9092", "g"), "alerts") for c in columns
    )


def test_the_low_latency_profile_writes_without_linger() -> None:
    from flinktrade.pipeline import sql

    assert "'properties.linger.ms' = '0'" in sql.KafkaTable("b", "g", linger_ms=0).sink_options(
        "t", "json", keyed=False
    )
    assert "'properties.linger.ms' = '0'" in sql.outputs_sink(
        sql.KafkaTable("b", "g", linger_ms=0), ["t"]
    )
