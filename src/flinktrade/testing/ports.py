"""Free loopback ports for test brokers and fakes."""

from __future__ import annotations

from flinktrade.infra.process import free_port

__all__ = ["free_port"]
