"""Prometheus metrics of one API instance, in its own registry (several apps may share a process).

Counts are of the events this API has read (including those read back at start-up), so they say
what the system did recently, not since the beginning of the topics.

Label values taken from record contents (strategy names, alert kinds) are bounded: the first
``max_label_values`` distinct values of each label are kept as they are, later ones are counted as
``"other"``, so hostile or buggy records cannot grow the registry without limit. The alert kinds
flinktrade emits (``events.AlertKind``) are a closed set and always keep their own value: only
kinds outside it share the bound. Other labels come from closed sets (topic kinds, sides,
severities, order statuses, drop reasons).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from flinktrade import events

OTHER = "other"
"""The label value standing for every value beyond a label's cap."""
_ALERT_KINDS = frozenset(kind.value for kind in events.AlertKind)

SlackStats = Callable[[], Mapping[str, int]]
"""Returns ``{"posts": n, "rate_limited": m}`` from a notifier running in this process."""


class _SlackCollector(Collector):
    def __init__(self, source: SlackStats) -> None:
        self._source = source

    def collect(self) -> Iterator[CounterMetricFamily]:
        stats = self._source()
        yield CounterMetricFamily(
            "flinktrade_slack_posts", "Messages posted to Slack.", value=stats.get("posts", 0)
        )
        yield CounterMetricFamily(
            "flinktrade_slack_rate_limited",
            "Slack answers of 429 Too Many Requests.",
            value=stats.get("rate_limited", 0),
        )


class BoundedLabel:
    """The values one label may take: the first ``cap`` distinct ones seen, then ``OTHER``.
    Values are also cut to ``max_chars``."""

    def __init__(self, cap: int, max_chars: int = 64) -> None:
        self.cap = cap
        self.max_chars = max_chars
        self._known: set[str] = set()

    def __call__(self, value: str) -> str:
        value = value[: self.max_chars]
        if value in self._known:
            return value
        if len(self._known) >= self.cap:
            return OTHER
        self._known.add(value)
        return value


class ApiMetrics:
    """The counters, gauges and histograms behind ``GET /metrics``."""

    def __init__(self, slack_stats: SlackStats | None = None, max_label_values: int = 50) -> None:
        self._strategy = BoundedLabel(max_label_values)
        self._alert_kind = BoundedLabel(max_label_values)
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter(
            "flinktrade_api_events_in", "Events read from a topic.", ["topic"], registry=r
        )
        self.events_out = Counter(
            "flinktrade_api_events_out",
            "Event messages sent to WebSocket clients.",
            ["topic"],
            registry=r,
        )
        self.dropped = Counter(
            "flinktrade_api_dropped",
            "Records dropped by the feed, by reason (undecodable, out_of_range, error).",
            ["topic", "reason"],
            registry=r,
        )
        self.lag = Gauge(
            "flinktrade_api_consumer_lag",
            "Records in a topic not yet read by the API.",
            ["topic"],
            registry=r,
        )
        self.clients = Gauge(
            "flinktrade_api_stream_clients", "Connected WebSocket clients.", registry=r
        )
        self.signals = Counter(
            "flinktrade_signals", "Signals seen.", ["strategy", "side"], registry=r
        )
        self.orders = Counter(
            "flinktrade_orders", "Order state changes seen, by status.", ["status"], registry=r
        )
        self.alerts = Counter("flinktrade_alerts", "Alerts seen.", ["severity", "kind"], registry=r)
        self.fills = Counter("flinktrade_fills", "Fills seen.", ["side"], registry=r)
        self.order_latency = Histogram(
            "flinktrade_order_latency_seconds",
            "From an order's intent (pending) to its first fill or final state, executor clock.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self._pending_since: dict[str, int] = {}
        if slack_stats is not None:
            r.register(_SlackCollector(slack_stats))

    def count(self, event: events.Event) -> None:
        """Count one new (not repeated) event by what it is."""
        if isinstance(event, events.Signal):
            self.signals.labels(self._strategy(event.strategy), event.side.value).inc()
        elif isinstance(event, events.Alert):
            self.alerts.labels(event.severity.value, self._alert_label(event.kind)).inc()
        elif isinstance(event, events.Fill):
            self.fills.labels(event.side.value).inc()
        elif isinstance(event, events.OrderEvent):
            self.orders.labels(event.status.value).inc()
            self._latency(event)

    def _alert_label(self, kind: str) -> str:
        return kind if kind in _ALERT_KINDS else self._alert_kind(kind)

    def _latency(self, order: events.OrderEvent) -> None:
        key = order.client_order_id
        if order.status == events.OrderStatus.PENDING:
            if len(self._pending_since) > 10_000:  # orders that never finish must not pile up
                self._pending_since.pop(next(iter(self._pending_since)))
            self._pending_since[key] = order.ts
        elif order.filled_qty > 0 or order.status.final:
            started = self._pending_since.pop(key, None)
            if started is not None:
                self.order_latency.observe(max(0, order.ts - started) / 1000)
