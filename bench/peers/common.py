"""Command line and side-channel shared by the peer contenders.

Every contender takes the broker, its input topic and its output topics as arguments, and writes a
small JSON stats file: ``ready_ms`` once it is consuming, ``first_consumed_ms`` at its first
record. The runner reads outputs from the topics, never from the contender's memory.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--servers", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--bars", required=True)
    parser.add_argument("--signals", required=True)
    parser.add_argument("--alerts", required=True)
    parser.add_argument("--group", default="bench")
    parser.add_argument("--stats", required=True, type=Path)
    parser.add_argument(
        "--low-latency", action="store_true", help="small batches and no linger (latency runs)"
    )
    return parser.parse_args()


class Stats:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[str, int] = {}

    def mark(self, name: str) -> None:
        if name not in self.values:
            self.values[name] = time.time_ns() // 1_000_000
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.values))
            tmp.replace(self.path)
