"""The store's ``kv`` table: the kill switch, equity marks and the executor's heartbeat.

The kill switch survives restarts and can be set from another process (``flinktrade halt``, the
API); the heartbeat is what ``flinktrade status`` reads ("executor last seen 0.4 s ago").
"""

from __future__ import annotations

import json

from flinktrade.execution.store.records import Heartbeat
from flinktrade.execution.store.schema import StoreConnection


class StateTable(StoreConnection):
    """Named values: ``halted`` (the kill switch), ``heartbeat``, and the executor's marks."""

    def get_value(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_value(self, key: str, value: str | None, *, commit: bool = True) -> None:
        if value is None:
            self._db.execute("DELETE FROM kv WHERE key = ?", (key,))
        else:
            self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))
        if commit:
            self._db.commit()

    def halted(self) -> str | None:
        """The kill switch: the reason it was set, or None when trading is allowed."""
        return self.get_value("halted")

    def halt(self, reason: str) -> None:
        self.set_value("halted", reason or "halted")

    def resume(self) -> None:
        self.set_value("halted", None)

    def beat(self, now_ms: int, pid: int) -> None:
        """Record that the executor is alive (committed)."""
        self.set_value("heartbeat", json.dumps({"ts_ms": now_ms, "pid": pid}))

    def heartbeat(self) -> Heartbeat | None:
        """The executor's last heartbeat, or None if no executor ever ran on this store."""
        text = self.get_value("heartbeat")
        if text is None:
            return None
        data = json.loads(text)
        return Heartbeat(ts_ms=int(data["ts_ms"]), pid=int(data["pid"]))
