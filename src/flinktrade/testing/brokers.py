"""The settings of the single-node brokers the tests start."""

from __future__ import annotations

from flinktrade.config import BrokerSettings, JitCompiler
from flinktrade.testing.ports import free_port


def broker_settings(heap: str) -> BrokerSettings:
    """A node on free loopback ports with ``heap``, compiling with C1 only: a test's broker lives
    for minutes, and C2 took ~40 % of its CPU (docs/reliability.md, "Test time")."""
    return BrokerSettings(
        port=free_port(), controller_port=free_port(), heap=heap, jit=JitCompiler.C1
    )
