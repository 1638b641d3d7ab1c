"""The API's alert counter: the kinds flinktrade emits keep their label however many unknown
kinds arrive; unknown kinds are counted too, under the bound."""

from __future__ import annotations

from prometheus_client import generate_latest

from flinktrade.api.metrics import ApiMetrics
from flinktrade.events import Alert, Severity


def _alert(i: int, kind: str) -> Alert:
    return Alert(
        ts=1_714_573_800_000 + i, id=f"a{i}", kind=kind, severity=Severity.INFO, message=""
    )


def test_known_kinds_keep_their_label_after_the_unknown_ones_used_up_the_bound() -> None:
    metrics = ApiMetrics(max_label_values=2)
    for i in range(4):
        metrics.count(_alert(i, f"invented_{i}"))  # two take the bound, two become "other"
    metrics.count(_alert(10, "volume_spike"))
    metrics.count(_alert(11, "executor.halt"))
    lines = sorted(
        line
        for line in generate_latest(metrics.registry).decode().splitlines()
        if line.startswith("flinktrade_alerts_total")
    )
    assert lines == [
        'flinktrade_alerts_total{kind="executor.halt",severity="info"} 1.0',
        'flinktrade_alerts_total{kind="invented_0",severity="info"} 1.0',
        'flinktrade_alerts_total{kind="invented_1",severity="info"} 1.0',
        'flinktrade_alerts_total{kind="other",severity="info"} 2.0',
        'flinktrade_alerts_total{kind="volume_spike",severity="info"} 1.0',
    ]
