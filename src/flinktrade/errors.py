"""Exceptions, grouped by what the operator has to do about them.

The CLI maps each group to an exit code; nothing else decides how the process ends.
"""

from __future__ import annotations


class FlinktradeError(Exception):
    """Base class: every error flinktrade raises on purpose."""


class ConfigError(FlinktradeError):
    """The configuration or the command line is wrong: fix it and run again."""


class TransientError(FlinktradeError):
    """A dependency is unavailable for now (broker down, timeout): retrying may succeed."""


class InfraError(FlinktradeError):
    """A local component (broker, JVM dependencies) could not be set up or started."""


class StrategyError(FlinktradeError):
    """A strategy raised or returned something invalid: disable it for that symbol."""


class OrderRejected(FlinktradeError):
    """A broker or a risk check refused an order: record it and alert."""
