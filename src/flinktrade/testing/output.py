"""Reading a CLI run's output in tests."""

from __future__ import annotations

import json
from typing import Any


def last_json_object(stdout: str) -> dict[str, Any]:
    """The last line of ``stdout`` that is a JSON object (a command's summary).

    The in-process MiniCluster's JVM shares the process's stdout and may print a stack trace while
    the job is cancelled at the end of a run, after the summary line."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                parsed = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(parsed, dict):
                return parsed
    raise AssertionError(f"no JSON summary line in: {stdout[-2000:]!r}")
