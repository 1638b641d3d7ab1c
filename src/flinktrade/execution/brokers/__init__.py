"""Brokers behind one small interface: ``base.Broker``; one module per venue (``simulated``, and
``alpaca``, a package in parts). ``make_broker`` builds the one named on the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flinktrade.errors import ConfigError

if TYPE_CHECKING:
    from flinktrade.config import Settings
    from flinktrade.execution.brokers.base import Broker


def make_broker(settings: Settings, broker: str, *, live: bool = False) -> Broker:
    """The broker named on the command line, configured from the settings."""
    if broker == "sim":
        if live:
            raise ConfigError("--live makes no sense with the simulated broker")
        from flinktrade.execution.brokers.simulated import SimulatedBroker

        return SimulatedBroker(settings)
    if broker == "alpaca":
        from flinktrade.execution.brokers.alpaca import AlpacaBroker

        key = settings.alpaca_api_key_id
        secret = settings.alpaca_api_secret_key
        if key is None or secret is None:
            raise ConfigError("--broker alpaca needs APCA_API_KEY_ID and APCA_API_SECRET_KEY")
        return AlpacaBroker(
            key.get_secret_value(),
            secret.get_secret_value(),
            base_url=settings.alpaca_api_base_url,
            stream_url=settings.alpaca_api_trading_stream_url,
            live=live,
            timeout_s=settings.execution.request_timeout_s,
            max_rate_limit_wait_s=settings.execution.max_rate_limit_wait_s,
            requests_per_minute=settings.execution.trading_requests_per_minute,
        )
    raise ConfigError(f"unknown broker {broker!r} (sim or alpaca)")
