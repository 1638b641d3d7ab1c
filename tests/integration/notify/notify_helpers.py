"""Helpers shared by the notifier's integration tests."""

from __future__ import annotations

import re

from flinktrade.testing.fake_slack import Received


def accounted(messages: list[Received]) -> int:
    """How many notices the messages stand for: 1 per single message, N per summary ("N ...")."""
    total = 0
    for message in messages:
        summary = re.match(r"(\d+) ", message.text)
        total += int(summary.group(1)) if summary else 1
    return total
