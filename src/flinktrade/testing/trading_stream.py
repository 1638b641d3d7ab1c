"""The ``trade_updates`` WebSocket endpoint of the fake Alpaca trading API.

Wire (JSON text frames): ``{"action":"authenticate","data":{"key_id","secret_key"}}`` ->
``{"stream":"authorization","data":{"status":"authorized",...}}``; ``{"action":"listen",...}``
-> ``{"stream":"listening",...}``; then ``{"stream":"trade_updates","data":{"event",...}}``.
Wrong keys are answered ``unauthorized`` and the connection closes (1008).

Its faults: ``drop(n)`` (the next ``n`` events are recorded but never sent), ``refuse(n)`` (the
next ``n`` connections are closed, 1013, before they can authenticate) and ``disconnect_all``.
It runs on the event loop of the fake that owns it (``Loopback._serve_websockets``).
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed


class TradeUpdates:
    """Listeners of ``trade_updates`` and what was sent to them."""

    def __init__(self, key_id: str, secret_key: str) -> None:
        self.key_id = key_id
        self.secret_key = secret_key
        self.connections = 0
        """Connections opened so far (refused ones included)."""
        self.events_sent: list[dict[str, Any]] = []
        """Every event published, dropped ones included."""
        self._lock = threading.Lock()
        self._clients: set[ServerConnection] = set()
        self._refuse = 0
        self._drop = 0

    @property
    def listeners(self) -> int:
        """Connections listening to ``trade_updates`` now."""
        return len(self._clients)

    def refuse(self, n: int) -> None:
        self._refuse = n

    def drop(self, n: int) -> None:
        self._drop = n

    def frame(self, data: dict[str, Any]) -> str | None:
        """Record ``data`` and return the frame to broadcast (``None``: dropped)."""
        with self._lock:
            self.events_sent.append(data)
            if self._drop > 0:
                self._drop -= 1
                return None
        return json.dumps({"stream": "trade_updates", "data": data})

    async def broadcast(self, text: str) -> None:
        for ws in list(self._clients):
            with contextlib.suppress(ConnectionClosed):
                await ws.send(text)

    async def disconnect_all(self) -> None:
        for ws in list(self._clients):
            self._clients.discard(ws)
            await ws.close(code=1011, reason="fake: dropped")

    async def handle(self, ws: ServerConnection) -> None:
        """Serve one connection: authenticate, listen, then receive broadcasts."""
        self.connections += 1
        if self._refuse > 0:
            self._refuse -= 1
            await ws.close(code=1013, reason="fake: try again later")
            return
        authorized = False
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    await ws.send(json.dumps({"stream": "error", "data": {"message": "bad json"}}))
                    continue
                action = msg.get("action") if isinstance(msg, dict) else None
                data = msg.get("data") or {} if isinstance(msg, dict) else {}
                if action in ("authenticate", "auth"):
                    authorized = (
                        data.get("key_id") == self.key_id
                        and data.get("secret_key") == self.secret_key
                    )
                    status = "authorized" if authorized else "unauthorized"
                    await ws.send(
                        json.dumps(
                            {
                                "stream": "authorization",
                                "data": {"action": "authenticate", "status": status},
                            }
                        )
                    )
                    if not authorized:
                        await ws.close(code=1008, reason="unauthorized")
                        return
                elif action == "listen" and authorized:
                    streams = list(data.get("streams") or [])
                    if "trade_updates" in streams:
                        self._clients.add(ws)
                    await ws.send(json.dumps({"stream": "listening", "data": {"streams": streams}}))
                else:
                    await ws.send(
                        json.dumps({"stream": "error", "data": {"message": "not authorized"}})
                    )
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(ws)
