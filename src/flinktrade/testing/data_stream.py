"""The WebSocket side of the fake Alpaca market data API: ``/v2/{feed}`` and ``/v1beta1/news``.

Wire (msgpack, timestamps as msgpack Timestamp extensions): ``connected`` on open, ``auth``
(error 402 and closed for wrong keys), ``subscribe``/``unsubscribe`` answered with the full
subscription set, then arrays of ``t``/``q``/``b``/``s``/``n`` messages, each sent only to the
clients subscribed to its symbol (or to ``*``). Faults: ``refusing`` (new connections get HTTP
503, as during an outage), ``mute`` (open connections stay open but get nothing more: alpaca-py
issue 740) and ``drop`` (connections cut without a close frame, as a network failure would).
It runs on the event loop of the fake that owns it (``Loopback._serve_websockets``).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import msgpack
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

FEEDS = ("iex", "sip", "delayed_sip", "test")
NEWS_PATH = "/v1beta1/news"
MARKET_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
_MESSAGE_CHANNEL = {"t": "trades", "q": "quotes", "b": "bars", "u": "updatedBars",
                    "d": "dailyBars", "s": "statuses", "l": "lulds", "n": "news"}  # fmt: skip


@dataclass
class _Client:
    connection: ServerConnection
    path: str
    subscriptions: dict[str, set[str]] = field(default_factory=dict)
    authenticated: bool = False


class DataStreams:
    """The stream clients of the fake and what they follow. ``lock`` is the fake's."""

    def __init__(self, key_id: str, secret_key: str, lock: threading.RLock) -> None:
        self.key_id = key_id
        self.secret_key = secret_key
        self.lock = lock
        self.connections: dict[str, int] = {}
        """Opened WebSocket connections per path (``/v2/iex``, ``/v1beta1/news``)."""
        self.refusing = False
        self._muted: dict[Any, str] = {}
        """Muted connections (the objects, so that a new connection cannot take an old one's
        ``id``: it did, and a reconnected client then counted as muted) -> their path."""
        self._clients: list[_Client] = []

    async def handle(self, connection: ServerConnection) -> None:
        """Serve one connection until it closes."""
        path = urlsplit(connection.request.path if connection.request else "/").path
        is_news = path == NEWS_PATH
        if not is_news and path.removeprefix("/v2/") not in FEEDS:
            await connection.close(1008, "unknown stream")
            return
        client = _Client(connection, path)
        with self.lock:
            self.connections[path] = self.connections.get(path, 0) + 1
        try:
            await connection.send(_pack([{"T": "success", "msg": "connected"}]))
            async for frame in connection:
                message = msgpack.unpackb(frame) if isinstance(frame, bytes) else json.loads(frame)
                await self._on_message(client, message, is_news)
        except ConnectionClosed:
            pass
        finally:
            with self.lock:
                if client in self._clients:
                    self._clients.remove(client)

    async def _on_message(self, client: _Client, message: Any, is_news: bool) -> None:
        ws = client.connection
        action = message.get("action") if isinstance(message, dict) else None
        if action == "auth":
            if client.authenticated:
                await ws.send(_pack([{"T": "error", "code": 403, "msg": "already authenticated"}]))
            elif message.get("key") == self.key_id and message.get("secret") == self.secret_key:
                client.authenticated = True
                await ws.send(_pack([{"T": "success", "msg": "authenticated"}]))
            else:
                await ws.send(_pack([{"T": "error", "code": 402, "msg": "auth failed"}]))
                await ws.close()
        elif action in ("subscribe", "unsubscribe"):
            if not client.authenticated:
                await ws.send(_pack([{"T": "error", "code": 401, "msg": "not authenticated"}]))
                return
            channels = ("news",) if is_news else MARKET_CHANNELS
            for channel in channels:
                wanted = set(message.get(channel) or [])
                current = client.subscriptions.setdefault(channel, set())
                if action == "subscribe":
                    current |= wanted
                else:
                    current -= wanted
            reply: dict[str, Any] = {"T": "subscription"}
            for channel in channels:
                reply[channel] = sorted(client.subscriptions.get(channel, set()))
            if not is_news:
                reply["corrections"] = reply["trades"]
                reply["cancelErrors"] = reply["trades"]
            with self.lock:
                if client not in self._clients:
                    self._clients.append(client)
            await ws.send(_pack([reply]))
        else:
            await ws.send(_pack([{"T": "error", "code": 400, "msg": "invalid syntax"}]))

    def subscribed(self, path: str, channel: str, symbols: Iterable[str]) -> bool:
        """Whether a client on ``path`` that ``push`` would reach (not muted) is subscribed to
        ``channel`` for all ``symbols``: a test waiting for a reconnected client's subscription
        must not be answered by the muted connection it replaced, should that one still be
        open."""
        wanted = set(symbols)
        with self.lock:
            return any(
                self._reaches(c, path)
                and (
                    wanted <= c.subscriptions.get(channel, set())
                    or "*" in c.subscriptions.get(channel, set())
                )
                for c in self._clients
            )

    def followed(self, paths: Iterable[str]) -> set[str]:
        """The symbols the market clients on ``paths`` follow (trades, bars or quotes)."""
        names: set[str] = set()
        wanted = set(paths)
        with self.lock:
            for client in self._clients:
                if client.path in wanted:
                    for channel in ("trades", "bars", "quotes"):
                        names |= client.subscriptions.get(channel, set())
        names.discard("*")
        return names

    def mute(self, path: str, mute: bool = True) -> None:
        """While set, the connections open on ``path`` now stay open but get nothing more."""
        with self.lock:
            if mute:
                self._muted.update((c.connection, path) for c in self._clients if c.path == path)
            else:
                self._muted = {c: p for c, p in self._muted.items() if p != path}

    def _reaches(self, client: _Client, path: str) -> bool:
        """Whether a push on ``path`` reaches ``client`` (on that path, not muted); hold ``lock``."""
        return client.path == path and client.connection not in self._muted

    async def push(self, path: str, messages: list[dict[str, Any]]) -> int:
        """Send ``messages`` to every unmuted client on ``path`` subscribed to them; returns how
        many clients got at least one."""
        reached = 0
        with self.lock:
            clients = [c for c in self._clients if self._reaches(c, path)]
        for client in clients:
            wanted = [m for m in messages if _wants(client, m)]
            if not wanted:
                continue
            with contextlib.suppress(ConnectionClosed):
                await client.connection.send(_pack([_wire(m) for m in wanted]))
                reached += 1
        return reached

    async def drop(self, path: str | None) -> int:
        """Cut every connection (on ``path``) without a close frame; returns how many."""
        with self.lock:
            victims = [c for c in self._clients if path is None or c.path == path]
            for client in victims:
                self._clients.remove(client)
        for client in victims:
            client.connection.transport.abort()
        return len(victims)


def _wants(client: _Client, message: Mapping[str, Any]) -> bool:
    channel = _MESSAGE_CHANNEL.get(str(message.get("T")))
    if channel is None:
        return True
    subscribed = client.subscriptions.get(channel, set())
    if "*" in subscribed:
        return True
    if channel == "news":
        return bool(subscribed & set(message.get("symbols") or []))
    return message.get("S") in subscribed


def _wire(message: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(message)
    for key in ("t", "created_at", "updated_at"):
        value = out.get(key)
        if isinstance(value, str):
            out[key] = msgpack.Timestamp.from_unix_nano(_parse_ns(value))
        elif isinstance(value, int):
            out[key] = msgpack.Timestamp.from_unix_nano(value)
    return out


def _parse_ns(text: str) -> int:
    """Epoch ns of RFC 3339 text with up to nine fractional digits."""
    head, _, rest = text.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp())
    return seconds * 1_000_000_000 + int((rest or "0").ljust(9, "0")[:9])


def _pack(messages: list[dict[str, Any]]) -> bytes:
    return bytes(msgpack.packb(messages))
