"""Progress reporting shared by long-running work (history ingest, backtests, data loading).

The work calls ``begin`` once per task with its total, then ``update`` as it goes; the CLI passes a
rich progress bar, tests and library callers ``NoProgress``. No stage owns it, so any may use it.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Where progress goes (a rich progress bar in the CLI, nothing in tests)."""

    def begin(self, task: str, total: int) -> None: ...

    def update(self, task: str, completed: int, records: int) -> None: ...


class NoProgress:
    """Progress that goes nowhere."""

    def begin(self, task: str, total: int) -> None:
        pass

    def update(self, task: str, completed: int, records: int) -> None:
        pass
